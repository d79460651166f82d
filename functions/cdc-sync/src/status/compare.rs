//! One consistent pass over a source's tables: Postgres read in one REPEATABLE READ
//! transaction as of a WAL position, the slot peeked up to it for pending tables, and each
//! table compared with its replica by content (`verify`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use sluice::bigquery::schema::{Field, FieldType};
use sluice::catalog;
use sluice::postgres::catalog::{count_rows_sql, quote_ident, table_columns};
use sluice::postgres::pgoutput::Lsn;
use sluice::{Error, Result};

use super::report::{TableStatus, Verdict, PENDING_CAP};
use crate::source::SourceCtx;
use crate::stream::{pending_tables, Pending};
use crate::tables;
use crate::verify::{self, Column, JsonKeys, Plan, Queries, Replica};

/// Peeks tried while another session holds the slot, and the wait between them.
const BUSY_TRIES: u32 = 5;
const BUSY_WAIT: Duration = Duration::from_secs(2);

/// A published table and what the lake remembers of its replica.
#[derive(Clone)]
pub(super) struct Wanted {
    pub(super) schema: String,
    pub(super) table: String,
    pub(super) state: Option<tables::TableState>,
}

impl Wanted {
    fn qualified(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }
}

/// One pass over the tables inside a consistent read of the source, ended (committed, or
/// rolled back on an error) before returning.
pub(super) async fn consistent_pass(
    ctx: &SourceCtx<'_>,
    keys: JsonKeys,
    wanted: &[Wanted],
) -> Result<(Lsn, Vec<TableStatus>)> {
    // The canonical forms need ISO 8601 intervals and shortest-exact float text. JIT would
    // spend seconds compiling the nested JSON walks for a few rows.
    ctx.catalog
        .batch_execute(
            "opening a consistent read of the source",
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; \
             SET LOCAL intervalstyle = 'iso_8601'; SET LOCAL extra_float_digits = 1; SET LOCAL jit = off",
        )
        .await?;
    let r = pass(ctx, keys, wanted).await;
    let end = if r.is_ok() { "COMMIT" } else { "ROLLBACK" };
    let ended = ctx
        .catalog
        .batch_execute("ending the consistent read", end)
        .await;
    let r = r?;
    ended?;
    Ok(r)
}

/// Every table, inside the consistent read.
async fn pass(
    ctx: &SourceCtx<'_>,
    keys: JsonKeys,
    wanted: &[Wanted],
) -> Result<(Lsn, Vec<TableStatus>)> {
    // The snapshot is taken at this statement's start: what it sees committed before the WAL
    // position read in it. The insert position, not the written one, which trails it under
    // asynchronous commit; on a standby, what was replayed.
    let text: String = ctx
        .catalog
        .query_one(
            "reading the source's WAL position",
            "SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() \
             ELSE pg_current_wal_insert_lsn() END)::text",
            &[],
        )
        .await?
        .get(0);
    let position: Lsn = text
        .parse()
        .map_err(|e: sluice::postgres::pgoutput::DecodeError| {
            Error::config(format!("reading the source's WAL position: {}", e.0))
        })?;
    let pending = pending_or_busy(ctx, position).await?;
    let mut out = vec![];
    for w in wanted {
        out.push(check_table(ctx, keys, w, pending.as_ref()).await?);
    }
    Ok((position, out))
}

/// The pending changes up to `upto`, or None when another session holds the slot through
/// every try.
async fn pending_or_busy(ctx: &SourceCtx<'_>, upto: Lsn) -> Result<Option<Pending>> {
    let mut tries = 0;
    loop {
        tries += 1;
        match pending_tables(ctx, upto, PENDING_CAP).await {
            Ok(p) => return Ok(Some(p)),
            Err(e) if slot_busy(&e) && tries < BUSY_TRIES => {
                tracing::info!(slot = %ctx.slot, tries, "slot in use by another session; trying again");
                tokio::time::sleep(BUSY_WAIT).await;
            }
            Err(e) if slot_busy(&e) => {
                tracing::warn!(slot = %ctx.slot, error = %e, "slot in use by another session: replicas not compared");
                return Ok(None);
            }
            Err(e) => return Err(e),
        }
    }
}

/// The error a peek gives while another session streams from the slot (`slot::explain_active`).
fn slot_busy(e: &Error) -> bool {
    let m = e.to_string();
    m.contains("is in use by another session") || m.contains("is active for PID")
}

async fn check_table(
    ctx: &SourceCtx<'_>,
    keys: JsonKeys,
    w: &Wanted,
    pending: Option<&Pending>,
) -> Result<TableStatus> {
    let started = Instant::now();
    let qualified = w.qualified();
    let bq_name = catalog::replica_table(&w.schema, &w.table);
    let replica_ref =
        sluice::bigquery::sql::table_ref(ctx.sink.bq.project(), &ctx.sink.dataset, &bq_name);
    let postgres_count = || async {
        let n: i64 = ctx
            .catalog
            .query_one(
                &format!("counting {qualified}"),
                &count_rows_sql(&w.schema, &w.table),
                &[],
            )
            .await?
            .get(0);
        Ok::<i64, Error>(n)
    };
    let mut status = TableStatus {
        table: qualified.clone(),
        postgres_rows: 0,
        replica_rows: None,
        verdict: Verdict::NoReplica,
        queries: Queries::default(),
        seconds: 0.0,
    };
    let Some(state) = &w.state else {
        status.postgres_rows = postgres_count().await?;
        return Ok(status);
    };
    let cat = table_columns(&ctx.catalog, &w.schema, &w.table).await?;
    let info = tables::from_catalog(&cat, &w.schema, &w.table, ctx.cdc.on_unsupported)?;
    let Some(schema) = ctx
        .sink
        .bq
        .table_schema(&ctx.sink.dataset, &bq_name)
        .await?
    else {
        status.postgres_rows = postgres_count().await?;
        status.verdict = Verdict::ReplicaMissing;
        return Ok(status);
    };
    if state.key.is_empty() || !info.keyed() {
        status.postgres_rows = postgres_count().await?;
        let r = ctx
            .sink
            .bq
            .query(&crate::sql::replica_status(&replica_ref, true), &[])
            .await?;
        status.replica_rows = r.get(0, "n").and_then(|n| n.parse().ok());
        status.verdict = Verdict::NoKey;
        return Ok(status);
    }
    let replica: BTreeMap<String, &Field> = schema
        .iter()
        .map(|f| (f.name.to_ascii_lowercase(), f))
        .collect();
    let columns: Vec<Column> = info
        .columns
        .iter()
        .zip(&info.source_index)
        .map(|(m, &i)| {
            let ty = &cat.columns[i].ty;
            Column {
                name: m.name.clone(),
                kind: m.kind.clone(),
                pg_type: ty.element.as_ref().map_or(&ty.name, |e| &e.name).clone(),
                replica: match replica.get(&m.name.to_ascii_lowercase()).map(|f| &f.ty) {
                    Some(FieldType::Scalar(t)) => Replica::Of(*t),
                    _ => Replica::Missing,
                },
            }
        })
        .collect();
    let plan = Plan::new(
        &columns,
        &info.key,
        format!("{}.{}", quote_ident(&w.schema), quote_ident(&w.table)),
        replica_ref,
        keys,
    );
    let in_flight = pending.map(|p| {
        if p.complete {
            p.tables.get(&qualified).copied()
        } else {
            Some(p.tables.get(&qualified).copied().unwrap_or(0))
        }
    });
    let narrow = matches!(in_flight, Some(None));
    let checked = verify::compare(&ctx.catalog, &ctx.sink.bq, &qualified, &plan, narrow).await?;
    status.postgres_rows = checked.postgres_rows as i64;
    status.replica_rows = Some(checked.replica_rows);
    status.queries = checked.queries;
    status.verdict = match in_flight {
        None => Verdict::SlotBusy,
        Some(Some(n)) => Verdict::Pending(pending.filter(|p| p.complete).map(|_| n)),
        Some(None) if checked.equal => Verdict::Equal,
        Some(None) => match checked.found {
            Some(f) => Verdict::Differs(f),
            None => Verdict::Equal,
        },
    };
    status.seconds = started.elapsed().as_secs_f64();
    Ok(status)
}

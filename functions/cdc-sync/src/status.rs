//! `cdc-sync status`: per source, the slot's health and each published table compared with its
//! replica by content (`verify`), all as of one consistent point.
//!
//! The point: Postgres is read in one REPEATABLE READ transaction, whose snapshot holds what
//! committed before the WAL position S read first in it; a replica holds the changes up to its
//! slot's confirmed position C (the slot advances only after BigQuery committed). A peek of the
//! slot up to S (nothing consumed) names the tables with changes between C and S: those are
//! reported as pending, not compared; every other table is compared exactly as of S. A run that
//! moves the slot during the check may bring newer changes into a replica, so when C moved, the
//! tables found differing are checked once more, at a new point.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::json;
use sluice::bigquery::schema::{Field, FieldType};
use sluice::catalog;
use sluice::config::{self, Pipeline, Target};
use sluice::ledger::{new_run_id, RunRecord, Status};
use sluice::postgres::catalog::{count_rows_sql, quote_ident, table_columns};
use sluice::postgres::pgoutput::Lsn;
use sluice::{Error, Result};

use crate::source::{cdc_sources, source_ctx, SourceCtx};
use crate::stream::{pending_tables, Pending};
use crate::verify::{self, Column, Found, JsonKeys, Plan, Queries, Replica};
use crate::{continuity, slot, tables};

/// Changes a peek reads at most to find the pending tables; beyond, every table counts as
/// pending.
const PENDING_CAP: u64 = 200_000;
/// Peeks tried while another session holds the slot, and the wait between them.
const BUSY_TRIES: u32 = 5;
const BUSY_WAIT: Duration = Duration::from_secs(2);

/// What a table's comparison found.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Every row equal, as of the source's position.
    Equal,
    /// Some keys differ.
    Differs(Found),
    /// Changes committed before the position are not in the replica yet (how many, when the
    /// peek read them all): not compared.
    Pending(Option<u64>),
    /// Not snapshotted yet: the next run takes it.
    NoReplica,
    /// The lake says the table is replicated but its replica table is gone.
    ReplicaMissing,
    /// No primary key: its replica is an append-only history of changes, not compared.
    NoKey,
    /// Another session held the slot throughout: in-flight changes cannot be told from
    /// differences, so not compared.
    SlotBusy,
}

impl Verdict {
    /// The word the ledger keeps.
    pub fn name(&self) -> &'static str {
        match self {
            Verdict::Equal => "equal",
            Verdict::Differs(_) => "differs",
            Verdict::Pending(_) => "pending",
            Verdict::NoReplica => "no_replica",
            Verdict::ReplicaMissing => "replica_missing",
            Verdict::NoKey => "no_key",
            Verdict::SlotBusy => "slot_busy",
        }
    }

    /// The replica is known not to hold what Postgres holds.
    pub fn is_difference(&self) -> bool {
        matches!(self, Verdict::Differs(_) | Verdict::ReplicaMissing)
    }

    /// As the table line shows it.
    fn label(&self) -> String {
        match self {
            Verdict::Equal => "equal".into(),
            Verdict::Differs(f) => format!(
                "DIFFERS: {}{} key{}",
                if f.exact { "" } else { "≥" },
                f.differing,
                if f.differing == 1 { "" } else { "s" }
            ),
            Verdict::Pending(_) => "changes pending".into(),
            Verdict::NoReplica => "no replica yet".into(),
            Verdict::ReplicaMissing => "REPLICA MISSING".into(),
            Verdict::NoKey => "no key: not compared".into(),
            Verdict::SlotBusy => "not compared".into(),
        }
    }
}

/// One published table against its replica.
#[derive(Debug, Clone, PartialEq)]
pub struct TableStatus {
    /// `schema.table`.
    pub table: String,
    pub postgres_rows: i64,
    /// Live rows of the replica (not soft-deleted), or every change of an append-only one;
    /// None without a replica.
    pub replica_rows: Option<u64>,
    pub verdict: Verdict,
    /// Queries the comparison took on each side (zero when not compared).
    pub queries: Queries,
    pub seconds: f64,
}

/// One source: its slot and its tables, as of one position.
#[derive(Debug, Clone)]
pub struct SourceStatus {
    pub source: String,
    pub health: slot::SlotHealth,
    /// Postgres's position the tables were compared at (of the last check, after a recheck).
    pub position: Lsn,
    /// The slot moved during the check: the differing tables were checked again.
    pub rechecked: bool,
    pub tables: Vec<TableStatus>,
    /// The run id of its ledger rows.
    pub run_id: String,
    /// A break in the stream's continuity (`continuity::Break`), as its one line: nothing was
    /// compared.
    pub stopped: Option<String>,
}

impl SourceStatus {
    /// The tables whose replicas differ, as `table (n keys)`.
    pub fn differing(&self) -> Vec<String> {
        self.tables
            .iter()
            .filter_map(|t| match &t.verdict {
                Verdict::Differs(f) => Some(format!(
                    "{} ({}{} differing key{})",
                    t.table,
                    if f.exact { "" } else { "at least " },
                    f.differing,
                    if f.differing == 1 { "" } else { "s" }
                )),
                Verdict::ReplicaMissing => Some(format!("{} (replica table missing)", t.table)),
                _ => None,
            })
            .collect()
    }

    /// What should fail the command, one phrase each: differing replicas, or none compared.
    pub fn problems(&self) -> Vec<String> {
        let mut out: Vec<String> = self.stopped.iter().cloned().collect();
        let differing = self.differing();
        if !differing.is_empty() {
            out.push(format!(
                "source {}: replicas differ from Postgres: {}",
                self.source,
                differing.join(", ")
            ));
        }
        if self.tables.iter().any(|t| t.verdict == Verdict::SlotBusy) {
            out.push(format!(
                "source {}: the slot was in use by another session, replicas not compared",
                self.source
            ));
        }
        out
    }

    /// The report: the slot's line, one aligned line per table, then what differs.
    pub fn lines(&self) -> Vec<String> {
        if let Some(stop) = &self.stopped {
            return vec![stop.clone()];
        }
        let mut out = vec![format!(
            "source {}: slot at {}, retaining {:.1} MiB of WAL; Postgres read as of {}{}",
            self.source,
            self.health.confirmed_flush,
            self.health.retained_wal_bytes as f64 / (1024.0 * 1024.0),
            self.position,
            if self.rechecked {
                " (a run moved the slot meanwhile: differing tables checked again)"
            } else {
                ""
            }
        )];
        let w = self
            .tables
            .iter()
            .map(|t| t.table.len())
            .max()
            .unwrap_or(0)
            .max(5);
        out.push(format!(
            "{:<w$}  {:<22} {:>12} {:>12} {:>9} {:>8}",
            "table", "verdict", "postgres", "replica", "queries", "time"
        ));
        for t in &self.tables {
            let compared = t.queries.postgres + t.queries.bigquery > 0;
            out.push(format!(
                "{:<w$}  {:<22} {:>12} {:>12} {:>9} {:>8}",
                t.table,
                t.verdict.label(),
                t.postgres_rows,
                t.replica_rows.map_or("-".to_string(), |n| n.to_string()),
                if compared {
                    format!("{} + {}", t.queries.postgres, t.queries.bigquery)
                } else {
                    "-".into()
                },
                if compared {
                    format!("{:.1}s", t.seconds)
                } else {
                    "-".into()
                },
            ));
        }
        for t in &self.tables {
            match &t.verdict {
                Verdict::Differs(f) => {
                    out.push(format!(
                        "{}: {}{} differing key{} in key-hash buckets {}",
                        t.table,
                        if f.exact { "" } else { "at least " },
                        f.differing,
                        if f.differing == 1 { "" } else { "s" },
                        f.buckets.join(", ")
                    ));
                    for (k, d) in &f.first {
                        out.push(format!("{}: key {k}: {}", t.table, d.describe()));
                    }
                }
                Verdict::Pending(Some(n)) => out.push(format!(
                    "{}: {n} committed change{} not in the replica yet: run `cdc-sync run` first, then check again",
                    t.table,
                    if *n == 1 { "" } else { "s" }
                )),
                Verdict::Pending(None) => out.push(format!(
                    "{}: the slot holds more than {PENDING_CAP} changes not in the replicas yet, maybe of this table: run `cdc-sync run` first, then check again",
                    t.table
                )),
                Verdict::ReplicaMissing => out.push(format!(
                    "{}: the replica table is gone; run `cdc-sync resync --table {}`",
                    t.table, t.table
                )),
                Verdict::NoKey => out.push(format!(
                    "{}: no primary key, so its replica keeps every change (append-only history) and is not compared",
                    t.table
                )),
                Verdict::SlotBusy => out.push(format!(
                    "{}: slot in use by another session (a run?) throughout: in-flight changes cannot be told from differences; try again when it ends",
                    t.table
                )),
                Verdict::Equal | Verdict::NoReplica => {}
            }
        }
        out
    }
}

/// Per source (or only `only`): the slot's health and every published table (or those named
/// in `tables`, `table` or `schema.table`) compared with its replica. Writes one ledger row per
/// source, failed when a replica differs.
pub async fn check(
    pipeline: &Pipeline,
    target_name: &str,
    only: Option<&str>,
    tables: &[String],
) -> Result<Vec<SourceStatus>> {
    let target = pipeline.target(target_name)?;
    let run_id = new_run_id();
    let mut out = vec![];
    let named: Vec<(String, String)> = tables.iter().map(|t| config::qualify(t)).collect();
    let mut found = std::collections::BTreeSet::new();
    for (name, source, cdc) in cdc_sources(pipeline, only)? {
        let ctx = source_ctx(pipeline, &target, name, source, cdc, &run_id).await?;
        // A source whose stream broke is reported as such: its replicas are not what the
        // slot continues, and its pending changes cannot be read.
        if let Some(b) = continuity::Observed::read(&ctx).await?.verdict() {
            out.push(SourceStatus {
                source: name.clone(),
                health: slot::SlotHealth {
                    confirmed_flush: Lsn(0),
                    retained_wal_bytes: 0,
                },
                position: Lsn(0),
                rechecked: false,
                tables: vec![],
                run_id: run_id.clone(),
                stopped: Some(b.message(name, &ctx.slot, &ctx.publication)),
            });
            found.extend(named.iter().cloned());
            continue;
        }
        let mut wanted = slot::publication_tables(&ctx.stream, &ctx.publication).await?;
        if !named.is_empty() {
            wanted.retain(|p| named.contains(p));
            if wanted.is_empty() {
                continue;
            }
            found.extend(wanted.iter().cloned());
        }
        out.push(check_source(&ctx, &target, wanted).await?);
    }
    if let Some((s, t)) = named.iter().find(|n| !found.contains(*n)) {
        return Err(Error::config(format!(
            "{s}.{t} is not in the publication of {}",
            match only {
                Some(o) => format!("source {o}"),
                None => "any CDC source".to_string(),
            }
        )));
    }
    Ok(out)
}

/// Per source: the slot's health and every published table's rows against its replica's,
/// compared by content (`check` without a table filter).
pub async fn status(
    pipeline: &Pipeline,
    target_name: &str,
    only: Option<&str>,
) -> Result<Vec<(String, slot::SlotHealth, Vec<TableStatus>)>> {
    Ok(check(pipeline, target_name, only, &[])
        .await?
        .into_iter()
        .map(|s| (s.source, s.health, s.tables))
        .collect())
}

/// A published table and what the lake remembers of its replica.
#[derive(Clone)]
struct Wanted {
    schema: String,
    table: String,
    state: Option<tables::TableState>,
}

impl Wanted {
    fn qualified(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }
}

async fn check_source(
    ctx: &SourceCtx<'_>,
    target: &Target,
    published: Vec<(String, String)>,
) -> Result<SourceStatus> {
    let started = chrono::Utc::now();
    let before = slot::health(&ctx.stream, &ctx.slot).await?;
    let keys = if target.bigquery_endpoint.is_some() {
        JsonKeys::AsLoaded
    } else {
        JsonKeys::Sorted
    };
    let mut wanted = vec![];
    for (schema, table) in published {
        let bq_name = catalog::replica_table(&schema, &table);
        let state = tables::read_state(&ctx.sink.lake, &ctx.name, &bq_name).await?;
        wanted.push(Wanted {
            schema,
            table,
            state,
        });
    }
    let (mut position, mut statuses) = consistent_pass(ctx, keys, &wanted).await?;
    let after = slot::health(&ctx.stream, &ctx.slot).await?;
    let again: Vec<&Wanted> = wanted
        .iter()
        .zip(&statuses)
        .filter(|(_, s)| s.verdict.is_difference())
        .map(|(w, _)| w)
        .collect();
    let rechecked = after.confirmed_flush != before.confirmed_flush && !again.is_empty();
    if rechecked {
        tracing::info!(source = %ctx.name, from = %before.confirmed_flush, to = %after.confirmed_flush, "the slot moved during the check: checking the differing tables again");
        let again: Vec<Wanted> = again.into_iter().cloned().collect();
        let (p, redone) = consistent_pass(ctx, keys, &again).await?;
        position = p;
        for r in redone {
            if let Some(s) = statuses.iter_mut().find(|s| s.table == r.table) {
                *s = r;
            }
        }
    }
    let health = slot::health(&ctx.stream, &ctx.slot).await?;
    let out = SourceStatus {
        source: ctx.name.clone(),
        health,
        position,
        rechecked,
        tables: statuses,
        run_id: ctx.run_id.clone(),
        stopped: None,
    };
    record(ctx, &out, started).await?;
    Ok(out)
}

/// The ledger rows of a source's check, one per table under its replica's name (the unit a
/// snapshot of it writes too): failed, naming the keys, when the replica differs, so the
/// monitor alerts the owner until a later check finds it equal or a resync replaces it;
/// skipped when it could not be compared (changes pending, slot busy, no key, no replica).
async fn record(
    ctx: &SourceCtx<'_>,
    s: &SourceStatus,
    started: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    for t in &s.tables {
        let found = match &t.verdict {
            Verdict::Differs(f) => Some(f),
            _ => None,
        };
        let details = json!({
            "kind": "verify",
            "slot": ctx.slot,
            "position": s.position.to_string(),
            "confirmed_flush": s.health.confirmed_flush.to_string(),
            "rechecked": s.rechecked,
            "verdict": t.verdict.name(),
            "differing": found.map(|f| f.differing),
            "exact": found.map(|f| f.exact),
            "first_keys": found.map(|f| f.first.iter().map(|(k, d)| json!({"key": k, "difference": d})).collect::<Vec<_>>()),
            "buckets": found.map(|f| &f.buckets),
            "pending_changes": match t.verdict { Verdict::Pending(n) => n, _ => None },
            "postgres_rows": t.postgres_rows,
            "replica_rows": t.replica_rows,
            "queries": t.queries,
            "seconds": (t.seconds * 1000.0).round() / 1000.0,
        });
        let (status, error) = match &t.verdict {
            Verdict::Equal => (Status::Success, None),
            v if v.is_difference() => (
                Status::Failed,
                Some(match found {
                    Some(f) => format!(
                        "the replica of {} differs from Postgres: {}{} key{}, first {}; run `cdc-sync resync --table {}`",
                        t.table,
                        if f.exact { "" } else { "at least " },
                        f.differing,
                        if f.differing == 1 { "" } else { "s" },
                        f.first
                            .iter()
                            .take(3)
                            .map(|(k, d)| format!("{k} ({})", d.describe()))
                            .collect::<Vec<_>>()
                            .join(", "),
                        t.table
                    ),
                    None => format!(
                        "the replica table of {} is gone; run `cdc-sync resync --table {}`",
                        t.table, t.table
                    ),
                }),
            ),
            v => (
                Status::Skipped,
                Some(format!(
                    "not compared: {}",
                    match v {
                        Verdict::Pending(_) => "changes committed in Postgres are not merged yet",
                        Verdict::NoKey => "no primary key (the replica is an append-only history)",
                        Verdict::SlotBusy => "the slot was in use by another session throughout",
                        _ => "no replica yet",
                    }
                )),
            ),
        };
        let (schema, table) = config::qualify(&t.table);
        ctx.record(RunRecord {
            status,
            error,
            table_name: Some(catalog::replica_table(&schema, &table)),
            ..ctx.ledger_row(started, details)
        })
        .await?;
    }
    Ok(())
}

/// One pass over the tables inside a consistent read of the source, ended (committed, or
/// rolled back on an error) before returning.
async fn consistent_pass(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::Difference;

    fn source(tables: Vec<TableStatus>) -> SourceStatus {
        SourceStatus {
            source: "shop".into(),
            health: slot::SlotHealth {
                confirmed_flush: Lsn(0x1_6B3F28),
                retained_wal_bytes: 3 * 1024 * 1024 / 2,
            },
            position: Lsn(0x1_6B4000),
            rechecked: false,
            tables,
            run_id: "r".into(),
            stopped: None,
        }
    }

    fn table(name: &str, verdict: Verdict, q: u32) -> TableStatus {
        TableStatus {
            table: name.into(),
            postgres_rows: 1_000_000,
            replica_rows: Some(1_000_000),
            verdict,
            queries: Queries {
                postgres: q,
                bigquery: q,
            },
            seconds: 2.345,
        }
    }

    #[test]
    fn the_report_aligns_tables_then_names_what_differs() {
        let found = Found {
            differing: 2,
            exact: true,
            first: vec![
                ("42".into(), Difference::Different),
                ("1017".into(), Difference::Missing),
            ],
            buckets: vec!["3f1a".into(), "c2".into()],
        };
        let s = source(vec![
            table("public.users", Verdict::Equal, 1),
            table("public.orders", Verdict::Differs(found), 3),
            table("public.events", Verdict::NoKey, 0),
            table("public.items", Verdict::Pending(Some(3)), 1),
        ]);
        let lines = s.lines();
        assert_eq!(
            lines[0],
            "source shop: slot at 0/16B3F28, retaining 1.5 MiB of WAL; Postgres read as of 0/16B4000"
        );
        assert_eq!(
            lines[1],
            "table          verdict                    postgres      replica   queries     time"
        );
        assert_eq!(
            lines[2],
            "public.users   equal                       1000000      1000000     1 + 1     2.3s"
        );
        assert_eq!(
            lines[3],
            "public.orders  DIFFERS: 2 keys             1000000      1000000     3 + 3     2.3s"
        );
        assert_eq!(
            lines[4],
            "public.events  no key: not compared        1000000      1000000         -        -"
        );
        assert_eq!(
            &lines[6..],
            [
                "public.orders: 2 differing keys in key-hash buckets 3f1a, c2",
                "public.orders: key 42: values differ",
                "public.orders: key 1017: missing in the replica",
                "public.events: no primary key, so its replica keeps every change (append-only history) and is not compared",
                "public.items: 3 committed changes not in the replica yet: run `cdc-sync run` first, then check again",
            ]
        );
        assert_eq!(s.differing(), ["public.orders (2 differing keys)"]);
        assert_eq!(
            s.problems(),
            ["source shop: replicas differ from Postgres: public.orders (2 differing keys)"]
        );
        let busy = source(vec![table("public.users", Verdict::SlotBusy, 1)]);
        assert_eq!(
            busy.problems(),
            ["source shop: the slot was in use by another session, replicas not compared"]
        );
    }
}

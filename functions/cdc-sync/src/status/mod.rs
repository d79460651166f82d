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
//!
//! `report` is what it found and how that reads; `compare` one consistent pass over the
//! tables; `record` the ledger rows.

mod compare;
mod record;
mod report;

pub use report::{SourceStatus, TableStatus, Verdict};

use sluice::catalog;
use sluice::config::{Pipeline, Target};
use sluice::ledger::new_run_id;
use sluice::postgres::pgoutput::Lsn;
use sluice::{Error, Result};

use crate::source::{cdc_sources, source_ctx, SourceCtx};
use crate::verify::JsonKeys;
use crate::{continuity, slot, tables};
use compare::{consistent_pass, Wanted};

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
    let named: Vec<(String, String)> = tables.iter().map(|t| sluice::config::qualify(t)).collect();
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
    record::ledger_rows(ctx, &out, started).await?;
    Ok(out)
}

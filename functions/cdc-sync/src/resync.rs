//! Replicas made anew or let go: `cdc-sync resync` snapshots tables again (every table after a
//! break in the stream, with a lost slot replaced), `cdc-sync forget` stops replicating tables
//! that left the publication.

use std::sync::Arc;

use sluice::catalog;
use sluice::config::Pipeline;
use sluice::ledger::{self, new_run_id};
use sluice::progress::Progress;
use sluice::{Error, Result};

use crate::continuity::{self, Break};
use crate::source::{cdc_sources, source_ctx};
use crate::sync::take_snapshot;
use crate::{slot, tables};

/// Redoes the snapshot of some tables (or all with `all`), replacing their replicas. After a
/// break in a source's continuity (`continuity::Break`) only `all` will do: a slot that is
/// gone or invalidated is replaced first, every table is snapshotted from the slot's
/// position, and the stream is remembered anew; the ledger says why the resync ran.
pub async fn resync(
    pipeline: &Pipeline,
    target_name: &str,
    only: Option<&str>,
    tables: &[String],
    all: bool,
) -> Result<Vec<(String, u64)>> {
    let target = pipeline.target(target_name)?;
    let run_id = new_run_id();
    let mut out = vec![];
    for (name, source, cdc) in cdc_sources(pipeline, only)? {
        let started = chrono::Utc::now();
        let ctx = source_ctx(pipeline, &target, name, source, cdc, &run_id).await?;
        let observed = continuity::Observed::read(&ctx).await?;
        let cause = observed.verdict();
        if let Some(b) = &cause {
            if !all {
                return Err(Error::config(format!(
                    "source {name}: {}: every table needs a new snapshot; run `cdc-sync resync --all --source {name}`",
                    b.case()
                )));
            }
            tracing::warn!(source = %name, case = b.case(), "resyncing every table after a break in continuity");
            // A slot that is gone or unusable is replaced (with the publication, if a restored
            // database lacks it).
            let row = observed.slot.as_ref();
            if row.is_some_and(|r| r.invalidated().is_some()) {
                slot::drop_slot(&ctx.stream, &ctx.slot).await?;
            }
            if row.is_none_or(|r| r.invalidated().is_some()) {
                let r = slot::init(&ctx.stream, name, cdc).await?;
                tracing::info!(source = %name, slot = %ctx.slot, at = r.slot_lsn.as_deref().unwrap_or(""), "new replication slot");
            }
        }
        let published = slot::publication_tables(&ctx.stream, &ctx.publication).await?;
        let wanted: Vec<(String, String)> = if all {
            published.clone()
        } else {
            tables.iter().map(|t| sluice::config::qualify(t)).collect()
        };
        if let Some((s, t)) = wanted.iter().find(|w| !published.contains(w)) {
            return Err(Error::config(format!(
                "{s}.{t} is not in publication {} of source {name}",
                ctx.publication
            )));
        }
        let current = Arc::new(std::sync::Mutex::new(String::new()));
        let progress = {
            let current = current.clone();
            let terminal = sluice::progress::stderr_is_terminal();
            Progress::start(
                "resyncing",
                Some(wanted.len() as u64),
                terminal,
                move || current.lock().map(|c| c.clone()).unwrap_or_default(),
            )
        };
        let mut done = vec![];
        for (s, t) in wanted {
            if let Ok(mut c) = current.lock() {
                *c = format!("{s}.{t}");
            }
            let snapshot = take_snapshot(&ctx, &s, &t, None).await;
            let (info, state) = snapshot.inspect_err(|_| progress.finish())?;
            progress.step(Some(format!(
                "resynced {}: {} rows",
                info.qualified(),
                state.snapshot_rows
            )));
            done.push((info.qualified(), state.snapshot_rows));
        }
        progress.finish();
        let why = cause.as_ref().map_or("requested", Break::case);
        if cause.is_some() || observed.recorded.is_none() {
            // Every replica now starts at the slot's position: the stream continues from it.
            let at = slot::health(&ctx.stream, &ctx.slot).await?.confirmed_flush;
            let lake = &ctx.sink.lake;
            continuity::start(lake, name, &ctx.slot, observed.origin, at, why).await?;
        }
        let rows = done.iter().map(|(_, n)| n).sum();
        ctx.record(ledger::RunRecord {
            rows_in: rows,
            rows_loaded: rows,
            ..ctx.ledger_row(
                started,
                serde_json::json!({"kind": "resync", "cause": why, "tables": done.iter().map(|(t, _)| t).collect::<Vec<_>>()}),
            )
        })
        .await?;
        out.extend(done);
    }
    Ok(out)
}

/// Stops replicating tables that left the publication: their replicas stay as they are and
/// no run reads or checks them again. A table still in the publication is refused (the next
/// run would snapshot it again: that is `resync`).
pub async fn forget(
    pipeline: &Pipeline,
    target_name: &str,
    only: Option<&str>,
    tables: &[String],
) -> Result<Vec<String>> {
    let target = pipeline.target(target_name)?;
    let run_id = new_run_id();
    let mut out = vec![];
    for (name, source, cdc) in cdc_sources(pipeline, only)? {
        let started = chrono::Utc::now();
        let ctx = source_ctx(pipeline, &target, name, source, cdc, &run_id).await?;
        let published = slot::publication_tables(&ctx.stream, &ctx.publication).await?;
        let mut forgotten = vec![];
        for t in tables {
            let (s, t) = sluice::config::qualify(t);
            if published.contains(&(s.clone(), t.clone())) {
                return Err(Error::config(format!(
                    "{s}.{t} is still in publication {} of source {name}: drop it from the publication first (ALTER PUBLICATION {} DROP TABLE {s}.{t}), or rebuild its replica with `cdc-sync resync --table {s}.{t}`",
                    ctx.publication, ctx.publication
                )));
            }
            if tables::forget(&ctx.sink.lake, name, &catalog::replica_table(&s, &t)).await? {
                forgotten.push(format!("{s}.{t}"));
            }
        }
        if !forgotten.is_empty() {
            ctx.record(ledger::RunRecord {
                ..ctx.ledger_row(
                    started,
                    serde_json::json!({"kind": "forget", "tables": forgotten}),
                )
            })
            .await?;
        }
        out.extend(forgotten);
    }
    Ok(out)
}

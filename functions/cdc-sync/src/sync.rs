//! `cdc-sync run` for one source: snapshot the tables new to the publication, then apply the
//! slot's batches in order (stage, MERGE, history), recording each in the ledger, with the
//! slot advanced only after BigQuery has committed them. Also the benchmark's stage-only drain.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use sluice::catalog;
use sluice::config::Pipeline;
use sluice::ledger::{RunRecord, Status};
use sluice::progress::Progress;
use sluice::types::PgType;
use sluice::{Error, Result};

use crate::apply::Applied;
use crate::source::{cdc_sources, source_ctx, SourceCtx};
use crate::stream::{for_each_batch, Batch};
use crate::tables::TableInfo;
use crate::{continuity, slot, snapshot, tables, CrashPoint, Options, Summary};

/// Snapshots a table at the slot's current position and records it in the ledger.
pub(crate) async fn take_snapshot(
    ctx: &SourceCtx<'_>,
    schema: &str,
    table: &str,
    crash: Option<CrashPoint>,
) -> Result<(TableInfo, tables::TableState)> {
    let health = slot::health(&ctx.stream, &ctx.slot).await?;
    let started = chrono::Utc::now();
    let lsn = health.confirmed_flush;
    let (info, state) = snapshot::snapshot(
        &ctx.catalog,
        &ctx.sink,
        schema,
        table,
        lsn,
        ctx.cdc.on_unsupported,
        &ctx.run_id,
        crash,
    )
    .await?;
    let rows = state.snapshot_rows;
    ctx.record(RunRecord {
        table_name: Some(info.bq_name.clone()),
        lsn_range: Some(format!("snapshot@{lsn}")),
        rows_in: rows,
        rows_loaded: rows,
        ..ctx.ledger_row(started, json!({"kind": "snapshot"}))
    })
    .await?;
    Ok((info, state))
}

/// Benchmark support: drains `slot` — a copy of the pipeline's slot made with
/// `pg_copy_logical_replication_slot`, never the slot itself — decoding each batch and staging it
/// as Parquet in the lake, without BigQuery. Returns the changes and Parquet bytes staged.
pub async fn decode_and_stage(
    pipeline: &Pipeline,
    target_name: &str,
    source_name: &str,
    slot_copy: &str,
    batch_changes: u32,
) -> Result<(u64, u64)> {
    let target = pipeline.target(target_name)?;
    let (name, source, cdc) = cdc_sources(pipeline, Some(source_name))?
        .into_iter()
        .next()
        .ok_or_else(|| Error::config(format!("no source {source_name}")))?;
    if slot_copy == cdc.slot(name) {
        return Err(Error::config(
            "decode_and_stage advances its slot without loading BigQuery: give it a copy",
        ));
    }
    let mut ctx = source_ctx(pipeline, &target, name, source, cdc, "stage").await?;
    ctx.slot = slot_copy.to_string();
    let mut types = HashMap::new();
    let (mut changes, mut bytes) = (0, 0);
    loop {
        // Each batch is staged before reading on, as `run` applies it.
        let peeked = for_each_batch(&ctx, batch_changes, &mut types, None, async |b: Batch| {
            bytes += stage_batch(&ctx, &b).await?;
            changes += b.changes;
            Ok(true)
        })
        .await?;
        if !peeked.more {
            break;
        }
    }
    Ok((changes, bytes))
}

/// Writes a batch's changes as Parquet in the lake, as `run` does (benchmark only).
async fn stage_batch(ctx: &SourceCtx<'_>, batch: &Batch) -> Result<u64> {
    let range = batch.range();
    let mut bytes = 0;
    for segs in batch.tables.values() {
        for (i, seg) in segs.iter().enumerate() {
            bytes += ctx.sink.stage(seg, &range, i).await?.1;
        }
    }
    Ok(bytes)
}

/// The state of a published table, snapshotting it first if it has no replica yet.
async fn snapshot_if_new(
    ctx: &SourceCtx<'_>,
    schema: &str,
    table: &str,
    summary: &mut Summary,
    crash: Option<CrashPoint>,
) -> Result<tables::TableState> {
    let bq_name = catalog::replica_table(schema, table);
    if let Some(state) = tables::read_state(&ctx.sink.lake, &ctx.name, &bq_name).await? {
        return Ok(state);
    }
    let (info, state) = take_snapshot(ctx, schema, table, crash).await?;
    summary
        .snapshots
        .push((info.qualified(), state.snapshot_rows));
    Ok(state)
}

/// Replicates one source until caught up (or `--once`, `--max-duration`).
pub(crate) async fn sync_source(
    ctx: &SourceCtx<'_>,
    opts: &Options,
    summary: &mut Summary,
) -> Result<()> {
    let started = Instant::now();
    let run_started = chrono::Utc::now();
    // Before anything is read or merged: is this the stream the replicas came from?
    let (published, slot_row) = continuity::check(ctx).await?;
    summary.retained_wal_bytes = slot_row.retained_wal_bytes;
    let mut crash = opts.crash;
    for (s, t) in &published {
        snapshot_if_new(ctx, s, t, summary, crash).await?;
    }
    let max = opts.batch_changes.unwrap_or(ctx.cdc.batch_changes);
    let mut types: HashMap<u32, PgType> = HashMap::new();
    let status = Arc::new(std::sync::Mutex::new(String::from("reading the slot")));
    let progress = {
        let status = status.clone();
        Progress::start("replicating", None, opts.progress, move || {
            status.lock().map(|s| s.clone()).unwrap_or_default()
        })
    };
    let out_of_time = || opts.max_duration.is_some_and(|m| started.elapsed() >= m);
    loop {
        if out_of_time() {
            tracing::info!("max duration reached; stopping after the committed batches");
            break;
        }
        let mut batch_started = chrono::Utc::now();
        // A crash asked for at the advance applies to the first peek only, like the others.
        let crash_at_advance = crash;
        let peeked = for_each_batch(ctx, max, &mut types, crash_at_advance, async |batch: Batch| {
            let to = batch.to.expect("a finished batch ends at a commit");
            if summary.batches == 0 {
                summary.lag_seconds = batch
                    .first_commit
                    .map(|c| (chrono::Utc::now().timestamp_micros() - c).max(0) as f64 / 1e6)
                    .unwrap_or(0.0);
            }
            let range = batch.range();
            let applied = match apply_batch(ctx, &batch, &range, crash, summary).await {
                Ok(a) => a,
                Err(e) => {
                    // The batch's own error is the one to report.
                    let _ =
                        record_batch(ctx, &batch, &range, batch_started, &[], Some(&e), summary)
                            .await;
                    return Err(e);
                }
            };
            record_batch(ctx, &batch, &range, batch_started, &applied, None, summary).await?;
            batch_started = chrono::Utc::now();
            crash = None;
            summary.batches += 1;
            summary.changes += batch.changes;
            for a in &applied {
                *summary.tables.entry(a.table.clone()).or_default() += a.changes;
            }
            tracing::info!(range = %range, changes = batch.changes, transactions = batch.transactions, "batch applied");
            if let Ok(mut s) = status.lock() {
                *s = format!(
                    "{} changes in {} batches, at {to}",
                    summary.changes, summary.batches
                );
            }
            progress.step(None);
            Ok(!(opts.once || out_of_time()))
        })
        .await?;
        if let Some(to) = peeked.advanced_to {
            summary.last_lsn = Some(to.to_string());
            tracing::info!(lsn = %to, "slot advanced");
        }
        if peeked.stopped {
            break;
        }
        if !peeked.more {
            // Caught up with what was committed when the peek started.
            if opts.follow && opts.max_duration.is_some_and(|m| started.elapsed() < m) {
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
            break;
        }
    }
    progress.finish();
    // The WAL the slot holds back once the run has moved it.
    let health = slot::health(&ctx.stream, &ctx.slot).await?;
    summary.retained_wal_bytes = health.retained_wal_bytes;
    let warn_bytes = ctx.cdc.retained_wal_warn_mib as i64 * 1024 * 1024;
    if health.retained_wal_bytes > warn_bytes {
        tracing::warn!(
            slot = %ctx.slot,
            retained_mib = health.retained_wal_bytes / (1024 * 1024),
            threshold_mib = ctx.cdc.retained_wal_warn_mib,
            "the slot retains a lot of WAL: runs are falling behind, or a long transaction is open"
        );
    }
    record_health(ctx, summary, run_started).await
}

/// One ledger row per source and run: the slot's health, whatever the run found to do.
async fn record_health(
    ctx: &SourceCtx<'_>,
    summary: &Summary,
    started: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    let details = json!({
        "kind": "run",
        "slot": ctx.slot,
        "batches": summary.batches,
        "retained_wal_bytes": summary.retained_wal_bytes,
        "lag_seconds": summary.lag_seconds,
        "snapshots": summary.snapshots.len(),
    });
    ctx.record(RunRecord {
        lsn_range: summary.last_lsn.as_ref().map(|l| format!("run..{l}")),
        rows_in: summary.changes,
        rows_loaded: summary.changes,
        ..ctx.ledger_row(started, details)
    })
    .await
}

async fn apply_batch(
    ctx: &SourceCtx<'_>,
    batch: &Batch,
    range: &str,
    crash: Option<CrashPoint>,
    summary: &mut Summary,
) -> Result<Vec<Applied>> {
    let mut out = vec![];
    for segs in batch.tables.values() {
        let first = &segs[0].info;
        // A table the stream knows but the replica does not: snapshot it first.
        let state = snapshot_if_new(ctx, &first.schema, &first.name, summary, crash).await?;
        for (i, seg) in segs.iter().enumerate() {
            if state.key != seg.info.key_names() {
                return Err(Error::bigquery(
                    format!("replicating {}", seg.info.qualified()),
                    sluice::ErrorKind::Permanent,
                    format!(
                        "the primary key of {} changed from ({}) to ({}); run `cdc-sync resync --table {}` to rebuild its replica",
                        seg.info.qualified(),
                        state.key.join(", "),
                        seg.info.key_names().join(", "),
                        seg.info.qualified()
                    ),
                ));
            }
            if !seg.info.keyed() && seg.counts.updates + seg.counts.deletes > 0 {
                tracing::warn!(table = %seg.info.qualified(), "no primary key: updates and deletes are kept as history rows");
            }
            out.push(ctx.sink.apply(seg, range, i, &ctx.run_id, crash).await?);
        }
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
async fn record_batch(
    ctx: &SourceCtx<'_>,
    batch: &Batch,
    range: &str,
    started: chrono::DateTime<chrono::Utc>,
    applied: &[Applied],
    error: Option<&Error>,
    summary: &Summary,
) -> Result<()> {
    let counts: BTreeMap<String, serde_json::Value> = batch
        .tables
        .iter()
        .map(|(t, segs)| {
            let c: Vec<_> = segs
                .iter()
                .map(|s| serde_json::to_value(s.counts).unwrap_or_default())
                .collect();
            (t.clone(), json!(c))
        })
        .collect();
    let details = json!({
        "slot": ctx.slot,
        "transactions": batch.transactions,
        "tables": counts,
        "applied": applied,
        "retained_wal_bytes": summary.retained_wal_bytes,
        "lag_seconds": summary.lag_seconds,
    });
    let failed = error.is_some();
    ctx.record(RunRecord {
        lsn_range: Some(range.to_string()),
        status: if failed {
            Status::Failed
        } else {
            Status::Success
        },
        rows_in: batch.changes,
        rows_loaded: if failed {
            0
        } else {
            applied.iter().map(|a| a.changes).sum()
        },
        bytes: applied.iter().map(|a| a.bytes).sum(),
        error: error.map(|e| e.to_string()),
        ..ctx.ledger_row(started, details)
    })
    .await
}

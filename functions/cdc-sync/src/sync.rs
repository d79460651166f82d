//! `cdc-sync run`: per source, snapshot the tables new to the publication, then apply the
//! slot's batches in order (stage, MERGE, history), recording each in the ledger, with the
//! slot advanced only after BigQuery has committed them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use sluice::catalog;
use sluice::config::Pipeline;
use sluice::ledger::{new_run_id, RunRecord, Status};
use sluice::progress::Progress;
use sluice::types::PgType;
use sluice::{Error, Result};
use tracing::Instrument;

use crate::failpoints::CrashPoint;
use crate::sink::Applied;
use crate::source::{cdc_sources, source_ctx, SourceCtx};
use crate::stream::{for_each_batch, Batch};
use crate::tables::TableInfo;
use crate::{apply, continuity, slot, snapshot, tables};

/// What a run does.
#[derive(Debug, Clone)]
pub struct Options {
    pub target: String,
    /// Only this source (default: every source with a `cdc:` block).
    pub source: Option<String>,
    /// Stop starting new batches after this long (the Cloud Run task timeout minus a margin).
    pub max_duration: Option<Duration>,
    /// One batch only.
    pub once: bool,
    /// Keep polling for new changes until `max_duration` instead of stopping when caught up.
    pub follow: bool,
    /// Override of `cdc.batch_changes`.
    pub batch_changes: Option<u32>,
    /// Tests only: stop as if crashed at this point of the first batch.
    pub crash: Option<CrashPoint>,
    /// Show progress on a terminal.
    pub progress: bool,
}

impl Options {
    pub fn new(target: &str) -> Options {
        Options {
            target: target.to_string(),
            source: None,
            max_duration: None,
            once: false,
            follow: false,
            batch_changes: None,
            crash: None,
            progress: false,
        }
    }
}

/// What a run did, per source.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub run_id: String,
    pub batches: u64,
    pub changes: u64,
    pub snapshots: Vec<(String, u64)>,
    pub tables: BTreeMap<String, u64>,
    pub retained_wal_bytes: i64,
    pub lag_seconds: f64,
    pub last_lsn: Option<String>,
}

/// Drains the slot of every CDC source (or one) into BigQuery.
pub async fn run(pipeline: &Pipeline, opts: &Options) -> Result<Summary> {
    let target = pipeline.target(&opts.target)?;
    let run_id = new_run_id();
    let mut summary = Summary {
        run_id: run_id.clone(),
        ..Summary::default()
    };
    for (name, source, cdc) in cdc_sources(pipeline, opts.source.as_deref())? {
        let span = tracing::info_span!("cdc-sync", run_id = %run_id, source = %name);
        let ctx = source_ctx(pipeline, &target, name, source, cdc, &run_id)
            .instrument(span.clone())
            .await?;
        sync_source(&ctx, opts, &mut summary)
            .instrument(span)
            .await?;
    }
    Ok(summary)
}

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
async fn sync_source(ctx: &SourceCtx<'_>, opts: &Options, summary: &mut Summary) -> Result<()> {
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
            out.push(apply::apply(&ctx.sink, seg, range, i, &ctx.run_id, crash).await?);
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

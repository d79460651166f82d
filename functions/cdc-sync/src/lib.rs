//! cdc-sync: Postgres change data capture into BigQuery replica tables.
//!
//! Each run drains a logical replication slot (pgoutput) in bounded batches. A batch is
//! decoded, written as Parquet to `cdc/<source>/<table>/<from>-<to>.parquet`, loaded into a
//! staging table, MERGEd into the replica (latest change per key, only if newer than the row's
//! `_sluice_lsn`), and only then is the slot advanced. A crash between any two steps followed by
//! a rerun gives the same replica. Tables new to the publication are snapshotted first. Before
//! reading anything a run checks that the slot continues the stream the replicas came from
//! (`continuity`), and a caught-up run moves the slot to the server's flushed position even
//! when the published tables were idle, so retained WAL stays bounded.

//! Where things live: `source` opens a source for a run (connections, sink, recorder);
//! `stream` reads the slot in bounded batches; `sync` drives a run (snapshots of new tables,
//! then batches, with the slot advanced only after BigQuery committed); `snapshot` copies a
//! table through the lake; `changes` collects one table's changes of a batch; `layout` says
//! the columns of staged changes, replicas and history tables; `sql` writes the MERGE;
//! `apply` (the `Sink`) brings replicas up to date; `tables` reads a table's shape and its
//! state in the lake; `slot` administers publications and slots; `continuity` remembers each
//! source's stream and names its breaks; `status` compares sources with their replicas, by
//! content through `verify`.

mod apply;
mod changes;
mod continuity;
mod layout;
mod slot;
mod snapshot;
mod source;
mod sql;
mod status;
mod stream;
mod sync;
mod tables;
mod verify;

pub use continuity::Break;
pub use slot::{InitReport, SlotHealth};
pub use status::{check, status, SourceStatus, TableStatus, Verdict};
pub use sync::decode_and_stage;
pub use verify::{Difference, Found, Queries};

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use sluice::catalog;
use sluice::config::{self, Pipeline};
use sluice::lake::Lake;
use sluice::ledger::{self, new_run_id};
use sluice::postgres::connect;
use sluice::progress::Progress;
use sluice::secret_manager::resolve_dsn;
use sluice::{Error, Result};
use tracing::Instrument;

use crate::source::{cdc_sources, source_ctx};
use crate::sync::{sync_source, take_snapshot};

/// Places where tests stop a run as if it had crashed: the step boundaries of the first batch,
/// and of the first snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// After the batch is in the lake and its staging table is loaded.
    AfterLoad,
    /// After the MERGE, before the slot advances.
    AfterMerge,
    /// The new position is remembered in the lake; the slot has not advanced yet.
    PositionRecorded,
    /// A snapshot's Parquet files are in the lake.
    SnapshotInLake,
    /// The replica table exists (created, or its columns brought up to date).
    SnapshotReplicaReady,
    /// The snapshot is loaded into its staging table.
    SnapshotStaged,
    /// The replica holds the snapshot; its staging table and state are not yet done.
    SnapshotReplaced,
    /// The staging table is gone; the table's state is not yet written.
    SnapshotCleaned,
}

impl CrashPoint {
    /// Every boundary of a snapshot, in order.
    pub const SNAPSHOT: [CrashPoint; 5] = [
        CrashPoint::SnapshotInLake,
        CrashPoint::SnapshotReplicaReady,
        CrashPoint::SnapshotStaged,
        CrashPoint::SnapshotReplaced,
        CrashPoint::SnapshotCleaned,
    ];
}

/// Stops here as if crashed when a test asked for this point (with the `failpoints` feature;
/// without it, never).
pub(crate) fn crash_at(wanted: Option<CrashPoint>, here: CrashPoint) -> Result<()> {
    #[cfg(feature = "failpoints")]
    if wanted == Some(here) {
        return Err(Error::Injected(format!("crash at {here:?}")));
    }
    let _ = (wanted, here);
    Ok(())
}

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

/// Creates the publication and slot of every CDC source (or one), idempotently; adopts a
/// publication the tables' owner made. A role without the rights fails naming what it lacks,
/// with the SQL for whoever has them.
pub async fn init(
    pipeline: &Pipeline,
    target_name: &str,
    only: Option<&str>,
) -> Result<Vec<(String, slot::InitReport)>> {
    let target = pipeline.target(target_name)?;
    let mut out = vec![];
    for (name, source, cdc) in cdc_sources(pipeline, only)? {
        let dsn = resolve_dsn(target.dsn_ref(name, source), &target).await?;
        let conn = connect(name, &dsn, "sluice-cdc-sync", &target.timeouts).await?;
        let report = slot::init(&conn, name, cdc).await?;
        if let Some(lsn) = report.slot_lsn.as_deref().filter(|_| report.slot_created) {
            // A new slot starts a new stream: replicas made from an older one need new
            // snapshots, which the next run takes for every table without state.
            let lake = Lake::open(&target.lake, &sluice::auth::Auth::for_target(&target))?;
            let forgotten = tables::forget_all(&lake, name).await?;
            if forgotten > 0 {
                tracing::info!(source = %name, tables = forgotten, "new slot: every table will be snapshotted again");
            }
            let at = lsn
                .parse()
                .map_err(|e: sluice::postgres::pgoutput::DecodeError| {
                    Error::config(format!("slot {} created at {lsn}: {}", cdc.slot(name), e.0))
                })?;
            let origin = continuity::origin(&conn).await?;
            continuity::start(&lake, name, &cdc.slot(name), origin, at, "init").await?;
        }
        out.push((name.clone(), report));
    }
    Ok(out)
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
            tables.iter().map(|t| config::qualify(t)).collect()
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
            let (s, t) = config::qualify(t);
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

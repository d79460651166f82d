//! cdc-sync: Postgres change data capture into BigQuery replica tables.
//!
//! Each run drains a logical replication slot (pgoutput) in bounded batches. A batch is
//! decoded, written as Parquet to `cdc/<source>/<table>/<from>-<to>.parquet`, loaded into a
//! staging table, MERGEd into the replica (latest change per key, only if newer than the row's
//! `_sluice_lsn`), and only then is the slot advanced. A crash between any two steps followed by
//! a rerun gives the same replica. Tables new to the publication are snapshotted first.

pub mod apply;
pub mod changes;
pub mod layout;
pub mod slot;
pub mod snapshot;
pub mod sql;
pub mod tables;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use serde_json::json;
use sluice::bigquery::BigQuery;
use sluice::catalog;
use sluice::config::{resolve_dsn, CdcConfig, Pipeline, Source, Target};
use sluice::lake::Lake;
use sluice::ledger::{new_run_id, Ledger, Recorder, RunRecord, Status, Worker};
use sluice::postgres::pgoutput::{self, Lsn, Message};
use sluice::postgres::{connect, Answer, PgConnection};
use sluice::progress::Progress;
use sluice::types::PgType;
use sluice::{Error, Result};
use tokio_postgres::RowStream;
use tracing::Instrument;

use crate::apply::{Applied, Sink};
use crate::changes::{Position, TableChanges};
use crate::tables::TableInfo;

/// Places where tests stop a run as if it had crashed: the step boundaries of the first batch,
/// and of the first snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// After the batch is in the lake and its staging table is loaded.
    AfterLoad,
    /// After the MERGE, before the slot advances.
    AfterMerge,
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

/// A source with CDC, ready to go.
struct SourceCtx<'a> {
    name: String,
    cdc: &'a CdcConfig,
    publication: String,
    slot: String,
    sink: Sink,
    recorder: Recorder,
    run_id: String,
    /// Reads the slot (one query at a time: a peek streams on it).
    stream: PgConnection,
    /// Catalog lookups and snapshots while a peek streams.
    catalog: PgConnection,
}

impl SourceCtx<'_> {
    /// A successful ledger row of this run and source, started at `started`, finished now;
    /// callers fill in what they did.
    fn ledger_row(
        &self,
        started: chrono::DateTime<chrono::Utc>,
        details: serde_json::Value,
    ) -> RunRecord {
        RunRecord {
            source: Some(self.name.clone()),
            details,
            ..self.recorder.row(started)
        }
    }

    /// Writes a ledger row; one that cannot be written fails the run before the slot
    /// advances (the ledger's policy: the rerun replays the batches and writes it).
    async fn record(&self, r: RunRecord) -> Result<()> {
        self.recorder.record(&r).await
    }
}

fn cdc_sources<'a>(
    pipeline: &'a Pipeline,
    only: Option<&str>,
) -> Result<Vec<(&'a String, &'a Source, &'a CdcConfig)>> {
    let v: Vec<_> = pipeline
        .sources
        .iter()
        .filter(|(n, _)| only.is_none_or(|o| o == n.as_str()))
        .filter_map(|(n, s)| s.cdc.as_ref().map(|c| (n, s, c)))
        .collect();
    if v.is_empty() {
        return Err(Error::config(match only {
            Some(o) if pipeline.sources.contains_key(o) => {
                format!("source {o} has no `cdc:` block in the pipeline")
            }
            Some(o) => format!("no source named {o} in the pipeline"),
            None => "no source has a `cdc:` block in the pipeline".into(),
        }));
    }
    Ok(v)
}

async fn source_ctx<'a>(
    pipeline: &'a Pipeline,
    target: &'a Target,
    name: &str,
    source: &'a Source,
    cdc: &'a CdcConfig,
    run_id: &str,
) -> Result<SourceCtx<'a>> {
    let dsn = resolve_dsn(target.dsn_ref(name, source), &target.timeouts).await?;
    let stream = connect(name, &dsn, "sluice-cdc-sync", &target.timeouts).await?;
    let catalog = connect(name, &dsn, "sluice-cdc-sync-catalog", &target.timeouts).await?;
    for c in [&stream, &catalog] {
        // Snapshots decode binary COPY in UTC like pg-copy.
        c.batch_execute("setting the session time zone", "SET TIME ZONE 'UTC'")
            .await?;
    }
    let bq = BigQuery::for_target(target)?;
    let lake = Lake::open(&target.lake)?;
    let ledger = Ledger::open(bq.clone(), &target.dataset(&pipeline.bigquery.ops_dataset)).await?;
    let sink = Sink {
        bq,
        lake,
        dataset: target.dataset(&catalog::replica_dataset(cdc, name)),
        staging_dataset: target.dataset(&pipeline.bigquery.staging_dataset),
        source: name.to_string(),
        slot: cdc.slot(name),
        job_prefix: format!("{}_{}", pipeline.name, target.name),
        deletes: cdc.deletes,
        history: cdc.history.clone(),
        checked: Default::default(),
    };
    Ok(SourceCtx {
        name: name.to_string(),
        cdc,
        publication: cdc.publication(name),
        slot: cdc.slot(name),
        sink,
        recorder: ledger.recorder(run_id, Worker::CdcSync, &target.name),
        run_id: run_id.to_string(),
        stream,
        catalog,
    })
}

/// Creates the publication and slot of every CDC source (or one), idempotently.
pub async fn init(
    pipeline: &Pipeline,
    target_name: &str,
    only: Option<&str>,
) -> Result<Vec<(String, slot::InitReport)>> {
    let target = pipeline.target(target_name)?;
    let mut out = vec![];
    for (name, source, cdc) in cdc_sources(pipeline, only)? {
        let dsn = resolve_dsn(target.dsn_ref(name, source), &target.timeouts).await?;
        let conn = connect(name, &dsn, "sluice-cdc-sync", &target.timeouts).await?;
        let report = slot::init(&conn, cdc, &cdc.publication(name), &cdc.slot(name)).await?;
        if report.slot_created {
            // A new slot starts a new stream: replicas made from an older one need new
            // snapshots, which the next run takes for every table without state.
            let lake = Lake::open(&target.lake)?;
            let forgotten = tables::forget_all(&lake, name).await?;
            if forgotten > 0 {
                tracing::info!(source = %name, tables = forgotten, "new slot: every table will be snapshotted again");
            }
        }
        out.push((name.clone(), report));
    }
    Ok(out)
}

/// One replicated table compared with its source.
#[derive(Debug, Clone)]
pub struct TableStatus {
    pub table: String,
    pub postgres_rows: i64,
    /// Live rows of the replica (not soft-deleted), or every change of an append-only table.
    pub replica_rows: Option<u64>,
    pub append_only: bool,
    pub last_synced: Option<String>,
}

/// Per source: the slot's health and each published table's row counts in Postgres and in
/// its replica (equal when the slot is drained and nothing writes meanwhile).
pub async fn status(
    pipeline: &Pipeline,
    target_name: &str,
    only: Option<&str>,
) -> Result<Vec<(String, slot::SlotHealth, Vec<TableStatus>)>> {
    let target = pipeline.target(target_name)?;
    let mut out = vec![];
    for (name, source, cdc) in cdc_sources(pipeline, only)? {
        let ctx = source_ctx(pipeline, &target, name, source, cdc, "status").await?;
        let health = slot::health(&ctx.stream, &ctx.slot).await?;
        let mut tables_out = vec![];
        for (s, t) in slot::publication_tables(&ctx.stream, &ctx.publication).await? {
            let qualified = format!("{s}.{t}");
            let postgres_rows: i64 = ctx
                .stream
                .query_one(
                    &format!("counting {qualified}"),
                    &sluice::postgres::catalog::count_rows_sql(&s, &t),
                    &[],
                )
                .await?
                .get(0);
            let bq_name = catalog::replica_table(&s, &t);
            let state = tables::read_state(&ctx.sink.lake, name, &bq_name).await?;
            let append_only = state.as_ref().is_some_and(|st| st.key.is_empty());
            let (replica_rows, last_synced) = if state.is_none() {
                (None, None)
            } else {
                let replica = sluice::bigquery::sql::table_ref(
                    ctx.sink.bq.project(),
                    &ctx.sink.dataset,
                    &bq_name,
                );
                let r = ctx
                    .sink
                    .bq
                    .query(&crate::sql::replica_status(&replica, append_only), &[])
                    .await?;
                (
                    r.get(0, "n").and_then(|n| n.parse().ok()),
                    r.get(0, "t").map(String::from),
                )
            };
            tables_out.push(TableStatus {
                table: qualified,
                postgres_rows,
                replica_rows,
                append_only,
                last_synced,
            });
        }
        out.push((name.clone(), health, tables_out));
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
        let mut ctx = source_ctx(pipeline, &target, name, source, cdc, &run_id)
            .instrument(span.clone())
            .await?;
        sync_source(&mut ctx, opts, &mut summary)
            .instrument(span)
            .await?;
    }
    Ok(summary)
}

/// Redoes the snapshot of some tables (or all with `all`), replacing their replicas.
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
        let ctx = source_ctx(pipeline, &target, name, source, cdc, &run_id).await?;
        let published = slot::publication_tables(&ctx.stream, &ctx.publication).await?;
        let wanted: Vec<(String, String)> = if all {
            published.clone()
        } else {
            tables.iter().map(|t| catalog::qualify(t)).collect()
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
            let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
            Progress::start(
                "resyncing",
                Some(wanted.len() as u64),
                terminal,
                move || current.lock().map(|c| c.clone()).unwrap_or_default(),
            )
        };
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
            out.push((info.qualified(), state.snapshot_rows));
        }
        progress.finish();
    }
    Ok(out)
}

/// Snapshots a table at the slot's current position and records it in the ledger.
async fn take_snapshot(
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
        let health = slot::health(&ctx.stream, &ctx.slot).await?;
        let cap = batch_changes as u64 * BATCHES_PER_PEEK;
        let mut last = None;
        let mut read = 0;
        {
            let mut rows = peek(&ctx, cap).await?;
            let mut reader = BatchReader::new(&ctx, health.confirmed_flush, batch_changes);
            // Each batch is staged before reading on, as `run` applies it.
            while let Some(b) = reader.next_batch(&mut rows, &mut types).await? {
                bytes += stage_batch(&ctx, &b).await?;
                read += b.changes;
                last = b.to;
            }
        }
        changes += read;
        match last {
            Some(to) => slot::advance(&ctx.stream, &ctx.slot, to).await?,
            None => break,
        }
        if read < cap {
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

/// One batch read from the slot.
struct Batch {
    /// Per table, segments of changes (a new segment when the table's columns change mid-batch).
    tables: BTreeMap<String, Vec<TableChanges>>,
    /// Where the batch starts (the slot's position) and ends (the last commit's end).
    from: Lsn,
    to: Option<Lsn>,
    changes: u64,
    transactions: u64,
    /// Commit time of the first transaction (µs since the Unix epoch), for lag.
    first_commit: Option<i64>,
}

/// Turns the rows of one peek into batches: a batch closes at the first commit after it holds
/// `max` changes, so batches are whole transactions of bounded size.
struct BatchReader<'c> {
    ctx: &'c SourceCtx<'c>,
    /// Relation messages come once per peek, before the first change of each table.
    relations: HashMap<u32, Arc<TableInfo>>,
    /// The open transaction: its position and the ordinal the next change gets.
    tx: Option<(Position, i64)>,
    batch: Batch,
    max: u64,
    /// The peek's rows have all been read: a finished RowStream must not be polled again.
    ended: bool,
}

impl<'c> BatchReader<'c> {
    fn new(ctx: &'c SourceCtx<'c>, from: Lsn, max: u32) -> Self {
        BatchReader {
            ctx,
            relations: HashMap::new(),
            tx: None,
            batch: Batch::starting_at(from),
            max: max.max(1) as u64,
            ended: false,
        }
    }

    fn err(&self, detail: impl Into<String>) -> Error {
        Error::Decode {
            table: format!("slot {}", self.ctx.slot),
            detail: detail.into(),
        }
    }

    /// The position of the next change of the open transaction.
    fn next(&mut self, what: &str) -> Result<Position> {
        let Some((pos, ord)) = self.tx.as_mut() else {
            return Err(self.err(format!("{what} outside a transaction")));
        };
        let p = Position { ord: *ord, ..*pos };
        *ord += 1;
        Ok(p)
    }

    /// Feeds one message; returns the batch it completes, if any.
    async fn push(
        &mut self,
        data: &[u8],
        types: &mut HashMap<u32, PgType>,
    ) -> Result<Option<Batch>> {
        let msg = pgoutput::decode(data).map_err(|e| self.err(e.0))?;
        match msg {
            Message::Begin {
                final_lsn,
                commit_time,
                xid,
            } => {
                let pos = Position {
                    lsn: final_lsn.0,
                    ord: 0,
                    commit_time,
                    xid,
                };
                self.tx = Some((pos, 0));
                self.batch
                    .first_commit
                    .get_or_insert(pos.commit_unix_micros());
            }
            Message::Commit { end_lsn, .. } => {
                self.batch.to = Some(end_lsn);
                self.batch.transactions += 1;
                self.tx = None;
                if self.batch.changes >= self.max {
                    let next = Batch::starting_at(end_lsn);
                    return Ok(Some(std::mem::replace(&mut self.batch, next)));
                }
            }
            Message::Relation(rel) => {
                let info = tables::from_relation(
                    &self.ctx.catalog,
                    types,
                    &rel,
                    self.ctx.cdc.on_unsupported,
                )
                .await?;
                self.relations.insert(rel.id, Arc::new(info));
            }
            Message::Insert { relation, new } => {
                let pos = self.next("insert")?;
                segment(&mut self.batch, &self.relations, relation)?.insert(pos, &new)?;
                self.batch.changes += 1;
            }
            Message::Update { relation, old, new } => {
                let pos = self.next("update")?;
                let Some((_, next_ord)) = self.tx.as_mut() else {
                    return Err(self.err("update outside a transaction"));
                };
                segment(&mut self.batch, &self.relations, relation)?.update(
                    pos,
                    old.as_ref(),
                    &new,
                    next_ord,
                )?;
                self.batch.changes += 1;
            }
            Message::Delete { relation, old } => {
                let pos = self.next("delete")?;
                segment(&mut self.batch, &self.relations, relation)?.delete(pos, &old)?;
                self.batch.changes += 1;
            }
            Message::Truncate {
                relations: rels, ..
            } => {
                for r in rels {
                    let pos = self.next("truncate")?;
                    segment(&mut self.batch, &self.relations, r)?.truncate(pos);
                    self.batch.changes += 1;
                }
            }
            Message::Type { .. } | Message::Origin { .. } | Message::Message { .. } => {}
        }
        Ok(None)
    }

    /// Reads rows until a batch completes; at the end of the peek, the last (possibly
    /// smaller) batch, then None.
    async fn next_batch(
        &mut self,
        rows: &mut Answer<RowStream>,
        types: &mut HashMap<u32, PgType>,
    ) -> Result<Option<Batch>> {
        while !self.ended {
            let next = rows.try_next().await;
            match next.map_err(|e| slot::explain_active(e, &self.ctx.slot))? {
                Some(r) => {
                    if let Some(b) = self.push(r.get(0), types).await? {
                        return Ok(Some(b));
                    }
                }
                None => self.ended = true,
            }
        }
        self.finish()
    }

    /// The last, possibly smaller batch once the peek has ended.
    fn finish(&mut self) -> Result<Option<Batch>> {
        if self.tx.is_some() {
            return Err(self.err("the peek ended inside a transaction"));
        }
        let rest = std::mem::replace(&mut self.batch, Batch::starting_at(Lsn(0)));
        Ok(rest.to.is_some().then_some(rest))
    }
}

impl Batch {
    /// `<from>-<to>` in 16 hex digits each: names the batch's files, tables and jobs.
    fn range(&self) -> String {
        let hex = |l: Lsn| format!("{:016X}", l.0);
        format!("{}-{}", hex(self.from), hex(self.to.unwrap_or(self.from)))
    }

    fn starting_at(from: Lsn) -> Batch {
        Batch {
            tables: BTreeMap::new(),
            from,
            to: None,
            changes: 0,
            transactions: 0,
            first_commit: None,
        }
    }
}

/// Opens a peek of up to `cap` changes (whole transactions) from the slot's position; the
/// rows stream as the caller reads them.
async fn peek<'c>(ctx: &'c SourceCtx<'c>, cap: u64) -> Result<Answer<RowStream>> {
    let cap = cap.min(i32::MAX as u64) as i32;
    ctx.stream
        .query_stream(
            &format!("reading slot {}", ctx.slot),
            slot::PEEK_SQL,
            &[&ctx.slot, &cap, &ctx.publication],
        )
        .await
        .map_err(|e| slot::explain_active(e, &ctx.slot))
}

/// Batches per peek: a peek decodes the slot's WAL from its restart point, so reading many
/// batches in one peek saves decoding the same WAL again for each.
const BATCHES_PER_PEEK: u64 = 20;

/// The changes of a relation's table, in a new segment when its columns changed.
fn segment<'b>(
    batch: &'b mut Batch,
    relations: &HashMap<u32, Arc<TableInfo>>,
    relation: u32,
) -> Result<&'b mut TableChanges> {
    let info = relations.get(&relation).ok_or_else(|| Error::Decode {
        table: format!("relation {relation}"),
        detail: "a change arrived before its Relation message".into(),
    })?;
    let segs = batch.tables.entry(info.bq_name.clone()).or_default();
    if segs.last().is_none_or(|s| s.info != *info) {
        segs.push(TableChanges::new(info.clone()));
    }
    Ok(segs.last_mut().expect("pushed above"))
}

async fn sync_source(ctx: &mut SourceCtx<'_>, opts: &Options, summary: &mut Summary) -> Result<()> {
    let started = Instant::now();
    let run_started = chrono::Utc::now();
    let published = slot::publication_tables(&ctx.stream, &ctx.publication).await?;
    let health = slot::health(&ctx.stream, &ctx.slot).await?;
    summary.retained_wal_bytes = health.retained_wal_bytes;
    let warn_bytes = ctx.cdc.retained_wal_warn_mib as i64 * 1024 * 1024;
    if health.retained_wal_bytes > warn_bytes {
        tracing::warn!(
            slot = %ctx.slot,
            retained_mib = health.retained_wal_bytes / (1024 * 1024),
            threshold_mib = ctx.cdc.retained_wal_warn_mib,
            "the slot retains a lot of WAL: runs are falling behind"
        );
    }
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
    'peeks: loop {
        if out_of_time() {
            tracing::info!("max duration reached; stopping after the committed batches");
            break;
        }
        let health = slot::health(&ctx.stream, &ctx.slot).await?;
        let cap = max as u64 * BATCHES_PER_PEEK;
        let mut last: Option<Lsn> = None;
        let mut read = 0u64;
        let mut stop = false;
        {
            let mut rows = peek(ctx, cap).await?;
            let mut reader = BatchReader::new(ctx, health.confirmed_flush, max);
            let mut batch_started = chrono::Utc::now();
            while let Some(batch) = reader.next_batch(&mut rows, &mut types).await? {
                read += batch.changes;
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
                        let _ = record_batch(
                            ctx,
                            &batch,
                            &range,
                            batch_started,
                            &[],
                            Some(&e),
                            summary,
                        )
                        .await;
                        return Err(e);
                    }
                };
                record_batch(ctx, &batch, &range, batch_started, &applied, None, summary).await?;
                batch_started = chrono::Utc::now();
                crash = None;
                last = Some(to);
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
                if opts.once || out_of_time() {
                    stop = true;
                    break;
                }
            }
        }
        // Only now, with every batch of the peek in BigQuery, may Postgres forget them.
        if let Some(to) = last {
            slot::advance(&ctx.stream, &ctx.slot, to).await?;
            summary.last_lsn = Some(to.to_string());
            tracing::info!(lsn = %to, "slot advanced");
        }
        if stop {
            break 'peeks;
        }
        if read < cap {
            // Caught up with what was committed when the peek started.
            if opts.follow && opts.max_duration.is_some_and(|m| started.elapsed() < m) {
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
            break;
        }
    }
    progress.finish();
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

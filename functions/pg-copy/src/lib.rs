//! pg-copy: Postgres tables → Parquet in the lake → BigQuery, full, incremental or backfill.
//!
//! Each unit of work (a table for a logical date) is extracted into
//! `raw/<source>/<table>/dt=<ds>/` with a manifest, loaded into a staging table, swapped into
//! its target, and recorded in the run ledger. Reruns replace, never append.
//!
//! `plan` turns tables and dates into units; `extract` reads a unit into Parquet and its
//! manifest (on `sluice::postgres::to_lake`); `load` stages the files and swaps them into the
//! target (on `sluice::bigquery::staging`); `verify` compares the target with the source. This
//! file runs the units and records them; its `pub use`s are what `main` and the tests use.

mod extract;
mod load;
mod plan;
mod verify;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use chrono::{NaiveDate, Utc};
use futures::StreamExt;
use serde_json::json;
use sluice::bigquery::BigQuery;
use sluice::config::{Pipeline, Target};
use sluice::lake::Lake;
use sluice::ledger::{Ledger, Recorder, RunRecord, Status, Worker};
use sluice::progress::Progress;
use sluice::secret_manager::resolve_dsn;
use sluice::{Error, ErrorKind, Result};
use tracing::Instrument;

pub use extract::{extract, Counters, ExtractOptions};
pub use plan::{Dates, Unit};

/// What to copy and how.
#[derive(Debug, Clone)]
pub struct Options {
    pub target: String,
    pub source: Option<String>,
    pub tables: Vec<String>,
    pub dates: Dates,
    /// Reload from the lake's committed files without touching Postgres.
    pub from_lake: bool,
    /// Write the lake's files and manifests only: no BigQuery load, no ledger row (a unit
    /// copied to the lake is not loaded, and nothing downstream may think it is). Load later
    /// with `from_lake`.
    pub lake_only: bool,
    pub extract: ExtractOptions,
    /// Units (dates of a backfill, tables) run at once.
    pub concurrency: usize,
    /// Cloud Run task index and count: this task does every count-th unit.
    pub task: (usize, usize),
    /// Show a progress bar (terminal) rather than periodic log lines.
    pub progress_bar: bool,
    /// "Today" for default dates (tests pin it).
    pub today: Option<NaiveDate>,
    /// After loading, count the rows in Postgres independently and compare.
    pub verify: bool,
}

impl Options {
    pub fn new(target: &str) -> Options {
        Options {
            target: target.to_string(),
            source: None,
            tables: vec![],
            dates: Dates::Default,
            from_lake: false,
            lake_only: false,
            extract: ExtractOptions::default(),
            concurrency: 2,
            task: (0, 1),
            progress_bar: false,
            today: None,
            verify: false,
        }
    }
}

/// How one unit ended.
#[derive(Debug, Clone)]
pub struct UnitOutcome {
    pub unit: Unit,
    pub status: Status,
    pub rows_read: u64,
    pub rows_loaded: u64,
    pub bytes: u64,
    pub files: usize,
    pub dataset: String,
    pub error: Option<String>,
    /// With `verify`: rows Postgres has for the unit now.
    pub postgres_rows: Option<u64>,
}

/// The result of a run.
#[derive(Debug, Clone)]
pub struct Summary {
    pub run_id: String,
    pub units: Vec<UnitOutcome>,
}

impl Summary {
    pub fn failed(&self) -> usize {
        self.units
            .iter()
            .filter(|u| u.status == Status::Failed)
            .count()
    }
}

/// Everything a run talks to.
pub(crate) struct Ctx {
    pub(crate) pipeline: Pipeline,
    pub(crate) target: Target,
    bq: BigQuery,
    lake: Lake,
    /// None with `lake_only`: nothing is loaded, so nothing is recorded.
    recorder: Option<Recorder>,
    run_id: String,
    opts: Options,
    counters: Arc<Counters>,
    /// One lock per target table: BigQuery aborts concurrent transactions on one table, so the
    /// dates of a backfill extract in parallel but swap one at a time.
    table_locks: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Sources whose database did not answer in this run, with the error: their other units
    /// fail at once instead of each waiting out the same timeouts.
    unanswered: std::sync::Mutex<HashMap<String, String>>,
}

impl Ctx {
    /// The connection string of a unit's source in this target.
    pub(crate) async fn dsn(&self, unit: &Unit) -> Result<sluice::secret::Secret> {
        let source = self
            .pipeline
            .sources
            .get(&unit.source)
            .ok_or_else(|| Error::config(format!("no source {}", unit.source)))?;
        resolve_dsn(self.target.dsn_ref(&unit.source, source), &self.target).await
    }

    /// Fails a unit whose source did not answer an earlier unit of this run.
    fn check_answering(&self, unit: &Unit) -> Result<()> {
        let seen = self.unanswered.lock().unwrap_or_else(|p| p.into_inner());
        match seen.get(&unit.source) {
            None => Ok(()),
            Some(first) => Err(Error::Postgres {
                context: format!("copying {}", unit.label()),
                message: format!(
                    "not tried: source {} did not answer an earlier unit ({first})",
                    unit.source
                ),
                kind: ErrorKind::Unanswered,
                source: None,
            }),
        }
    }

    fn note_unanswered(&self, unit: &Unit, e: &Error) {
        if matches!(e, Error::Postgres { .. }) && e.kind() == ErrorKind::Unanswered {
            let mut seen = self.unanswered.lock().unwrap_or_else(|p| p.into_inner());
            seen.entry(unit.source.clone())
                .or_insert_with(|| e.to_string());
        }
    }

    fn table_lock(&self, unit: &Unit) -> Arc<tokio::sync::Mutex<()>> {
        let key = format!("{}.{}", unit.source, unit.table);
        let mut locks = self.table_locks.lock().expect("not poisoned");
        locks.entry(key).or_default().clone()
    }
}

/// Runs pg-copy. Errors of single units are in the summary (and the ledger); errors that stop
/// the whole run (config, BigQuery unreachable) are returned.
pub async fn run(pipeline: &Pipeline, opts: &Options) -> Result<Summary> {
    let target = pipeline.target(&opts.target)?;
    let today = opts.today.unwrap_or_else(|| Utc::now().date_naive());
    let all = plan::units(
        pipeline,
        opts.source.as_deref(),
        &opts.tables,
        &opts.dates,
        today,
    )?;
    let units = plan::for_task(all, opts.task.0, opts.task.1);
    let run_id = sluice::ledger::new_run_id();
    let span = tracing::info_span!("pg_copy", run_id = %run_id, target = %target.name);
    async {
        if opts.lake_only && opts.from_lake {
            return Err(Error::config(
                "--lake-only writes the lake from Postgres and --from-lake loads from it: give one",
            ));
        }
        let bq = BigQuery::for_run(&target, Worker::PgCopy.as_str(), &run_id)?;
        let lake = Lake::open(&target.lake, &sluice::auth::Auth::for_target(&target))?;
        let recorder = if opts.lake_only {
            None
        } else {
            let ops = target.dataset(&pipeline.bigquery.ops_dataset);
            let ledger = Ledger::open(bq.clone(), &ops).await?;
            Some(ledger.recorder(&run_id, Worker::PgCopy, &target.name))
        };
        tracing::info!(
            units = units.len(),
            from_lake = opts.from_lake,
            lake_only = opts.lake_only,
            "run started"
        );
        // Units copied at once share the CPUs.
        let mut opts = opts.clone();
        let at_once = opts.concurrency.clamp(1, units.len().max(1));
        opts.extract.cpus = (opts.extract.cpus / at_once).max(1);
        let ctx = Arc::new(Ctx {
            pipeline: pipeline.clone(),
            target,
            bq,
            lake,
            recorder,
            run_id: run_id.clone(),
            opts: opts.clone(),
            counters: Arc::new(Counters::default()),
            table_locks: Default::default(),
            unanswered: Default::default(),
        });
        let counters = ctx.counters.clone();
        let started = std::time::Instant::now();
        let reporter = Progress::start(
            "copying",
            Some(units.len() as u64),
            opts.progress_bar,
            move || {
                let rows = counters.rows.load(Ordering::Relaxed);
                let mb = counters.bytes.load(Ordering::Relaxed) as f64 / 1e6;
                let secs = started.elapsed().as_secs_f64().max(1e-3);
                format!(
                    "{rows} rows · {mb:.1} MB · {:.0} rows/s",
                    rows as f64 / secs
                )
            },
        );
        let outcomes: Vec<UnitOutcome> = futures::stream::iter(units.into_iter().map(|u| {
            let ctx = ctx.clone();
            let reporter = reporter.clone();
            async move {
                let o = run_unit(&ctx, u).await;
                let status = if o.error.is_some() { "failed" } else { "done" };
                reporter.step(Some(format!(
                    "{status:>6} {} ({} rows)",
                    o.unit.label(),
                    o.rows_loaded
                )));
                o
            }
        }))
        .buffered(opts.concurrency.max(1))
        .collect()
        .await;
        reporter.finish();
        Ok(Summary {
            run_id: run_id.clone(),
            units: outcomes,
        })
    }
    .instrument(span)
    .await
}

async fn run_unit(ctx: &Ctx, unit: Unit) -> UnitOutcome {
    let started = Utc::now();
    let span = tracing::info_span!("unit", table = %format!("{}.{}", unit.source, unit.table), ds = %unit.ds);
    let result = copy_unit(ctx, &unit).instrument(span.clone()).await;
    let finished = Utc::now();
    let mut outcome = UnitOutcome {
        unit: unit.clone(),
        status: Status::Success,
        rows_read: 0,
        rows_loaded: 0,
        bytes: 0,
        files: 0,
        dataset: ctx
            .target
            .dataset(sluice::catalog::raw_dataset(&ctx.pipeline, &unit.source)),
        error: None,
        postgres_rows: None,
    };
    let mut details = json!({"mode": unit.config.mode, "from_lake": ctx.opts.from_lake});
    match &result {
        Ok((m, l)) => {
            outcome.rows_read = m.rows;
            outcome.rows_loaded = l.as_ref().map(|l| l.rows).unwrap_or(0);
            outcome.bytes = m.bytes;
            outcome.files = m.files.len();
            details["decode"] = m.decode_stats.clone();
            details["files"] = json!(m.files.len());
            details["jobs"] = json!(l.as_ref().map(|l| l.job_ids.clone()));
            details["lake_run_id"] = json!(m.run_id);
            // With --lake-only the rows to compare are those the manifest holds.
            let kept = l.as_ref().map(|l| l.rows).unwrap_or(m.rows);
            if kept != m.rows {
                // The swap committed, but the table disagrees with what was read: say so loudly.
                outcome.status = Status::Failed;
                outcome.error = Some(format!(
                    "{} rows read from the lake but {kept} in BigQuery after the load",
                    m.rows
                ));
            }
            span.in_scope(|| {
                tracing::info!(
                    rows = m.rows,
                    bytes = m.bytes,
                    files = m.files.len(),
                    "unit loaded"
                )
            });
            if ctx.opts.verify {
                match verify::postgres_rows(ctx, &unit).await {
                    Ok(n) => {
                        outcome.postgres_rows = Some(n);
                        details["postgres_rows"] = json!(n);
                        if n != kept {
                            let there = if l.is_some() { "BigQuery" } else { "the lake" };
                            outcome.status = Status::Failed;
                            outcome.error = Some(format!("Postgres has {n} rows, {there} {kept}"));
                        }
                    }
                    Err(e) => {
                        outcome.status = Status::Failed;
                        outcome.error = Some(format!("verify: {e}"));
                    }
                }
            }
        }
        Err(e) => {
            outcome.status = Status::Failed;
            outcome.error = Some(e.to_string());
            details["error_kind"] = json!(e.kind().to_string());
            span.in_scope(|| tracing::error!(error = %e, "unit failed"));
        }
    }
    let Some(recorder) = &ctx.recorder else {
        return outcome;
    };
    let record = RunRecord {
        source: Some(unit.source.clone()),
        table_name: Some(unit.table.clone()),
        logical_date: Some(unit.ds),
        finished_at: finished,
        status: outcome.status,
        rows_in: outcome.rows_read,
        rows_loaded: outcome.rows_loaded,
        bytes: outcome.bytes,
        error: outcome.error.clone(),
        details,
        ..recorder.row(started)
    };
    if let Err(e) = recorder.record(&record).await {
        tracing::error!(error = %e, "could not write the run ledger");
        if outcome.error.is_none() {
            outcome.status = Status::Failed;
            outcome.error = Some(format!("loaded, but the ledger write failed: {e}"));
        }
    }
    outcome
}

/// A unit's manifest, and what its load did (None with `lake_only`).
async fn copy_unit(
    ctx: &Ctx,
    unit: &Unit,
) -> Result<(sluice::lake::Manifest, Option<load::Loaded>)> {
    let manifest = if ctx.opts.from_lake {
        extract::read_manifest(&ctx.lake, unit).await?
    } else {
        ctx.check_answering(unit)?;
        let dsn = ctx.dsn(unit).await?;
        extract::extract(
            &ctx.lake,
            &dsn,
            &ctx.target.timeouts,
            unit,
            &ctx.run_id,
            ctx.opts.extract,
            ctx.counters.clone(),
        )
        .await
        .inspect_err(|e| ctx.note_unanswered(unit, e))?
    };
    if ctx.opts.lake_only {
        return Ok((manifest, None));
    }
    let lock = ctx.table_lock(unit);
    let _guard = lock.lock().await;
    let loaded = load::load(
        &ctx.bq.labelled("sluice_table", &unit.table),
        &ctx.pipeline,
        &ctx.target,
        &ctx.lake,
        unit,
        &manifest,
        &ctx.run_id,
    )
    .await?;
    Ok((manifest, Some(loaded)))
}

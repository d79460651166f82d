//! A pg-copy run: plan the units, copy them a few at a time (extract, load, verify), and record
//! each in the run ledger.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde_json::{json, Value};
use sluice::config::Pipeline;
use sluice::ledger::{RunRecord, Status};
use sluice::progress::Progress;
use sluice::{Error, Result};
use tracing::Instrument;

use crate::ctx::{Ctx, Options};
use crate::plan::{self, Unit, UnitPlan};
use crate::{extract, load, verify};

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
    let units: Vec<UnitPlan> = plan::for_task(all, opts.task.0, opts.task.1)
        .into_iter()
        .map(|u| UnitPlan::new(u, pipeline, &target))
        .collect();
    let run_id = sluice::ledger::new_run_id();
    let span = tracing::info_span!("pg_copy", run_id = %run_id, target = %target.name);
    async {
        if opts.lake_only && opts.from_lake {
            return Err(Error::config(
                "--lake-only writes the lake from Postgres and --from-lake loads from it: give one",
            ));
        }
        // Units copied at once share the CPUs.
        let mut opts = opts.clone();
        let at_once = opts.concurrency.clamp(1, units.len().max(1));
        opts.extract.cpus = (opts.extract.cpus / at_once).max(1);
        let ctx = Arc::new(Ctx::open(pipeline, target, &run_id, opts.clone()).await?);
        tracing::info!(
            units = units.len(),
            from_lake = opts.from_lake,
            lake_only = opts.lake_only,
            "run started"
        );
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

/// Copies one unit, checks what it loaded (and with `verify`, against Postgres again), and
/// records it in the ledger.
async fn run_unit(ctx: &Ctx, plan: UnitPlan) -> UnitOutcome {
    let unit = &plan.unit;
    let started = Utc::now();
    let span = tracing::info_span!("unit", table = %format!("{}.{}", unit.source, unit.table), ds = %unit.ds);
    let result = copy_unit(ctx, &plan).instrument(span.clone()).await;
    let finished = Utc::now();
    let mut outcome = UnitOutcome {
        unit: unit.clone(),
        status: Status::Success,
        rows_read: 0,
        rows_loaded: 0,
        bytes: 0,
        files: 0,
        dataset: plan.dataset.clone(),
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
                let counted = async {
                    let dsn = ctx.dsn(unit).await?;
                    verify::postgres_rows(&dsn, &ctx.target.timeouts, &plan).await
                };
                match counted.await {
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
    record(ctx, outcome, details, started, finished).await
}

/// Writes a unit's ledger row (none with `lake_only`); a row that cannot be written fails the
/// unit.
async fn record(
    ctx: &Ctx,
    mut outcome: UnitOutcome,
    details: Value,
    started: DateTime<Utc>,
    finished: DateTime<Utc>,
) -> UnitOutcome {
    let Some(recorder) = &ctx.recorder else {
        return outcome;
    };
    let record = RunRecord {
        source: Some(outcome.unit.source.clone()),
        table_name: Some(outcome.unit.table.clone()),
        logical_date: Some(outcome.unit.ds),
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
    plan: &UnitPlan,
) -> Result<(sluice::lake::Manifest, Option<load::Loaded>)> {
    let unit = &plan.unit;
    let manifest = if ctx.opts.from_lake {
        extract::read_manifest(&ctx.lake, plan).await?
    } else {
        ctx.check_answering(unit)?;
        let dsn = ctx.dsn(unit).await?;
        extract::extract(
            &ctx.lake,
            &dsn,
            &ctx.target.timeouts,
            plan,
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
        plan,
        &manifest,
        &ctx.run_id,
    )
    .await?;
    Ok((manifest, Some(loaded)))
}

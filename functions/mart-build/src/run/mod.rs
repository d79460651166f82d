//! `mart-build run`: builds the selected marts for each logical date.
//!
//! For one mart and one date:
//! 1. wait until its inputs are fresh for the date (the run ledger says pg-copy copied the
//!    day, cdc-sync read past its end, upstream marts built it), or fail naming the late one;
//! 2. run its SELECT into a staging table (a query job with a deterministic id);
//! 3. compute every check over the staging rows in one query; a tripped fail condition stops
//!    here, leaving the target as it was and the staging table for inspection;
//! 4. swap the rows into the target: replace the table, replace the `@ds` partition in one
//!    transaction, MERGE by key, or (re)create the view;
//! 5. write table and column descriptions, the check results (`ops.dq_results`) and a
//!    ledger row (`ops.runs`).
//!
//! Marts whose upstream marts are done run in parallel, at most `parallel` at a time; a failed
//! mart's dependents are skipped as `upstream_failed`.
//!
//! The steps live apart: `build` (stage, gate, swap), `gate` (the checks), `freshness` (the
//! wait for inputs), `record` (the ledger row and `ops.dq_results`), `result` (what a run
//! reports).

mod build;
mod freshness;
mod gate;
mod record;
mod result;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use sluice::bigquery::run_tag;
use sluice::bigquery::staging::Staging;
use sluice::bigquery::BigQuery;
use sluice::config::{Pipeline, Target};
use sluice::ledger::{Ledger, Recorder, Worker};
use sluice::progress::Progress;
use sluice::Result;
use tokio::task::JoinSet;
use tracing::Instrument;

use sluice::marts::Dag;
use sluice::marts::Placement;

pub use result::{CheckKind, CheckResult, MartResult, Outcome, Summary};

/// What `run` does.
#[derive(Debug, Clone)]
pub struct Options {
    pub target: String,
    /// Logical dates, in the order they run (each date's marts finish before the next date's).
    pub dates: Vec<NaiveDate>,
    /// `--select` expressions; empty selects every mart.
    pub select: Vec<String>,
    /// Marts built at the same time.
    pub parallel: usize,
    /// Whether to wait for inputs to be fresh (off for ad-hoc runs).
    pub check_freshness: bool,
    /// How long to wait for a late input before failing the mart.
    pub wait: Duration,
    /// How often to look again while waiting.
    pub poll: Duration,
    /// Show progress: a bar and a line per finished mart on a terminal, else a log line per
    /// mart and every ten seconds.
    pub progress: bool,
}

impl Options {
    pub fn new(target: &str, dates: Vec<NaiveDate>) -> Options {
        Options {
            target: target.to_string(),
            dates,
            select: vec![],
            parallel: 4,
            check_freshness: true,
            wait: Duration::from_secs(3600),
            poll: Duration::from_secs(30),
            progress: true,
        }
    }
}

/// What every mart task shares.
pub(crate) struct Ctx {
    bq: BigQuery,
    dag: Arc<Dag>,
    target: Target,
    placement: Placement,
    run_id: String,
    tag: String,
    /// Where each mart's SELECT lands before its gate and swap.
    staging: Staging,
    /// The target's ops dataset: its ledger, DQ results, and upstream marts' runs.
    ops_ds: String,
    /// Where pg-copy and cdc-sync record their runs (project, dataset): production's for a
    /// target that reads production inputs.
    input_ops: (String, String),
    recorder: Recorder,
    progress: Progress,
    opts: Options,
    /// The marts of this run.
    selected: BTreeSet<String>,
}

/// Builds the selected marts for every date of `opts`.
pub async fn run(pipeline: &Pipeline, dag: Dag, opts: Options) -> Result<Summary> {
    let selected = dag.select(&opts.select)?;
    let target = pipeline.target(&opts.target)?;
    let run_id = sluice::ledger::new_run_id();
    let bq = BigQuery::for_run(&target, Worker::MartBuild.as_str(), &run_id)?;
    let ops_ds = target.dataset(&pipeline.bigquery.ops_dataset);
    let ledger = Ledger::open(bq.clone(), &ops_ds).await?;
    sluice::ops::DQ_RESULTS.ensure(&bq, &ops_ds).await?;
    let staging = Staging::open(&bq, &target.dataset(&pipeline.bigquery.staging_dataset)).await?;
    let placement = Placement::for_target(&target);
    let datasets: BTreeSet<String> = selected
        .iter()
        .map(|m| placement.place(&dag, &dag.marts[m].id).dataset)
        .collect();
    for d in &datasets {
        bq.ensure_dataset(d, None).await?;
    }
    let recorder = ledger.recorder(&run_id, Worker::MartBuild, &target.name);
    let total = selected.len() * opts.dates.len();
    let progress = if opts.progress {
        let terminal = sluice::progress::stderr_is_terminal();
        Progress::start("building marts", Some(total as u64), terminal, String::new)
    } else {
        Progress::hidden()
    };
    let ctx = Arc::new(Ctx {
        bq,
        tag: run_tag(&run_id),
        run_id: run_id.clone(),
        dag: Arc::new(dag),
        placement,
        staging,
        ops_ds,
        input_ops: (
            target.inputs_project.clone(),
            format!("{}{}", pipeline.bigquery.ops_dataset, target.inputs_suffix),
        ),
        recorder,
        progress,
        target,
        opts: opts.clone(),
        selected: selected.clone(),
    });
    let mut results = vec![];
    let span = tracing::info_span!("mart-build", run_id = %run_id, target = %ctx.target.name);
    async {
        for ds in &opts.dates {
            let mut day = vec![];
            run_date(&ctx, *ds, &selected, total, results.len(), &mut day).await;
            // In run order, not the order they finished in.
            let position = |m: &String| ctx.dag.order().position(|o| o == m);
            day.sort_by_key(|r| position(&r.mart));
            results.extend(day);
        }
    }
    .instrument(span)
    .await;
    ctx.progress.finish();
    Ok(Summary { run_id, results })
}

/// Runs the selected marts for one date, each as soon as its upstream marts are done.
async fn run_date(
    ctx: &Arc<Ctx>,
    ds: NaiveDate,
    selected: &BTreeSet<String>,
    total: usize,
    done_before: usize,
    results: &mut Vec<MartResult>,
) {
    let mut pending: Vec<String> = ctx
        .dag
        .order()
        .filter(|m| selected.contains(*m))
        .cloned()
        .collect();
    let mut done: BTreeMap<String, Outcome> = BTreeMap::new();
    let mut running: JoinSet<MartResult> = JoinSet::new();
    let mut tasks: BTreeMap<tokio::task::Id, String> = BTreeMap::new();
    loop {
        let mut i = 0;
        while i < pending.len() {
            let m = &pending[i];
            let ups: Vec<&String> = ctx.dag.upstream[m]
                .iter()
                .filter(|u| selected.contains(*u))
                .collect();
            if let Some(bad) = ups
                .iter()
                .find(|u| done.get(**u).is_some_and(Outcome::blocks_dependents))
            {
                let mut r = skipped(m, ds, bad);
                record::record(ctx, &mut r).await;
                report(ctx, &r, done_before + results.len() + 1, total);
                done.insert(m.clone(), r.outcome.clone());
                results.push(r);
                pending.remove(i);
                i = 0;
                continue;
            }
            let ready = ups.iter().all(|u| done.contains_key(*u));
            if ready && running.len() < ctx.opts.parallel.max(1) {
                let (c, m) = (ctx.clone(), m.clone());
                let task = running.spawn(
                    async move {
                        let mut r = build::build(&c, &m, ds).await;
                        record::record(&c, &mut r).await;
                        r
                    }
                    .instrument(tracing::Span::current()),
                );
                tasks.insert(task.id(), pending.remove(i));
                continue;
            }
            i += 1;
        }
        let Some(joined) = running.join_next_with_id().await else {
            break;
        };
        let r = match joined {
            Ok((_, r)) => r,
            Err(e) => {
                // A bug, not bad input: the mart fails, so its dependents are skipped.
                let mart = tasks.get(&e.id()).cloned().unwrap_or_default();
                let mut r = skipped(&mart, ds, "");
                r.outcome = Outcome::Failed;
                r.error = Some(format!("mart-build's task for this mart ended: {e}"));
                record::record(ctx, &mut r).await;
                r
            }
        };
        report(ctx, &r, done_before + results.len() + 1, total);
        done.insert(r.mart.clone(), r.outcome.clone());
        results.push(r);
    }
}

fn skipped(mart: &str, ds: NaiveDate, upstream: &str) -> MartResult {
    MartResult {
        mart: mart.to_string(),
        ds,
        outcome: Outcome::UpstreamFailed(upstream.to_string()),
        rows: None,
        checks: vec![],
        error: Some(format!("upstream_failed: {upstream} did not build")),
        started: chrono::Utc::now(),
        seconds: 0.0,
        jobs: vec![],
    }
}

fn report(ctx: &Ctx, r: &MartResult, n: usize, total: usize) {
    let rows = r.rows.map(|n| format!("  {n} rows")).unwrap_or_default();
    let err = r
        .error
        .as_deref()
        .map(|e| format!("  {e}"))
        .unwrap_or_default();
    let line = format!(
        "[{n}/{total}] {:<15} {} {}{rows}  {:.1}s{err}",
        r.outcome.label(),
        r.ds,
        r.mart,
        r.seconds
    );
    if ctx.opts.progress && !ctx.progress.on_terminal() {
        tracing::info!("{line}");
    }
    ctx.progress.step(Some(line));
}

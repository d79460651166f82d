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

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use serde_json::{json, Value};
use sluice::bigquery::schema::{evolve, job_id, run_tag, Field};
use sluice::bigquery::sql::{ident, replace_partition, table_ref};
use sluice::bigquery::{BigQuery, Param};
use sluice::config::{Pipeline, Target};
use sluice::ledger::{Built, Fresh, Ledger, Recorder, RunRecord, Status, Worker, RUNS_TABLE};
use sluice::progress::Progress;
use sluice::types::BqType;
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::checks::{Check, Rule};
use crate::dag::{Dag, Producer};
use crate::mart::{Mart, Materialized, Runner, TableName};
use crate::render::Placement;
use crate::sql;

pub const DQ_TABLE: &str = sluice::ops::DQ_RESULTS.name;

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

/// How one mart ended for one date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failed,
    /// An upstream mart failed or was skipped; it is named.
    UpstreamFailed(String),
    /// Built by a BigQuery scheduled query, not by mart-build.
    ScheduledQuery,
}

impl Outcome {
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Success => "ok",
            Outcome::Failed => "FAILED",
            Outcome::UpstreamFailed(_) => "upstream_failed",
            Outcome::ScheduledQuery => "scheduled_query",
        }
    }

    fn blocks_dependents(&self) -> bool {
        matches!(self, Outcome::Failed | Outcome::UpstreamFailed(_))
    }
}

/// Whether a check stops the mart or is only recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckKind {
    /// A tripped one keeps the target as it was and skips the marts downstream.
    FailCondition,
    /// Recorded in `ops.dq_results`; the mart builds either way.
    DqMetric,
}

impl CheckKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckKind::FailCondition => "fail_condition",
            CheckKind::DqMetric => "dq_metric",
        }
    }
}

/// One check's result.
#[derive(Debug, Clone)]
pub struct CheckResult {
    pub name: String,
    pub kind: CheckKind,
    /// `expression`, `not_null`, `unique`, ...
    pub check_type: String,
    pub expression: String,
    pub value: f64,
    pub rows: u64,
    pub threshold: f64,
    pub passed: bool,
}

/// One mart, one date.
#[derive(Debug, Clone)]
pub struct MartResult {
    pub mart: String,
    pub ds: NaiveDate,
    pub outcome: Outcome,
    pub rows: Option<u64>,
    pub checks: Vec<CheckResult>,
    pub error: Option<String>,
    pub started: chrono::DateTime<chrono::Utc>,
    pub seconds: f64,
    pub jobs: Vec<String>,
}

/// Everything a run did.
#[derive(Debug, Clone)]
pub struct Summary {
    pub run_id: String,
    pub results: Vec<MartResult>,
}

impl Summary {
    /// Marts that did not build (failed, or skipped after an upstream failure).
    pub fn failed(&self) -> usize {
        self.results
            .iter()
            .filter(|r| r.outcome.blocks_dependents())
            .count()
    }

    pub fn get(&self, mart: &str, ds: NaiveDate) -> Option<&MartResult> {
        self.results.iter().find(|r| r.mart == mart && r.ds == ds)
    }

    /// A table of every mart and date, for the terminal.
    pub fn table(&self) -> String {
        let w = self
            .results
            .iter()
            .map(|r| r.mart.len())
            .max()
            .unwrap_or(4)
            .max(4);
        let mut out = format!(
            "{:<w$}  {:<10}  {:<15}  {:>9}  {:>7}  {:>7}  error\n",
            "mart", "ds", "status", "rows", "checks", "seconds"
        );
        for r in &self.results {
            let passed = r.checks.iter().filter(|c| c.passed).count();
            let checks = if r.checks.is_empty() {
                "-".to_string()
            } else {
                format!("{passed}/{}", r.checks.len())
            };
            out.push_str(&format!(
                "{:<w$}  {}  {:<15}  {:>9}  {:>7}  {:>7.1}  {}\n",
                r.mart,
                r.ds,
                r.outcome.label(),
                r.rows.map_or("-".to_string(), |n| n.to_string()),
                checks,
                r.seconds,
                r.error.as_deref().unwrap_or("")
            ));
        }
        let failed = self.failed();
        out.push_str(&format!(
            "{} built, {} failed or skipped, run {}\n",
            self.results
                .iter()
                .filter(|r| r.outcome == Outcome::Success)
                .count(),
            failed,
            self.run_id
        ));
        out
    }
}

/// What every mart task shares.
struct Ctx {
    bq: BigQuery,
    dag: Arc<Dag>,
    target: Target,
    placement: Placement,
    run_id: String,
    tag: String,
    staging_ds: String,
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
pub async fn run(pipeline: &Pipeline, dag: Dag, opts: Options) -> anyhow::Result<Summary> {
    let selected = dag.select(&opts.select).map_err(anyhow::Error::msg)?;
    let target = pipeline.target(&opts.target)?;
    let bq = BigQuery::for_target(&target)?;
    let ops_ds = target.dataset(&pipeline.bigquery.ops_dataset);
    let ledger = Ledger::open(bq.clone(), &ops_ds).await?;
    sluice::ops::DQ_RESULTS.ensure(&bq, &ops_ds).await?;
    let staging_ds = target.dataset(&pipeline.bigquery.staging_dataset);
    sluice::bigquery::staging::Staging::open(&bq, &staging_ds).await?;
    let placement = Placement::for_target(&target);
    let datasets: BTreeSet<String> = selected
        .iter()
        .map(|m| placement.place(&dag, &dag.marts[m].id).dataset)
        .collect();
    for d in &datasets {
        bq.ensure_dataset(d, None).await?;
    }
    let run_id = sluice::ledger::new_run_id();
    let recorder = ledger.recorder(&run_id, Worker::MartBuild, &target.name);
    let total = selected.len() * opts.dates.len();
    let progress = if opts.progress {
        let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
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
        staging_ds,
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
                record(ctx, &mut r).await;
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
                        let mut r = build(&c, &m, ds).await;
                        record(&c, &mut r).await;
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
                record(ctx, &mut r).await;
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

/// Builds one mart for one date; every error ends up in the result, none escapes.
async fn build(ctx: &Ctx, mart: &str, ds: NaiveDate) -> MartResult {
    let started = chrono::Utc::now();
    let clock = Instant::now();
    let m = &ctx.dag.marts[mart];
    let mut r = MartResult {
        mart: mart.to_string(),
        ds,
        outcome: Outcome::Success,
        rows: None,
        checks: vec![],
        error: None,
        started,
        seconds: 0.0,
        jobs: vec![],
    };
    if m.header.runner == Runner::ScheduledQuery {
        r.outcome = Outcome::ScheduledQuery;
        return r;
    }
    let result = async {
        if ctx.opts.check_freshness {
            wait_for_inputs(ctx, m, ds).await?;
        }
        build_mart(ctx, m, ds, &mut r).await
    }
    .await;
    if let Err(e) = result {
        r.outcome = Outcome::Failed;
        r.error = Some(e);
    }
    r.seconds = clock.elapsed().as_secs_f64();
    r
}

/// The date parameters a mart's SELECT uses, for `ds` (only those: real BigQuery need not
/// accept parameters a query does not name).
pub fn mart_params(m: &Mart, ds: NaiveDate) -> Vec<Param> {
    let used = crate::mart::parameters(&m.query);
    date_params(ds)
        .into_iter()
        .filter(|p| used.contains_key(&p.name))
        .collect()
}

/// `@ds`, and the day's bounds `@ds_start` and `@ds_end`, for `ds`.
pub fn date_params(ds: NaiveDate) -> Vec<Param> {
    let day = ds.format("%Y-%m-%d").to_string();
    let next = ds.succ_opt().unwrap_or(ds).format("%Y-%m-%d").to_string();
    vec![
        Param::date("ds", &day),
        Param::scalar("ds_start", "TIMESTAMP", format!("{day} 00:00:00+00")),
        Param::scalar("ds_end", "TIMESTAMP", format!("{next} 00:00:00+00")),
    ]
}

fn query_job(sql: &str, params: &[Param]) -> Value {
    json!({"query": {
        "query": sql,
        "useLegacySql": false,
        "parameterMode": "NAMED",
        "queryParameters": params.iter().map(Param::to_json).collect::<Vec<_>>(),
    }})
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// The partition-date expression of `column` given the built table's schema.
fn partition_expr(fields: &[Field], column: &str) -> Result<String, String> {
    let f = fields
        .iter()
        .find(|f| f.name == column)
        .ok_or_else(|| format!("partition_by `{column}` is not a column of the result"))?;
    match f.scalar() {
        Some(BqType::Date) => Ok(ident(column)),
        Some(BqType::Timestamp | BqType::Datetime) => Ok(format!("DATE({})", ident(column))),
        _ => Err(format!(
            "partition_by `{column}` is {}; it must be a DATE, TIMESTAMP or DATETIME",
            f.ty.api_name()
        )),
    }
}

async fn build_mart(ctx: &Ctx, m: &Mart, ds: NaiveDate, r: &mut MartResult) -> Result<(), String> {
    let project = &ctx.target.project;
    let placed = ctx.placement.place(&ctx.dag, &m.id);
    let target = table_ref(project, &placed.dataset, &placed.table);
    let select = ctx.placement.render(&ctx.dag, &m.id.short())?;
    // [@ds] for the queries sluice writes around the SELECT.
    let params = &date_params(ds)[..1];
    let compact = ds.format("%Y%m%d").to_string();
    let job = |step: &str| job_id(&["mart", &m.id.dataset, &m.id.table, &compact, &ctx.tag, step]);
    let h = &m.header;
    if h.materialized == Materialized::View {
        let id = job("view");
        ctx.bq
            .run_job(&id, query_job(&sql::create_view(&target, &select), &[]))
            .await
            .map_err(err)?;
        r.jobs.push(id);
        let (rows, checks) = run_checks(ctx, m, &target, None, None, &[]).await?;
        r.rows = Some(rows);
        r.checks = checks;
        describe(ctx, m, &placed).await;
        return Ok(());
    }
    // 1. The SELECT into staging.
    let staging_name = format!("{}__{}__{compact}__{}", m.id.dataset, m.id.table, ctx.tag);
    let staging = table_ref(project, &ctx.staging_ds, &staging_name);
    let id = job("build");
    let mut config = query_job(&select, &mart_params(m, ds));
    config["query"]["destinationTable"] =
        json!({"projectId": project, "datasetId": ctx.staging_ds, "tableId": staging_name});
    config["query"]["writeDisposition"] = json!("WRITE_TRUNCATE");
    config["query"]["createDisposition"] = json!("CREATE_IF_NEEDED");
    ctx.bq.run_job(&id, config).await.map_err(err)?;
    r.jobs.push(id);
    let fields = ctx
        .bq
        .table_schema(&ctx.staging_ds, &staging_name)
        .await
        .map_err(err)?
        .ok_or_else(|| format!("the staging table {staging} was not created"))?;
    let pdate = match &h.partition_by {
        Some(c) => Some(partition_expr(&fields, c)?),
        None => None,
    };
    let existing = ctx
        .bq
        .table_schema(&placed.dataset, &placed.table)
        .await
        .map_err(err)?;
    // 2. Checks over the staging rows.
    let outside_of = (h.materialized == Materialized::Partition)
        .then_some(pdate.as_deref())
        .flatten();
    let previous = match (&pdate, &existing) {
        (Some(d), Some(_))
            if m.fail_conditions
                .iter()
                .chain(&m.dq_metrics)
                .any(|c| matches!(c.rule, Rule::RowCountChange { .. })) =>
        {
            let q = ctx
                .bq
                .query(&sql::previous_partition_rows(&target, d), params)
                .await
                .map_err(err)?;
            q.get(0, "n")
                .and_then(|n| n.parse::<f64>().ok())
                .filter(|n| *n > 0.0)
        }
        _ => None,
    };
    let (rows, checks) = run_checks(ctx, m, &staging, outside_of, previous, params).await?;
    r.rows = Some(rows);
    r.checks = checks;
    let tripped: Vec<String> = r
        .checks
        .iter()
        .filter(|c| c.kind == CheckKind::FailCondition && !c.passed)
        .map(|c| match c.check_type.as_str() {
            "not_empty" => format!("{} (no rows)", c.name),
            "row_count_change" => format!(
                "{} ({} rows against {} before, more than ±{})",
                c.name,
                c.value,
                previous.unwrap_or(0.0),
                c.threshold
            ),
            _ => format!(
                "{} ({}/{} = {:.4} < {})",
                c.name,
                c.value,
                c.rows,
                if c.rows == 0 {
                    0.0
                } else {
                    c.value / c.rows as f64
                },
                c.threshold
            ),
        })
        .collect();
    if !tripped.is_empty() {
        return Err(format!(
            "fail condition tripped: {}; {target} left as it was; the built rows are in {staging} for a day",
            tripped.join(", ")
        ));
    }
    // 3. Swap into the target.
    let cluster = &h.cluster_by.0;
    match h.materialized {
        Materialized::Table => {
            let id = job("swap");
            let q = sql::replace_table(&target, &staging, pdate.as_deref(), cluster);
            ctx.bq.run_job(&id, query_job(&q, &[])).await.map_err(err)?;
            r.jobs.push(id);
        }
        Materialized::Partition | Materialized::Merge => {
            if existing.is_none() {
                let id = job("create");
                let q = sql::create_if_missing(&target, &staging, pdate.as_deref(), cluster);
                ctx.bq.run_job(&id, query_job(&q, &[])).await.map_err(err)?;
                r.jobs.push(id);
            } else if let Some(old) = &existing {
                add_columns(ctx, &placed, old, &fields).await?;
            }
            let columns: Vec<String> = fields.iter().map(|f| f.name.clone()).collect();
            let (id, q, p) = if h.materialized == Materialized::Partition {
                let d = pdate.as_deref().unwrap_or_default();
                (
                    job("replace"),
                    replace_partition(&target, &staging, d, &columns),
                    &params[..1],
                )
            } else {
                (
                    job("merge"),
                    sql::merge(&target, &staging, &h.unique_key.0, &columns),
                    &params[..0],
                )
            };
            ctx.bq.run_job(&id, query_job(&q, p)).await.map_err(err)?;
            r.jobs.push(id);
        }
        Materialized::View => unreachable!("views return above"),
    }
    describe(ctx, m, &placed).await;
    if let Err(e) = ctx.bq.delete_table(&ctx.staging_ds, &staging_name).await {
        tracing::warn!(error = %e, "staging table left behind (it expires in a day)");
    }
    Ok(())
}

/// Adds the built rows' new columns to an existing target; a changed type is an error.
async fn add_columns(
    ctx: &Ctx,
    placed: &TableName,
    old: &[Field],
    new: &[Field],
) -> Result<(), String> {
    let e = evolve(old, new, false);
    if !e.incompatible.is_empty() {
        let changed: Vec<String> = e.incompatible.iter().map(|i| i.to_string()).collect();
        return Err(format!(
            "{}: column(s) {} changed type or mode; drop the table to rebuild it, or cast in the SELECT",
            placed.short(),
            changed.join(", ")
        ));
    }
    if !e.changes() {
        return Ok(());
    }
    ctx.bq
        .patch_schema(&placed.dataset, &placed.table, &e.fields)
        .await
        .map_err(err)
}

/// Runs every check over `source` in one query and judges them.
async fn run_checks(
    ctx: &Ctx,
    m: &Mart,
    source: &str,
    outside_of: Option<&str>,
    previous: Option<f64>,
    ds: &[Param],
) -> Result<(u64, Vec<CheckResult>), String> {
    let all: Vec<(&Check, CheckKind)> = m
        .fail_conditions
        .iter()
        .map(|c| (c, CheckKind::FailCondition))
        .chain(m.dq_metrics.iter().map(|c| (c, CheckKind::DqMetric)))
        .collect();
    let checks: Vec<&Check> = all.iter().map(|(c, _)| *c).collect();
    // @ds only where the query names it: for rows outside the partition.
    let mut p = if outside_of.is_some() {
        ds.to_vec()
    } else {
        vec![]
    };
    p.extend(
        checks
            .iter()
            .filter_map(|c| c.values.as_ref())
            .map(|(name, values)| Param::strings(name, values)),
    );
    let q = ctx
        .bq
        .query(&sql::check_query(source, &checks, outside_of), &p)
        .await
        .map_err(|e| format!("checks: {e}"))?;
    let num = |col: &str| {
        q.get(0, col)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let rows = num(sql::ROWS);
    let outside = num(sql::OUTSIDE);
    if outside > 0.0 {
        return Err(format!(
            "{outside} of {rows} built rows fall outside the @ds partition ({}); filter the SELECT on @ds",
            m.header.partition_by.as_deref().unwrap_or_default()
        ));
    }
    let results = all
        .iter()
        .enumerate()
        .map(|(i, (c, kind))| {
            let value = num(&sql::check_column(i));
            CheckResult {
                name: c.name.clone(),
                kind: *kind,
                check_type: c.kind.clone(),
                expression: c.expression.clone(),
                value,
                rows: rows as u64,
                threshold: c.threshold(),
                passed: c.passes(value, rows, previous),
            }
        })
        .collect();
    Ok((rows as u64, results))
}

/// Writes the header's descriptions onto the built table; a failure is only logged.
async fn describe(ctx: &Ctx, m: &Mart, placed: &TableName) {
    let h = &m.header;
    if h.description.is_none() && h.columns.is_empty() {
        return;
    }
    let result = async {
        let mut fields = ctx
            .bq
            .table_schema(&placed.dataset, &placed.table)
            .await?
            .unwrap_or_default();
        for f in fields.iter_mut() {
            if let Some(d) = h.columns.get(&f.name) {
                f.description = Some(d.clone());
            }
        }
        ctx.bq
            .patch_descriptions(
                &placed.dataset,
                &placed.table,
                h.description.as_deref(),
                &fields,
            )
            .await
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(mart = %m.id, error = %e, "could not write descriptions");
    }
}

/// Waits until every input of `m` is fresh for `ds`, or fails naming the late one.
async fn wait_for_inputs(ctx: &Ctx, m: &Mart, ds: NaiveDate) -> Result<(), String> {
    let deadline = Instant::now() + ctx.opts.wait;
    loop {
        let late = late_input(ctx, m, ds).await?;
        let Some(why) = late else {
            return Ok(());
        };
        if Instant::now() >= deadline {
            return Err(format!(
                "input not fresh for {ds} after waiting {}s: {why}",
                ctx.opts.wait.as_secs()
            ));
        }
        // At least a tenth of a second between looks, even with --poll 0s.
        let pause = ctx.opts.poll.max(Duration::from_millis(100));
        tokio::time::sleep(pause.min(deadline.saturating_duration_since(Instant::now()))).await;
    }
}

/// The first input of `m` that is not yet fresh for `ds`, and why.
async fn late_input(ctx: &Ctx, m: &Mart, ds: NaiveDate) -> Result<Option<String>, String> {
    let day = ds.format("%Y-%m-%d").to_string();
    for r in &m.references {
        let short = r.name.short();
        let own_ops = (ctx.target.project.clone(), ctx.ops_ds.clone());
        let (ops, fresh, what) = if let Some(up) = ctx.dag.marts.get(&short) {
            // An upstream mart of this run has succeeded before this one starts.
            if r.name.project.is_some()
                || up.header.runner == Runner::ScheduledQuery
                || ctx.selected.contains(&short)
            {
                continue;
            }
            let dates = match up.header.materialized {
                Materialized::Partition => Built::ThatDay,
                Materialized::View => Built::Any,
                _ => Built::ThatDayOrLater,
            };
            let fresh = Fresh::Built {
                dataset: up.id.dataset.clone(),
                name: up.id.table.clone(),
                dates,
            };
            (&own_ops, fresh, format!("mart {short} has not built {day}"))
        } else {
            match crate::dag::producer(&ctx.dag.inputs, &r.name) {
                Some(Producer::PgCopy {
                    source,
                    table,
                    full,
                }) => (
                    &ctx.input_ops,
                    Fresh::Copied {
                        source: source.clone(),
                        table: table.clone(),
                        full: *full,
                    },
                    format!("{short}: pg-copy has not copied {day}"),
                ),
                Some(Producer::Cdc { source }) => (
                    &ctx.input_ops,
                    Fresh::Replicated {
                        source: source.clone(),
                    },
                    format!("{short}: cdc-sync has not run since {day} ended"),
                ),
                // Streamed events and sluice's own tables have no daily runs to wait for.
                _ => continue,
            }
        };
        let (project, dataset) = ops;
        let runs = table_ref(project, dataset, RUNS_TABLE);
        // This run's own ledger was made at start; another dataset's may not exist yet.
        if project == &ctx.target.project
            && dataset != &ctx.ops_ds
            && ctx
                .bq
                .get_table(dataset, RUNS_TABLE)
                .await
                .map_err(err)?
                .is_none()
        {
            return Ok(Some(format!("{what} (no run ledger {runs})")));
        }
        let (sql, p) = fresh.query(&runs, ds);
        let q = ctx
            .bq
            .query(&sql, &p)
            .await
            .map_err(|e| format!("reading the run ledger: {e}"))?;
        if q.get(0, "n").unwrap_or("0") == "0" {
            return Ok(Some(what));
        }
    }
    Ok(None)
}

/// Records a mart's result in the ledger and its checks in `ops.dq_results`. Marts that
/// BigQuery runs as scheduled queries are not recorded: mart-build did nothing with them. A
/// built mart whose records cannot be written fails (the ledger's policy): its rerun writes
/// them.
async fn record(ctx: &Ctx, r: &mut MartResult) {
    if r.outcome == Outcome::ScheduledQuery {
        return;
    }
    if let Err(e) = write_records(ctx, r).await {
        tracing::error!(mart = %r.mart, error = %e, "could not write the run ledger");
        if r.outcome == Outcome::Success {
            r.outcome = Outcome::Failed;
            r.error = Some(format!("built, but the ledger write failed: {e}"));
        }
    }
}

async fn write_records(ctx: &Ctx, r: &MartResult) -> sluice::Result<()> {
    let m = &ctx.dag.marts[&r.mart];
    let day = r.ds.format("%Y-%m-%d").to_string();
    let now = sluice::time::now_bigquery();
    let status = match r.outcome {
        Outcome::Success => Status::Success,
        Outcome::Failed => Status::Failed,
        Outcome::UpstreamFailed(_) | Outcome::ScheduledQuery => Status::Skipped,
    };
    let record = RunRecord {
        source: Some(m.id.dataset.clone()),
        table_name: Some(m.id.table.clone()),
        logical_date: Some(r.ds),
        status,
        rows_in: r.rows.unwrap_or(0),
        rows_loaded: if status == Status::Success {
            r.rows.unwrap_or(0)
        } else {
            0
        },
        error: r.error.clone(),
        details: json!({
            "outcome": r.outcome.label(),
            "materialized": m.header.materialized.as_str(),
            "owner": m.header.owner,
            "jobs": r.jobs,
            "checks_failed": r.checks.iter().filter(|c| !c.passed).map(|c| &c.name).collect::<Vec<_>>(),
            "upstream_failed": match &r.outcome { Outcome::UpstreamFailed(u) => Some(u), _ => None },
        }),
        ..ctx.recorder.row(r.started)
    };
    ctx.recorder.record(&record).await?;
    if r.checks.is_empty() {
        return Ok(());
    }
    let rows: Vec<(String, Value)> = r
        .checks
        .iter()
        .map(|c| {
            (
                format!("{}:{}:{day}:{}", ctx.run_id, r.mart, c.name),
                json!({
                    "run_id": ctx.run_id,
                    "target": ctx.target.name,
                    "mart": r.mart,
                    "ds": day,
                    "check_name": c.name,
                    "kind": c.kind.as_str(),
                    "check_type": c.check_type,
                    "expression": c.expression,
                    "value": c.value,
                    "rows": c.rows,
                    "threshold": c.threshold,
                    "passed": c.passed,
                    "recorded_at": now,
                }),
            )
        })
        .collect();
    ctx.bq.insert_all(&ctx.ops_ds, DQ_TABLE, &rows).await
}

//! One mart for one date: its SELECT into a staging table, the gate, then the swap into the
//! target (replace the table or the `@ds` partition, MERGE by key, or (re)create the view),
//! and the header's descriptions on the built table.

use std::time::Instant;

use chrono::NaiveDate;
use serde_json::{json, Value};
use sluice::bigquery::job_id;
use sluice::bigquery::schema::{evolve, Field};
use sluice::bigquery::sql::{ident, replace_partition, table_ref};
use sluice::bigquery::Param;
use sluice::error::ErrorKind;
use sluice::types::BqType;
use sluice::{Error, Result};

use super::{freshness, gate, Ctx, MartResult, Outcome};
use crate::sql;
use sluice::marts::Rule;
use sluice::marts::{date_params, mart_params};
use sluice::marts::{Mart, TableName};
use sluice::marts::{Materialized, Runner};

/// Builds one mart for one date; every error ends up in the result, none escapes.
pub(super) async fn build(ctx: &Ctx, mart: &str, ds: NaiveDate) -> MartResult {
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
            freshness::wait_for_inputs(ctx, m, ds).await?;
        }
        build_mart(ctx, m, ds, &mut r).await
    }
    .await;
    if let Err(e) = result {
        r.outcome = Outcome::Failed;
        r.error = Some(e.to_string());
    }
    r.seconds = clock.elapsed().as_secs_f64();
    r
}

fn query_job(sql: &str, params: &[Param]) -> Value {
    json!({"query": {
        "query": sql,
        "useLegacySql": false,
        "parameterMode": "NAMED",
        "queryParameters": params.iter().map(Param::to_json).collect::<Vec<_>>(),
    }})
}

/// The partition-date expression of `column` given the built table's schema.
fn partition_expr(fields: &[Field], column: &str) -> Result<String> {
    let f = fields.iter().find(|f| f.name == column).ok_or_else(|| {
        Error::config(format!(
            "partition_by `{column}` is not a column of the result"
        ))
    })?;
    match f.scalar() {
        Some(BqType::Date) => Ok(ident(column)),
        Some(BqType::Timestamp | BqType::Datetime) => Ok(format!("DATE({})", ident(column))),
        _ => Err(Error::config(format!(
            "partition_by `{column}` is {}; it must be a DATE, TIMESTAMP or DATETIME",
            f.ty.api_name()
        ))),
    }
}

async fn build_mart(ctx: &Ctx, m: &Mart, ds: NaiveDate, r: &mut MartResult) -> Result<()> {
    let project = &ctx.target.project;
    let placed = ctx.placement.place(&ctx.dag, &m.id);
    let target = table_ref(project, &placed.dataset, &placed.table);
    let select = ctx.placement.render(&ctx.dag, &m.id.short())?;
    // [@ds] for the queries sluice writes around the SELECT.
    let params = &date_params(ds)[..1];
    let compact = ds.format("%Y%m%d").to_string();
    let job = |step: &str| job_id(&["mart", &m.id.dataset, &m.id.table, &compact, &ctx.tag, step]);
    let h = &m.header;
    // Every job of this mart carries its name, so its cost is told apart.
    let bq = ctx.bq.labelled("sluice_mart", &m.id.short());
    if h.materialized == Materialized::View {
        let id = job("view");
        bq.run_job(&id, query_job(&sql::create_view(&target, &select), &[]))
            .await?;
        r.jobs.push(id);
        let (rows, checks) = gate::run_checks(&bq, m, &target, None, None, &[]).await?;
        r.rows = Some(rows);
        r.checks = checks;
        describe(ctx, m, &placed).await;
        return Ok(());
    }
    // 1. The SELECT into staging.
    let staging_name = format!("{}__{}__{compact}__{}", m.id.dataset, m.id.table, ctx.tag);
    let staging = ctx.staging.table_ref(&staging_name);
    let id = job("build");
    let mut config = query_job(&select, &mart_params(m, ds));
    config["query"]["destinationTable"] =
        json!({"projectId": project, "datasetId": ctx.staging.dataset, "tableId": staging_name});
    config["query"]["writeDisposition"] = json!("WRITE_TRUNCATE");
    config["query"]["createDisposition"] = json!("CREATE_IF_NEEDED");
    bq.run_job(&id, config).await?;
    r.jobs.push(id);
    let fields = ctx
        .bq
        .table_schema(&ctx.staging.dataset, &staging_name)
        .await?
        .ok_or_else(|| {
            Error::bigquery(
                format!("table {staging}"),
                ErrorKind::Permanent,
                "the build job succeeded, but the staging table was not created",
            )
        })?;
    let pdate = match &h.partition_by {
        Some(c) => Some(partition_expr(&fields, c)?),
        None => None,
    };
    let existing = ctx.bq.table_schema(&placed.dataset, &placed.table).await?;
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
            let q = bq
                .query(&sql::previous_partition_rows(&target, d), params)
                .await?;
            q.get(0, "n")
                .and_then(|n| n.parse::<f64>().ok())
                .filter(|n| *n > 0.0)
        }
        _ => None,
    };
    let (rows, checks) = gate::run_checks(&bq, m, &staging, outside_of, previous, params).await?;
    r.rows = Some(rows);
    r.checks = checks;
    let tripped = gate::tripped(&r.checks, previous);
    if !tripped.is_empty() {
        return Err(Error::Gate(format!(
            "fail condition tripped: {}; {target} left as it was; the built rows are in {staging} for a day",
            tripped.join(", ")
        )));
    }
    // 3. Swap into the target.
    let cluster = &h.cluster_by.0;
    match h.materialized {
        Materialized::Table => {
            let id = job("swap");
            let q = sql::replace_table(&target, &staging, pdate.as_deref(), cluster);
            bq.run_job(&id, query_job(&q, &[])).await?;
            r.jobs.push(id);
        }
        Materialized::Partition | Materialized::Merge => {
            if existing.is_none() {
                let id = job("create");
                let q = sql::create_if_missing(&target, &staging, pdate.as_deref(), cluster);
                bq.run_job(&id, query_job(&q, &[])).await?;
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
            bq.run_job(&id, query_job(&q, p)).await?;
            r.jobs.push(id);
        }
        Materialized::View => unreachable!("views return above"),
    }
    describe(ctx, m, &placed).await;
    if let Err(e) = ctx.staging.drop(&staging_name).await {
        tracing::warn!(error = %e, "staging table left behind (it expires in a day)");
    }
    Ok(())
}

/// Adds the built rows' new columns to an existing target; a changed type is an error.
async fn add_columns(ctx: &Ctx, placed: &TableName, old: &[Field], new: &[Field]) -> Result<()> {
    let e = evolve(old, new, false);
    if !e.incompatible.is_empty() {
        let changed: Vec<String> = e.incompatible.iter().map(|i| i.to_string()).collect();
        return Err(Error::config(format!(
            "{}: column(s) {} changed type or mode; drop the table to rebuild it, or cast in the SELECT",
            placed.short(),
            changed.join(", ")
        )));
    }
    if !e.changes() {
        return Ok(());
    }
    ctx.bq
        .patch_schema(&placed.dataset, &placed.table, &e.fields)
        .await
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

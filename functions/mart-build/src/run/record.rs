//! A mart's ledger row (`ops.runs`) and its check results (`ops.dq_results`).

use serde_json::{json, Value};
use sluice::ledger::{RunRecord, Status};

use super::{Ctx, MartResult, Outcome};

/// Records a mart's result in the ledger and its checks in `ops.dq_results`. Marts that
/// BigQuery runs as scheduled queries are not recorded: mart-build did nothing with them. A
/// built mart whose records cannot be written fails (the ledger's policy): its rerun writes
/// them.
pub(super) async fn record(ctx: &Ctx, r: &mut MartResult) {
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
    ctx.bq
        .insert_all(&ctx.ops_ds, sluice::ops::DQ_RESULTS.name, &rows)
        .await
}

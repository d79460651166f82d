//! The wait for inputs: a mart builds for a date once the run ledger says its inputs hold
//! that date (pg-copy copied it, cdc-sync read past its end, upstream marts built it).

use std::time::{Duration, Instant};

use chrono::NaiveDate;
use sluice::bigquery::sql::table_ref;
use sluice::ledger::{Built, Fresh, RUNS_TABLE};
use sluice::{Error, Result};

use super::Ctx;
use sluice::marts::Mart;
use sluice::marts::Producer;
use sluice::marts::{Materialized, Runner};

/// Waits until every input of `m` is fresh for `ds`, or fails naming the late one.
pub(super) async fn wait_for_inputs(ctx: &Ctx, m: &Mart, ds: NaiveDate) -> Result<()> {
    let deadline = Instant::now() + ctx.opts.wait;
    loop {
        let late = late_input(ctx, m, ds).await?;
        let Some(why) = late else {
            return Ok(());
        };
        if Instant::now() >= deadline {
            return Err(Error::Gate(format!(
                "input not fresh for {ds} after waiting {}s: {why}",
                ctx.opts.wait.as_secs()
            )));
        }
        // At least a tenth of a second between looks, even with --poll 0s.
        let pause = ctx.opts.poll.max(Duration::from_millis(100));
        tokio::time::sleep(pause.min(deadline.saturating_duration_since(Instant::now()))).await;
    }
}

/// The first input of `m` that is not yet fresh for `ds`, and why.
async fn late_input(ctx: &Ctx, m: &Mart, ds: NaiveDate) -> Result<Option<String>> {
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
            match sluice::marts::producer(&ctx.dag.inputs, &r.name) {
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
            && ctx.bq.get_table(dataset, RUNS_TABLE).await?.is_none()
        {
            return Ok(Some(format!("{what} (no run ledger {runs})")));
        }
        let (sql, p) = fresh.query(&runs, ds);
        let q = ctx
            .bq
            .query(&sql, &p)
            .await
            .map_err(|e| e.within("reading the run ledger"))?;
        if q.get(0, "n").unwrap_or("0") == "0" {
            return Ok(Some(what));
        }
    }
    Ok(None)
}

//! `sluice-deploy export-scheduled-queries`: marts with `runner: scheduled_query`, as the JSON
//! that Terraform reads to create BigQuery scheduled queries (Data Transfer configs).
//!
//! A scheduled query gets `@run_date` and `@run_time` from BigQuery, not `@ds`, so the mart's
//! parameters are replaced in the parsed SQL by expressions of them: a daily mart builds
//! yesterday (`ds = DATE_SUB(@run_date, INTERVAL 1 DAY)`), an hourly one today. A partition mart
//! writes through a partition decorator in the destination template, so each run replaces
//! exactly its day. Each runs at the time `crate::marts::timing` gives it, after what it reads: a
//! scheduled query has no freshness wait, and `WRITE_TRUNCATE` of a day built too early is
//! never repaired.

use crate::{Error, Result};
use std::collections::BTreeMap;
use std::ops::ControlFlow;

use serde_json::{json, Value};
use sqlparser::ast::visit_expressions_mut;
use sqlparser::dialect::BigQueryDialect;
use sqlparser::parser::Parser;

use crate::marts::dag::Dag;
use crate::marts::header::{Materialized, Runner};
use crate::marts::mart::{parameter, Mart};
use crate::marts::render::{placed_query, Placement};
use crate::marts::timing::Timing;
use crate::schedule::Schedule;

/// `@ds`, `@ds_start`, `@ds_end` as expressions of the scheduled query's own parameters, and
/// the offset of the partition decorator's date from `run_time`.
fn date_exprs(schedule: &Schedule) -> ([(&'static str, String); 3], &'static str) {
    let ds = match schedule {
        Schedule::Hourly => "DATE(@run_time)",
        _ => "DATE_SUB(@run_date, INTERVAL 1 DAY)",
    };
    let offset = if *schedule == Schedule::Hourly {
        ""
    } else {
        "-24h"
    };
    (
        [
            ("@ds", ds.to_string()),
            ("@ds_start", format!("TIMESTAMP({ds})")),
            (
                "@ds_end",
                format!("TIMESTAMP(DATE_ADD({ds}, INTERVAL 1 DAY))"),
            ),
        ],
        offset,
    )
}

/// The Data Transfer schedule of a mart's deployed time (`crate::marts::timing`): `every day 06:30`
/// for a cron `30 6 * * *`, `every 1 hours from 00:45 to 23:59` (runs at :45) for `45 * * * *`.
/// Data Transfer schedules are in UTC, as sluice's crons; other crons have no such form here.
pub fn transfer_schedule(t: &Timing) -> Result<String> {
    match crate::marts::timing::cron_shape(&t.cron) {
        Some(crate::marts::timing::Shape::Hourly(m)) => {
            Ok(format!("every 1 hours from 00:{m:02} to 23:59"))
        }
        Some(crate::marts::timing::Shape::Daily(d)) => {
            Ok(format!("every day {:02}:{:02}", d / 60, d % 60))
        }
        None => Err(Error::config(format!(
            "schedule `{}` has no scheduled-query form; use daily, hourly or `M H * * *`",
            t.cron
        ))),
    }
}

/// The SQL a scheduled query runs for a mart: references placed, date parameters replaced.
pub fn scheduled_sql(dag: &Dag, placement: &Placement, m: &Mart) -> Result<String> {
    let schedule = m.header.schedule.clone().unwrap_or_default();
    let (exprs, _) = date_exprs(&schedule);
    let mut parsed = vec![];
    for (name, text) in exprs {
        let e = Parser::new(&BigQueryDialect {})
            .try_with_sql(&text)
            .and_then(|mut p| p.parse_expr())
            .map_err(|e| Error::config(format!("{text}: {e}")))?;
        parsed.push((name, e));
    }
    let mut query = placed_query(m, |n| placement.place(dag, n));
    let _ = visit_expressions_mut(&mut query, |expr| {
        if let Some((p, _)) = parameter(expr) {
            if let Some((_, e)) = parsed.iter().find(|(n, _)| n[1..] == p) {
                *expr = e.clone();
            }
        }
        ControlFlow::<()>::Continue(())
    });
    Ok(format!("{query:#}"))
}

/// Every `runner: scheduled_query` mart as a Data Transfer config for Terraform, at the time
/// `timings` (`crate::marts::timing::schedules`) gives it.
pub fn scheduled_queries(
    dag: &Dag,
    timings: &BTreeMap<String, Timing>,
    placement: &Placement,
    location: &str,
) -> Result<Value> {
    let mut out = vec![];
    for id in dag.order() {
        let m = &dag.marts[id];
        if m.header.runner != Runner::ScheduledQuery {
            continue;
        }
        let at = |e: Error| e.within(&m.file.display().to_string());
        let schedule = m.header.schedule.clone().unwrap_or_default();
        let (_, offset) = date_exprs(&schedule);
        let timing = timings
            .get(id)
            .ok_or_else(|| at(Error::config(format!("no schedule derived for mart {id}"))))?;
        let placed = placement.place(dag, &m.id);
        let template = match m.header.materialized {
            Materialized::Partition => format!("{}${{run_time{offset}|\"%Y%m%d\"}}", placed.table),
            _ => placed.table.clone(),
        };
        out.push(json!({
            "key": id.replace('.', "__"),
            "display_name": format!("mart {id}"),
            "description": m.header.description,
            "owner": m.header.owner,
            "location": location,
            "dataset": placed.dataset,
            "table": placed.table,
            "schedule": transfer_schedule(timing).map_err(at)?,
            "query": scheduled_sql(dag, placement, m).map_err(at)?,
            "destination_table_name_template": template,
            "write_disposition": "WRITE_TRUNCATE",
            "partitioning_field": m.header.partition_by.clone().unwrap_or_default(),
        }));
    }
    Ok(Value::Array(out))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Pipeline;

    use super::*;
    use crate::marts::dag::Landed;

    fn at(written: Schedule, cron: &str) -> Timing {
        Timing {
            written,
            cron: cron.into(),
            derived: true,
            after: None,
        }
    }

    #[test]
    fn deployed_times_become_transfer_schedules() {
        assert_eq!(
            transfer_schedule(&at(Schedule::Daily, "30 6 * * *")).unwrap(),
            "every day 06:30"
        );
        assert_eq!(
            transfer_schedule(&at(Schedule::Hourly, "45 * * * *")).unwrap(),
            "every 1 hours from 00:45 to 23:59"
        );
        assert_eq!(
            transfer_schedule(&at(Schedule::Cron("30 5 * * *".into()), "30 5 * * *")).unwrap(),
            "every day 05:30"
        );
        assert!(
            transfer_schedule(&at(Schedule::Cron("0 5 * * 1".into()), "0 5 * * 1"))
                .unwrap_err()
                .into_message()
                .contains("no scheduled-query form")
        );
    }

    /// The shop's marts, as the repository holds them.
    fn shop() -> (Dag, Placement, BTreeMap<String, Timing>) {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let pipeline = Pipeline::load(&root.join("pipeline.yaml")).unwrap();
        let marts = crate::marts::dag::load_dir(&root.join("marts")).unwrap();
        let dag = Dag::build(marts, &Landed::of(&pipeline, &root)).unwrap();
        let timings = crate::marts::timing::schedules(&pipeline, &dag)
            .checked()
            .unwrap();
        let p = Placement::for_target(&pipeline.target("prod").unwrap());
        (dag, p, timings)
    }

    #[test]
    fn the_shop_marts_load_and_export() {
        let (dag, p, timings) = shop();
        assert!(dag.marts.len() >= 6, "{:?}", dag.marts.keys());
        let json = scheduled_queries(&dag, &timings, &p, "US").unwrap();
        let q = &json[0];
        assert_eq!(q["key"], "finance__payments_by_provider");
        assert_eq!(
            q["schedule"], "every day 06:30",
            "30 minutes after pg-copy's 06:00 copy of shop_raw.payments"
        );
        assert_eq!(
            q["destination_table_name_template"],
            "payments_by_provider${run_time-24h|\"%Y%m%d\"}"
        );
        let sql = q["query"].as_str().unwrap();
        assert!(!sql.contains("@ds"), "{sql}");
        assert!(
            sql.contains("p.paid_at >= TIMESTAMP(DATE_SUB(@run_date, INTERVAL 1 DAY))"),
            "{sql}"
        );
        assert!(sql.contains("`acme-shop-data.shop_raw.payments`"), "{sql}");
    }
}

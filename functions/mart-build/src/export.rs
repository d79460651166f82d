//! `mart-build export-scheduled-queries`: marts with `runner: scheduled_query`, as the JSON
//! that Terraform reads to create BigQuery scheduled queries (Data Transfer configs).
//!
//! A scheduled query gets `@run_date` and `@run_time` from BigQuery, not `@ds`, so the mart's
//! parameters are replaced in the parsed SQL by expressions of them: a daily mart builds
//! yesterday (`ds = DATE_SUB(@run_date, INTERVAL 1 DAY)`), an hourly one today. A partition mart
//! writes through a partition decorator in the destination template, so each run replaces
//! exactly its day.

use sluice::{Error, Result};
use std::ops::ControlFlow;

use serde_json::{json, Value};
use sqlparser::ast::visit_expressions_mut;
use sqlparser::dialect::BigQueryDialect;
use sqlparser::parser::Parser;

use crate::dag::Dag;
use crate::header::{Materialized, Runner};
use crate::mart::{parameter, Mart};
use crate::render::{placed_query, Placement};
use sluice::schedule::Schedule;

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

/// A Data Transfer schedule (`every day 03:00`, `every 1 hours`) for a mart's schedule.
pub fn transfer_schedule(s: &Schedule) -> Result<String> {
    match s {
        Schedule::Daily => Ok("every day 03:00".into()),
        Schedule::Hourly => Ok("every 1 hours".into()),
        Schedule::Cron(c) => {
            let f: Vec<&str> = c.split_whitespace().collect();
            let num = |x: &str| x.parse::<u32>().ok();
            match f.as_slice() {
                [m, h, "*", "*", "*"] if num(m).is_some() && num(h).is_some() => Ok(format!(
                    "every day {:02}:{:02}",
                    num(h).unwrap_or(0),
                    num(m).unwrap_or(0)
                )),
                _ => Err(Error::config(format!(
                    "schedule `{c}` has no scheduled-query form; use daily, hourly or `M H * * *`"
                ))),
            }
        }
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

/// Every `runner: scheduled_query` mart as a Data Transfer config for Terraform.
pub fn scheduled_queries(dag: &Dag, placement: &Placement, location: &str) -> Result<Value> {
    let mut out = vec![];
    for id in dag.order() {
        let m = &dag.marts[id];
        if m.header.runner != Runner::ScheduledQuery {
            continue;
        }
        let at = |e: Error| e.within(&m.file.display().to_string());
        let schedule = m.header.schedule.clone().unwrap_or_default();
        let (_, offset) = date_exprs(&schedule);
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
            "schedule": transfer_schedule(&schedule).map_err(at)?,
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

    use sluice::config::Pipeline;

    use super::*;
    use crate::dag::Landed;

    #[test]
    fn schedules_become_transfer_schedules() {
        assert_eq!(
            transfer_schedule(&Schedule::Daily).unwrap(),
            "every day 03:00"
        );
        assert_eq!(
            transfer_schedule(&Schedule::Hourly).unwrap(),
            "every 1 hours"
        );
        assert_eq!(
            transfer_schedule(&Schedule::Cron("30 5 * * *".into())).unwrap(),
            "every day 05:30"
        );
        assert!(transfer_schedule(&Schedule::Cron("0 5 * * 1".into()))
            .unwrap_err()
            .into_message()
            .contains("no scheduled-query form"));
    }

    /// The shop's marts, as the repository holds them.
    fn shop() -> (Dag, Placement) {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let pipeline = Pipeline::load(&root.join("pipeline.yaml")).unwrap();
        let marts = crate::dag::load_dir(&root.join("marts")).unwrap();
        let dag = Dag::build(marts, &Landed::of(&pipeline, &root)).unwrap();
        let p = Placement::for_target(&pipeline.target("prod").unwrap());
        (dag, p)
    }

    #[test]
    fn the_shop_marts_load_and_export() {
        let (dag, p) = shop();
        assert!(dag.marts.len() >= 6, "{:?}", dag.marts.keys());
        let json = scheduled_queries(&dag, &p, "US").unwrap();
        let q = &json[0];
        assert_eq!(q["key"], "finance__payments_by_provider");
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

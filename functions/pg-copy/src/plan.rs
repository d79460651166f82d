//! Which units of work a run does: one per table and logical date, shared between Cloud Run tasks.

use chrono::{Duration, NaiveDate};
use object_store::path::Path;
pub use sluice::cli::Dates;
use sluice::config::{Mode, Pipeline, Schedule, TableConfig, Target};
use sluice::lake::path;
use sluice::{Error, Result};

/// One table for one logical date.
#[derive(Debug, Clone)]
pub struct Unit {
    pub source: String,
    pub table: String,
    pub config: TableConfig,
    pub ds: NaiveDate,
}

impl Unit {
    pub fn label(&self) -> String {
        format!("{}.{} {}", self.source, self.table, self.ds)
    }
}

/// A unit placed in a run's target, worked out once and read by every step: its logical date
/// as the lake, the job ids and `@ds` write it, its partition in the lake, its dataset.
#[derive(Debug, Clone)]
pub struct UnitPlan {
    /// The table and date.
    pub unit: Unit,
    /// `unit.ds` as `YYYY-MM-DD`.
    pub ds: String,
    /// `raw/<source>/<table>/dt=<ds>`: the unit's files and manifest.
    pub partition: Path,
    /// The BigQuery dataset of the unit's table in the target (its suffix applied).
    pub dataset: String,
}

impl UnitPlan {
    /// Places `unit` in `target`.
    pub fn new(unit: Unit, pipeline: &Pipeline, target: &Target) -> UnitPlan {
        let ds = unit.ds.format("%Y-%m-%d").to_string();
        UnitPlan {
            partition: path::raw_partition(&unit.source, &unit.table, &ds),
            dataset: target.dataset(sluice::catalog::raw_dataset(pipeline, &unit.source)),
            ds,
            unit,
        }
    }
}

/// Builds the units: every selected table, every date for incremental tables, one snapshot
/// (labelled with the last date) for full tables.
pub fn units(
    pipeline: &Pipeline,
    source: Option<&str>,
    tables: &[String],
    dates: &Dates,
    today: NaiveDate,
) -> Result<Vec<Unit>> {
    if let Some(s) = source {
        if !pipeline.sources.contains_key(s) {
            return Err(Error::config(format!(
                "--source {s}: no such source in pipeline.yaml (have: {})",
                pipeline
                    .sources
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    let mut found = vec![false; tables.len()];
    let mut out = Vec::new();
    for (sname, src) in &pipeline.sources {
        if source.is_some_and(|s| s != sname) {
            continue;
        }
        for (tname, t) in &src.tables {
            if !tables.is_empty() {
                let hit = tables
                    .iter()
                    .position(|w| w == tname || *w == format!("{sname}.{tname}"));
                match hit {
                    Some(i) => found[i] = true,
                    None => continue,
                }
            }
            let default_ds = match (t.mode, &t.schedule) {
                (Mode::Incremental, Schedule::Daily) => today - Duration::days(1),
                _ => today,
            };
            // A full table is one snapshot, labelled with the last date of a range.
            let ds_list: Vec<NaiveDate> = match (dates, t.mode) {
                (Dates::Range(_, to), Mode::Full) => vec![*to],
                _ => dates.list(default_ds),
            };
            for ds in ds_list {
                out.push(Unit {
                    source: sname.clone(),
                    table: tname.clone(),
                    config: t.clone(),
                    ds,
                });
            }
        }
    }
    if let Some(i) = found.iter().position(|f| !f) {
        return Err(Error::config(format!(
            "--table {}: no such table in pipeline.yaml{}",
            tables[i],
            source
                .map(|s| format!(" under source {s}"))
                .unwrap_or_default()
        )));
    }
    Ok(out)
}

/// The units of Cloud Run task `index` of `count`: round-robin, so every task gets a share.
pub fn for_task(units: Vec<Unit>, index: usize, count: usize) -> Vec<Unit> {
    units
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i % count.max(1) == index)
        .map(|(_, u)| u)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipeline() -> Pipeline {
        Pipeline::parse(
            r#"
name: shop
bigquery: { project: p }
lake: { bucket: b }
sources:
  shop:
    dsn: { env: X }
    tables:
      users: { mode: full }
      orders: { mode: incremental, watermark_column: created_at }
      events: { mode: incremental, watermark_column: at, schedule: hourly }
"#,
            "t",
        )
        .unwrap()
    }

    fn d(s: &str) -> NaiveDate {
        sluice::cli::parse_date("--ds", s).unwrap()
    }

    #[test]
    fn defaults_per_mode_and_schedule() {
        let u = units(&pipeline(), None, &[], &Dates::Default, d("2024-05-10")).unwrap();
        let got: Vec<String> = u.iter().map(Unit::label).collect();
        assert_eq!(
            got,
            [
                "shop.events 2024-05-10",
                "shop.orders 2024-05-09",
                "shop.users 2024-05-10"
            ]
        );
    }

    #[test]
    fn backfill_expands_incremental_only() {
        let u = units(
            &pipeline(),
            Some("shop"),
            &["orders".into(), "shop.users".into()],
            &Dates::Range(d("2024-05-01"), d("2024-05-03")),
            d("2024-05-10"),
        )
        .unwrap();
        let got: Vec<String> = u.iter().map(Unit::label).collect();
        assert_eq!(
            got,
            [
                "shop.orders 2024-05-01",
                "shop.orders 2024-05-02",
                "shop.orders 2024-05-03",
                "shop.users 2024-05-03"
            ]
        );
    }

    #[test]
    fn unknown_names_are_errors() {
        let e = units(
            &pipeline(),
            None,
            &["nope".into()],
            &Dates::Default,
            d("2024-05-10"),
        );
        assert!(e.unwrap_err().to_string().contains("--table nope"));
        let e = units(
            &pipeline(),
            Some("crm"),
            &[],
            &Dates::Default,
            d("2024-05-10"),
        );
        assert!(e.unwrap_err().to_string().contains("--source crm"));
        assert!(sluice::cli::parse_date("--ds", "05/01/2024").is_err());
    }

    #[test]
    fn tasks_share_units() {
        let u = units(
            &pipeline(),
            None,
            &[],
            &Dates::Range(d("2024-05-01"), d("2024-05-04")),
            d("2024-05-10"),
        )
        .unwrap();
        let n = u.len();
        let a = for_task(u.clone(), 0, 2);
        let b = for_task(u, 1, 2);
        assert_eq!(a.len() + b.len(), n);
        assert!(a.iter().all(|x| !b.iter().any(|y| x.label() == y.label())));
    }
}

//! What pipeline.yaml and `marts/` declare: every table the pipeline lands or builds, with
//! its producer, owner, description, schedule and freshness SLA, and every scheduled unit of
//! work (what the heartbeat expects in `ops.runs`). Names come from `sluice::catalog` and the
//! mart DAG, so the monitor sees the tables the workers write; marts' times from
//! `sluice::marts`, so it expects each mart when the deployment runs it.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use sluice::catalog;
use sluice::config::{owner_key, Freshness, Pipeline, Schedule, TableMeta, Target};
use sluice::ledger::Worker;
use sluice::marts::{Dag, Runner};

/// A table the pipeline lands or builds.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Dataset before the target's suffix.
    pub dataset: String,
    pub table: String,
    pub worker: Worker,
    /// The ledger's `source` of the unit that lands it (source name, or mart dataset).
    pub source: Option<String>,
    /// The ledger's `table_name` of that unit (None: any row of the source, as cdc-sync).
    pub unit_table: Option<String>,
    /// The `owners:` key.
    pub owner: Option<String>,
    pub description: Option<String>,
    /// Cron of its schedule (None: continuous, as events).
    pub cron: Option<String>,
    pub freshness: Option<Freshness>,
}

/// A unit of work a schedule says must run: its ledger rows are `worker` with `source` (and
/// `table_name`, when given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    pub worker: Worker,
    pub source: String,
    pub table: Option<String>,
    pub schedule: Schedule,
    pub owner: Option<String>,
}

impl Unit {
    /// `pg-copy shop.orders`, `cdc-sync shop`.
    pub fn label(&self) -> String {
        match &self.table {
            Some(t) => format!("{} {}.{t}", self.worker, self.source),
            None => format!("{} {}", self.worker, self.source),
        }
    }
}

/// Everything declared.
#[derive(Debug, Clone, Default)]
pub struct Declared {
    pub tables: Vec<Table>,
    pub units: Vec<Unit>,
}

fn key(o: &Option<String>) -> Option<String> {
    o.as_deref().map(|o| owner_key(o).to_string())
}

impl Declared {
    /// From the pipeline, the event schemas under `base` (the directory of pipeline.yaml) and
    /// the checked marts.
    pub fn of(p: &Pipeline, base: &Path, dag: &Dag) -> Declared {
        let mut d = Declared::default();
        for (sname, s) in &p.sources {
            let raw = catalog::raw_dataset(p, sname).to_string();
            let source_default = TableMeta {
                owner: s.owner.clone(),
                ..TableMeta::default()
            };
            for (t, config) in &s.tables {
                let meta = config.meta().or(&source_default);
                d.tables.push(Table {
                    dataset: raw.clone(),
                    table: t.clone(),
                    worker: Worker::PgCopy,
                    source: Some(sname.clone()),
                    unit_table: Some(t.clone()),
                    owner: key(&meta.owner),
                    description: meta.description,
                    cron: Some(config.schedule.cron()),
                    freshness: meta.freshness,
                });
                d.units.push(Unit {
                    worker: Worker::PgCopy,
                    source: sname.clone(),
                    table: Some(t.clone()),
                    schedule: config.schedule.clone(),
                    owner: key(&meta.owner),
                });
            }
            if let Some(cdc) = &s.cdc {
                let ds = catalog::replica_dataset(cdc, sname);
                let cdc_default = TableMeta {
                    owner: cdc.owner.clone().or_else(|| s.owner.clone()),
                    description: None,
                    freshness: cdc.freshness,
                };
                let mut names: Vec<String> = cdc.tables.clone();
                names.extend(
                    cdc.per_table
                        .keys()
                        .filter(|k| !cdc.tables.contains(k))
                        .cloned(),
                );
                for name in names {
                    let (schema, table) = sluice::config::qualify(&name);
                    let meta = cdc
                        .per_table
                        .get(&name)
                        .cloned()
                        .unwrap_or_default()
                        .or(&cdc_default);
                    let mut push = |table: String, description: Option<String>| {
                        d.tables.push(Table {
                            dataset: ds.clone(),
                            table,
                            worker: Worker::CdcSync,
                            source: Some(sname.clone()),
                            unit_table: None,
                            owner: key(&meta.owner),
                            description,
                            cron: Some(sluice::schedule::CDC_CRON.into()),
                            freshness: meta.freshness,
                        })
                    };
                    push(
                        catalog::replica_table(&schema, &table),
                        meta.description.clone().or_else(|| {
                            Some(format!("Replica of {schema}.{table} in source {sname}."))
                        }),
                    );
                    if catalog::keeps_history(&cdc.history, &schema, &table) {
                        push(
                            catalog::history_table(&schema, &table),
                            Some(format!("Every change of {schema}.{table}, append-only.")),
                        );
                    }
                }
                d.units.push(Unit {
                    worker: Worker::CdcSync,
                    source: sname.clone(),
                    table: None,
                    schedule: Schedule::Cron(sluice::schedule::CDC_CRON.into()),
                    owner: key(&cdc_default.owner),
                });
            }
        }
        if let Some(ev) = &p.events {
            let dir = base.join(&ev.schemas);
            let default = TableMeta {
                owner: ev.owner.clone(),
                description: None,
                freshness: ev.freshness,
            };
            for (event_type, table) in catalog::event_tables(&dir).unwrap_or_default() {
                let doc: Value = std::fs::read_to_string(dir.join(format!("{event_type}.json")))
                    .ok()
                    .and_then(|t| serde_json::from_str(&t).ok())
                    .unwrap_or(Value::Null);
                let meta = ev
                    .types
                    .get(&event_type)
                    .cloned()
                    .unwrap_or_default()
                    .or(&default);
                d.tables.push(Table {
                    dataset: ev.dataset.clone(),
                    table: table.clone(),
                    worker: Worker::LogIngest,
                    source: None,
                    unit_table: Some(table),
                    owner: key(&meta.owner),
                    description: meta
                        .description
                        .or_else(|| doc["description"].as_str().map(str::to_string)),
                    cron: None,
                    freshness: meta.freshness,
                });
            }
        }
        // A mart runs when the deployment starts it: at the time derived from its inputs, not
        // at what its header says, or every mart would look missed (`sluice::marts`). A
        // mart whose time is refused cannot be deployed; it keeps its header's schedule here.
        let timings = sluice::marts::schedules(p, dag).marts;
        for (id, m) in &dag.marts {
            let h = &m.header;
            let schedule = timings
                .get(id)
                .map(|t| t.schedule())
                .unwrap_or_else(|| h.schedule.clone().unwrap_or_default());
            d.tables.push(Table {
                dataset: m.id.dataset.clone(),
                table: m.id.table.clone(),
                worker: Worker::MartBuild,
                source: Some(m.id.dataset.clone()),
                unit_table: Some(m.id.table.clone()),
                owner: key(&h.owner),
                description: h.description.clone(),
                cron: Some(schedule.cron()),
                freshness: h.freshness,
            });
            // Scheduled queries write no ledger rows: BigQuery's transfer runs are theirs.
            if h.runner == Runner::MartBuild {
                d.units.push(Unit {
                    worker: Worker::MartBuild,
                    source: m.id.dataset.clone(),
                    table: Some(m.id.table.clone()),
                    schedule,
                    owner: key(&h.owner),
                });
            }
        }
        d.tables
            .sort_by(|a, b| (&a.dataset, &a.table).cmp(&(&b.dataset, &b.table)));
        d
    }

    /// The table `dataset.table` (before the suffix).
    pub fn table(&self, dataset: &str, table: &str) -> Option<&Table> {
        self.tables
            .iter()
            .find(|t| t.dataset == dataset && t.table == table)
    }

    /// Owner of a ledger unit: the table it lands (or the source's first table).
    pub fn owner_of(
        &self,
        worker: &str,
        source: Option<&str>,
        table: Option<&str>,
    ) -> Option<String> {
        let unit = self.units.iter().find(|u| {
            u.worker.as_str() == worker
                && Some(u.source.as_str()) == source
                && (u.table.is_none() || u.table.as_deref() == table)
        });
        if let Some(u) = unit {
            return u.owner.clone();
        }
        self.tables
            .iter()
            .find(|t| {
                t.worker.as_str() == worker
                    && t.unit_table.as_deref() == table
                    && (t.source.is_none() || t.source.as_deref() == source)
            })
            .and_then(|t| t.owner.clone())
    }

    /// The rows of `ops.declared_tables` for a target: datasets suffixed as it writes them.
    pub fn rows(&self, target: &Target) -> Vec<Value> {
        let secs = |d: Option<Duration>| d.map(|d| d.as_secs());
        self.tables
            .iter()
            .map(|t| {
                json!({
                    "dataset": target.dataset(&t.dataset),
                    "table_name": t.table,
                    "producer": t.worker.as_str(),
                    "source": t.source,
                    "unit_table": t.unit_table,
                    "owner": t.owner,
                    "description": t.description,
                    "schedule": t.cron,
                    "warn_after_s": secs(t.freshness.and_then(|f| f.warn_after)),
                    "error_after_s": secs(t.freshness.and_then(|f| f.error_after)),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_landed_table_and_scheduled_unit_is_declared() {
        let dir = std::env::temp_dir().join(format!("declared_{}", std::process::id()));
        std::fs::create_dir_all(dir.join("ev")).unwrap();
        std::fs::write(
            dir.join("ev/signup.json"),
            r#"{"type": "object", "description": "A new account."}"#,
        )
        .unwrap();
        let p = Pipeline::parse(
            "name: t\nbigquery: { project: p }\nlake: { bucket: b }\n\
             owners: {ana: {slack: U1}, bo: {teams: bo@x.com}}\n\
             sources:\n  shop:\n    dsn: { env: X }\n    owner: bo\n    tables:\n      orders: { mode: full, schedule: hourly, owner: ana, freshness: {warn_after: 2h} }\n\
             \x20   cdc:\n      tables: [orders]\n      history: [orders]\n      freshness: {error_after: 1h}\n      per_table: {orders: {description: All orders.}}\n\
             events:\n  schemas: ev\n  owner: ana\n",
            "t",
        )
        .unwrap();
        let dag = Dag::build(vec![], &sluice::marts::Landed::of(&p, &dir)).unwrap();
        let d = Declared::of(&p, &dir, &dag);
        let names: Vec<String> = d
            .tables
            .iter()
            .map(|t| format!("{}.{} {} {:?}", t.dataset, t.table, t.worker, t.owner))
            .collect();
        assert_eq!(
            names,
            [
                "events.signup log-ingest Some(\"ana\")",
                "shop.orders pg-copy Some(\"ana\")",
                "shop_replica.orders cdc-sync Some(\"bo\")",
                "shop_replica.orders_history cdc-sync Some(\"bo\")",
            ]
        );
        assert_eq!(d.tables[0].description.as_deref(), Some("A new account."));
        assert_eq!(d.tables[2].description.as_deref(), Some("All orders."));
        assert_eq!(
            d.tables[2].freshness.unwrap().error_after,
            Some(Duration::from_secs(3600))
        );
        let units: Vec<String> = d.units.iter().map(|u| u.label()).collect();
        assert_eq!(units, ["pg-copy shop.orders", "cdc-sync shop"]);
        assert_eq!(d.units[0].schedule, Schedule::Hourly);
        assert_eq!(
            d.owner_of("cdc-sync", Some("shop"), None).as_deref(),
            Some("bo")
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn marts_are_expected_when_the_deployment_runs_them() {
        let p = Pipeline::parse(
            "name: t\nbigquery: { project: p }\nlake: { bucket: b }\n\
             sources:\n  shop:\n    dsn: { env: X }\n    tables:\n      clicks: { mode: incremental, watermark_column: at, schedule: hourly }\n",
            "t",
        )
        .unwrap();
        let dir = std::env::temp_dir();
        let mart = |name: &str, header: &str| {
            let sql = format!("/*\ndescription: d\n{header}\n*/\nSELECT 1 AS x FROM shop.clicks");
            sluice::marts::Mart::parse(&sql, Path::new(&format!("marts/m/{name}.sql")), "m", name)
                .unwrap()
        };
        let marts = vec![mart("daily", ""), mart("hourly", "schedule: hourly")];
        let dag = Dag::build(marts, &sluice::marts::Landed::of(&p, &dir)).unwrap();
        let d = Declared::of(&p, &dir, &dag);
        // The copy runs hourly at :15: the daily mart after the first one past midnight.
        let units: Vec<(String, Schedule)> = d
            .units
            .iter()
            .filter(|u| u.worker == Worker::MartBuild)
            .map(|u| (u.label(), u.schedule.clone()))
            .collect();
        assert_eq!(
            units,
            [
                (
                    "mart-build m.daily".into(),
                    Schedule::Cron("45 0 * * *".into())
                ),
                (
                    "mart-build m.hourly".into(),
                    Schedule::Cron("45 * * * *".into())
                ),
            ]
        );
        assert_eq!(
            d.table("m", "daily").and_then(|t| t.cron.as_deref()),
            Some("45 0 * * *")
        );
    }
}

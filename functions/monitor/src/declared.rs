//! What the heartbeat expects: the tables of the pipeline's inventory (`sluice::inventory`)
//! the monitor watches, with owner, description, schedule and freshness SLA, and the units
//! whose ledger rows it expects by their schedules. The inventory names what the workers
//! write and times marts as the deployment runs them, so the monitor expects what runs.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use sluice::config::{Pipeline, Target};
use sluice::inventory::{Inventory, Kind};
use sluice::marts::Dag;

pub use sluice::inventory::{Table, Unit};

/// Everything declared that the monitor watches.
#[derive(Debug, Clone, Default)]
pub struct Declared {
    /// By dataset and table; not the one-row-per-message views (their tables are watched).
    pub tables: Vec<Table>,
    /// The units whose runs are expected (not cdc-sync's content checks, not the monitor's).
    pub units: Vec<Unit>,
}

impl Declared {
    /// From the pipeline, the event schemas under `base` (the directory of pipeline.yaml) and
    /// the checked marts.
    pub fn of(p: &Pipeline, base: &Path, dag: &Dag) -> Declared {
        Declared::read(&Inventory::of(p, base, dag))
    }

    /// What of an inventory the monitor watches.
    pub fn read(inv: &Inventory) -> Declared {
        Declared {
            tables: inv
                .tables
                .iter()
                .filter(|t| t.kind != Kind::Dedup)
                .cloned()
                .collect(),
            units: inv.units.iter().filter(|u| u.expected).cloned().collect(),
        }
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
    use sluice::config::Schedule;
    use sluice::ledger::Worker;

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
        // Not the replicas' daily content check, nor the monitor's own check and digest.
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

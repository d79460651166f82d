//! mart-build's part of the inventory: every mart of the DAG, and a unit per mart that
//! mart-build builds (`run --select dataset.name`), at the time derived from its inputs
//! (`crate::marts::schedules`), not at what its header says, or every mart would look missed.
//! Scheduled queries are tables without units: BigQuery runs them and their transfer runs
//! write no ledger rows.

use super::{key, Inventory, Kind, Table, Unit};
use crate::config::Pipeline;
use crate::ledger::Worker;
use crate::marts::{Dag, Runner};

/// The marts of `dag` and their units, in id order.
pub(super) fn add(inv: &mut Inventory, p: &Pipeline, dag: &Dag) {
    let timings = crate::marts::schedules(p, dag).marts;
    for (id, m) in &dag.marts {
        let h = &m.header;
        // A mart whose time is refused cannot be deployed (the deployment says why); it keeps
        // its header's schedule here.
        let schedule = timings
            .get(id)
            .map(|t| t.schedule())
            .unwrap_or_else(|| h.schedule.clone().unwrap_or_default());
        inv.tables.push(Table {
            dataset: m.id.dataset.clone(),
            table: m.id.table.clone(),
            kind: Kind::Mart,
            worker: Worker::MartBuild,
            source: Some(m.id.dataset.clone()),
            unit_table: Some(m.id.table.clone()),
            owner: key(&h.owner),
            description: h.description.clone(),
            cron: Some(schedule.cron()),
            freshness: h.freshness,
        });
        if h.runner == Runner::MartBuild {
            inv.units.push(Unit {
                worker: Worker::MartBuild,
                source: m.id.dataset.clone(),
                table: Some(m.id.table.clone()),
                schedule,
                time_zone: None,
                owner: key(&h.owner),
                command: Some("run"),
                args: vec!["--select".into(), id.clone()],
                large: false,
                expected: true,
            });
        }
    }
}

//! pg-copy's part of the inventory: a copy of each configured table in the source's raw
//! dataset, and a unit per table (`--table source.table`), at the table's schedule.

use super::{key, Inventory, Kind, Table, Unit};
use crate::catalog::raw_dataset;
use crate::config::{Mode, Pipeline, Source, TableMeta};
use crate::ledger::Worker;

/// The copies and units of source `name`.
pub(super) fn add(inv: &mut Inventory, p: &Pipeline, name: &str, source: &Source) {
    let raw = raw_dataset(p, name);
    let source_default = TableMeta {
        owner: source.owner.clone(),
        ..TableMeta::default()
    };
    for (t, config) in &source.tables {
        let meta = config.meta().or(&source_default);
        inv.tables.push(Table {
            dataset: raw.to_string(),
            table: t.clone(),
            kind: Kind::Copy {
                full: config.mode == Mode::Full,
            },
            worker: Worker::PgCopy,
            source: Some(name.to_string()),
            unit_table: Some(t.clone()),
            owner: key(&meta.owner),
            description: meta.description,
            cron: Some(config.schedule.cron()),
            freshness: meta.freshness,
        });
        inv.units.push(Unit {
            worker: Worker::PgCopy,
            source: name.to_string(),
            table: Some(t.clone()),
            schedule: config.schedule.clone(),
            time_zone: None,
            owner: key(&meta.owner),
            command: None,
            args: vec!["--table".into(), format!("{name}.{t}")],
            large: config.large,
            expected: true,
        });
    }
}

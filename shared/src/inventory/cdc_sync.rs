//! cdc-sync's part of the inventory: per source with a `cdc` block, the replica of each table
//! it names (in `tables` or `per_table`) and its history when `history` keeps one; the whole
//! replica dataset when it replicates whole schemas; a run every few minutes and the content
//! check (`cdc-sync status`) at `verify`.

use std::collections::BTreeSet;

use super::{key, Inventory, Kind, Table, Unit};
use crate::catalog::Producer;
use crate::catalog::{history_table, keeps_history, replica_dataset, replica_table};
use crate::config::qualify;
use crate::config::{Source, TableMeta};
use crate::ledger::Worker;
use crate::schedule::{Schedule, CDC_CRON};

/// How long one cdc-sync run may start batches: it starts every 5 minutes (`CDC_CRON`), so
/// it ends well before the next start; the slot admits one reader, so an overlapping run
/// would fail at once ("another run holds the slot") instead of reading the same changes
/// twice.
pub const CDC_MAX_DURATION: &str = "4m";

/// The replicas, histories and units of source `name`.
pub(super) fn add(inv: &mut Inventory, name: &str, source: &Source) {
    let Some(cdc) = &source.cdc else { return };
    let dataset = replica_dataset(cdc, name);
    let producer = Producer::Cdc {
        source: name.to_string(),
    };
    if cdc.all_tables || !cdc.schemas.is_empty() {
        inv.open_datasets.insert(dataset.clone(), producer);
    }
    let default = TableMeta {
        owner: cdc.owner.clone().or_else(|| source.owner.clone()),
        description: None,
        freshness: cdc.freshness,
    };
    // Each table once, by its qualified name: `orders` in `tables` and `public.orders` in
    // `per_table` are one table, with the `per_table` settings.
    let mut seen = BTreeSet::new();
    let named = cdc.tables.iter().chain(cdc.per_table.keys());
    for (schema, table) in named.map(|n| qualify(n)) {
        if !seen.insert((schema.clone(), table.clone())) {
            continue;
        }
        let meta = cdc
            .per_table
            .iter()
            .find(|(k, _)| qualify(k) == (schema.clone(), table.clone()))
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
            .or(&default);
        let mut push = |t: String, kind: Kind, description: String| {
            inv.tables.push(Table {
                dataset: dataset.clone(),
                table: t,
                kind,
                worker: Worker::CdcSync,
                source: Some(name.to_string()),
                unit_table: None,
                owner: key(&meta.owner),
                description: Some(description),
                cron: Some(CDC_CRON.into()),
                freshness: meta.freshness,
            })
        };
        let about = meta.description.clone();
        push(
            replica_table(&schema, &table),
            Kind::Replica,
            about.unwrap_or_else(|| format!("Replica of {schema}.{table} in source {name}.")),
        );
        if keeps_history(&cdc.history, &schema, &table) {
            push(
                history_table(&schema, &table),
                Kind::History,
                format!("Every change of {schema}.{table}, append-only."),
            );
        }
    }
    let unit = |command, args: &[&str], schedule: Schedule, expected| Unit {
        worker: Worker::CdcSync,
        source: name.to_string(),
        table: None,
        schedule,
        time_zone: None,
        owner: key(&default.owner),
        command: Some(command),
        args: args.iter().map(|a| a.to_string()).collect(),
        large: false,
        expected,
    };
    let run = ["--source", name, "--max-duration", CDC_MAX_DURATION];
    inv.units
        .push(unit("run", &run, Schedule::Cron(CDC_CRON.into()), true));
    // The replicas compared with the source by content; a difference fails the run's ledger
    // row, which the monitor alerts on.
    if let Some(verify) = &cdc.verify {
        inv.units
            .push(unit("status", &["--source", name], verify.clone(), false));
    }
}

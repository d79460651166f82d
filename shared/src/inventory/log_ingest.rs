//! log-ingest's part of the inventory: the table of each event type (a `<type>.json` schema
//! under `events.schemas`) and its one-row-per-message view. No units: log-ingest is a
//! service, its tables continuous.

use std::path::Path;

use serde_json::Value;

use super::{key, Inventory, Kind, Table};
use crate::catalog::{dedup_view, event_schemas, event_table};
use crate::config::{Pipeline, TableMeta};
use crate::ledger::Worker;
use crate::{Error, Result};

/// The event tables of the schemas under `base` (the directory of pipeline.yaml); none, and
/// an error, when the schemas directory cannot be read.
pub(super) fn add(inv: &mut Inventory, p: &Pipeline, base: &Path) -> Result<()> {
    let Some(ev) = &p.events else { return Ok(()) };
    let dir = base.join(&ev.schemas);
    let schemas = event_schemas(&dir).map_err(|e| {
        Error::config(format!(
            "cannot read event schemas in {}: {e}",
            dir.display()
        ))
    })?;
    let default = TableMeta {
        owner: ev.owner.clone(),
        description: None,
        freshness: ev.freshness,
    };
    for (event_type, doc) in schemas {
        let table = event_table(&event_type, &doc);
        let meta = ev
            .types
            .get(&event_type)
            .cloned()
            .unwrap_or_default()
            .or(&default);
        let about = |v: &Value| v["description"].as_str().map(str::to_string);
        let events = Table {
            dataset: ev.dataset.clone(),
            table: table.clone(),
            kind: Kind::Events,
            worker: Worker::LogIngest,
            source: None,
            unit_table: Some(table.clone()),
            owner: key(&meta.owner),
            description: meta.description.or_else(|| about(&doc)),
            cron: None,
            freshness: meta.freshness,
        };
        let dedup = Table {
            table: dedup_view(&table),
            kind: Kind::Dedup,
            description: Some(format!("{table}, one row per Pub/Sub message.")),
            freshness: None,
            ..events.clone()
        };
        inv.tables.extend([events, dedup]);
    }
    Ok(())
}

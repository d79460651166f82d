//! Where the pipeline lands each table: pg-copy's raw copies, cdc-sync's replicas and their
//! histories, log-ingest's event tables and their one-row-per-message views, and sluice's own
//! ops tables. Workers ask it where to write, the inventory (`crate::inventory`) what each
//! table is called, and mart-build what a mart may read (`Landed`) and what lands it; so no
//! two places can disagree on a name. Dataset names here are before the target's suffix
//! (`Target::dataset` adds it).

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::config::{qualify, CdcConfig, Pipeline};

/// The dataset of a source's pg-copy tables: `dataset:` of the source, or its name.
pub fn raw_dataset<'a>(p: &'a Pipeline, source: &'a str) -> &'a str {
    p.sources
        .get(source)
        .and_then(|s| s.dataset.as_deref())
        .unwrap_or(source)
}

/// The dataset of a source's replicas: `cdc.dataset`, or `<source>_replica`.
pub fn replica_dataset(cdc: &CdcConfig, source: &str) -> String {
    cdc.dataset
        .clone()
        .unwrap_or_else(|| format!("{source}_replica"))
}

/// The replica of Postgres `schema.table`: `table` for the public schema, else
/// `schema__table` (one dataset holds every schema of the source).
pub fn replica_table(schema: &str, table: &str) -> String {
    if schema == "public" {
        table.to_string()
    } else {
        format!("{schema}__{table}")
    }
}

/// The append-only history of `schema.table`'s replica.
pub fn history_table(schema: &str, table: &str) -> String {
    format!("{}_history", replica_table(schema, table))
}

/// Whether `history` (a cdc block's, names written like `tables:`) lists `schema.table`.
pub fn keeps_history(history: &[String], schema: &str, table: &str) -> bool {
    history
        .iter()
        .any(|h| qualify(h) == (schema.to_string(), table.to_string()))
}

/// The table of an event type: `x-bigquery.table` of its schema document, else the type.
pub fn event_table(event_type: &str, schema: &Value) -> String {
    schema["x-bigquery"]["table"]
        .as_str()
        .unwrap_or(event_type)
        .to_string()
}

/// The schema document of each event type (a `<type>.json` in `dir`), by type; `null` for a
/// file that does not read or parse: the one walk over the schema files, which the inventory
/// reads.
pub fn event_schemas(dir: &Path) -> std::io::Result<BTreeMap<String, Value>> {
    let mut out = BTreeMap::new();
    for path in std::fs::read_dir(dir)?.flatten().map(|e| e.path()) {
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let event_type = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        let doc: Value = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null);
        out.insert(event_type.to_string(), doc);
    }
    Ok(out)
}

/// The view of an event table that keeps one row per Pub/Sub message.
pub fn dedup_view(event_table: &str) -> String {
    format!("{event_table}_dedup")
}

/// What lands a table, so a reader can wait until it is fresh for a date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Producer {
    /// pg-copy copies it each day; `full` copies cover every earlier date too.
    PgCopy {
        source: String,
        table: String,
        full: bool,
    },
    /// cdc-sync replicates it continuously from `source`.
    Cdc { source: String },
    /// log-ingest streams it (no per-day runs to wait for).
    Events,
    /// sluice's own tables (`ops`).
    Ops,
}

/// Every table the pipeline lands, as `pipeline.yaml` (and the event schemas) declare them:
/// what a mart may read. `Landed::of` reads it off the inventory (`crate::inventory`).
#[derive(Debug, Clone, Default)]
pub struct Landed {
    /// By `dataset.table`.
    pub tables: BTreeMap<String, Producer>,
    /// Datasets whose every table is the pipeline's (cdc of whole schemas, `ops`).
    pub open_datasets: BTreeMap<String, Producer>,
}

impl Landed {
    /// What lands `dataset.table`, if the pipeline lands it.
    pub fn producer(&self, dataset: &str, table: &str) -> Option<&Producer> {
        self.tables
            .get(&format!("{dataset}.{table}"))
            .or_else(|| self.open_datasets.get(dataset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_outside_public_carry_their_schema() {
        assert_eq!(qualify("orders"), ("public".into(), "orders".into()));
        assert_eq!(
            qualify("billing.invoices"),
            ("billing".into(), "invoices".into())
        );
        assert_eq!(replica_table("public", "orders"), "orders");
        assert_eq!(replica_table("billing", "invoices"), "billing__invoices");
        assert_eq!(
            history_table("billing", "invoices"),
            "billing__invoices_history"
        );
    }

    #[test]
    fn datasets_default_to_the_source_name() {
        let p = Pipeline::parse(
            "name: t\nbigquery: { project: p }\nlake: { bucket: b }\n\
             sources:\n  shop:\n    dsn: { env: X }\n    cdc: { tables: [orders, billing.invoices] }\n",
            "t",
        )
        .unwrap();
        assert_eq!(raw_dataset(&p, "shop"), "shop");
        let cdc = p.sources["shop"].cdc.as_ref().unwrap();
        assert_eq!(replica_dataset(cdc, "shop"), "shop_replica");
    }
}

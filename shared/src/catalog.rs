//! Where the pipeline lands each table: pg-copy's raw copies, cdc-sync's replicas and their
//! histories, log-ingest's event tables and their one-row-per-message views, and sluice's own
//! ops tables. Workers ask it where to write, mart-build asks it what a mart may read and what
//! lands it; so no two places can disagree on a name. Dataset names here are before the
//! target's suffix (`Target::dataset` adds it).

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::config::{qualify, CdcConfig, Mode, Pipeline};

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

/// The table of each event type whose schema is a `<type>.json` in `dir`, by type: the one
/// walk over the schema files that the catalog and the deployment share.
pub fn event_tables(dir: &Path) -> std::io::Result<BTreeMap<String, String>> {
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
        out.insert(event_type.to_string(), event_table(event_type, &doc));
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

/// Every table the pipeline lands, as `pipeline.yaml` (and the event schemas) declare them.
#[derive(Debug, Clone, Default)]
pub struct Landed {
    /// By `dataset.table`.
    pub tables: BTreeMap<String, Producer>,
    /// Datasets whose every table is the pipeline's (cdc of whole schemas, `ops`).
    pub open_datasets: BTreeMap<String, Producer>,
}

impl Landed {
    /// The tables of a pipeline; event tables are named by the schema files under
    /// `events.schemas`, relative to `base`, the directory of pipeline.yaml.
    pub fn of(p: &Pipeline, base: &Path) -> Landed {
        let mut l = Landed::default();
        l.open_datasets
            .insert(p.bigquery.ops_dataset.clone(), Producer::Ops);
        for (name, s) in &p.sources {
            let raw = raw_dataset(p, name);
            for (t, config) in &s.tables {
                let producer = Producer::PgCopy {
                    source: name.clone(),
                    table: t.clone(),
                    full: config.mode == Mode::Full,
                };
                l.tables.insert(format!("{raw}.{t}"), producer);
            }
            if let Some(cdc) = &s.cdc {
                let ds = replica_dataset(cdc, name);
                let producer = Producer::Cdc {
                    source: name.clone(),
                };
                if cdc.all_tables || !cdc.schemas.is_empty() {
                    l.open_datasets.insert(ds.clone(), producer.clone());
                }
                for t in &cdc.tables {
                    let (schema, table) = qualify(t);
                    let replica = replica_table(&schema, &table);
                    l.tables.insert(format!("{ds}.{replica}"), producer.clone());
                }
                for t in &cdc.history {
                    let (schema, table) = qualify(t);
                    let history = history_table(&schema, &table);
                    l.tables.insert(format!("{ds}.{history}"), producer.clone());
                }
            }
        }
        if let Some(ev) = &p.events {
            let tables = event_tables(&base.join(&ev.schemas)).unwrap_or_default();
            for table in tables.into_values() {
                l.tables.insert(
                    format!("{}.{}", ev.dataset, dedup_view(&table)),
                    Producer::Events,
                );
                l.tables
                    .insert(format!("{}.{table}", ev.dataset), Producer::Events);
            }
        }
        l
    }

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

    #[test]
    fn the_pipeline_lands_what_it_declares() {
        let dir = std::env::temp_dir().join(format!("catalog_{}", std::process::id()));
        std::fs::create_dir_all(dir.join("ev")).unwrap();
        std::fs::write(
            dir.join("ev/page_view.json"),
            r#"{"type": "object", "x-bigquery": {"table": "views"}}"#,
        )
        .unwrap();
        std::fs::write(dir.join("ev/signup.json"), r#"{"type": "object"}"#).unwrap();
        let p = Pipeline::parse(
            "name: t\nbigquery: { project: p }\nlake: { bucket: b }\n\
             sources:\n  shop:\n    dsn: { env: X }\n    dataset: shop_raw\n    tables:\n      orders: { mode: incremental, watermark_column: at }\n\
             \x20   cdc:\n      tables: [orders, billing.invoices]\n      history: [billing.invoices]\n\
             events:\n  schemas: ev\n",
            "t",
        )
        .unwrap();
        let l = Landed::of(&p, &dir);
        let names: Vec<&str> = l.tables.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "events.signup",
                "events.signup_dedup",
                "events.views",
                "events.views_dedup",
                "shop_raw.orders",
                "shop_replica.billing__invoices",
                "shop_replica.billing__invoices_history",
                "shop_replica.orders",
            ]
        );
        assert_eq!(
            l.producer("shop_raw", "orders"),
            Some(&Producer::PgCopy {
                source: "shop".into(),
                table: "orders".into(),
                full: false
            })
        );
        assert_eq!(l.producer("ops", "runs"), Some(&Producer::Ops));
        assert_eq!(l.producer("shop_replica", "invoices"), None);
        let cdc = p.sources["shop"].cdc.as_ref().unwrap();
        assert!(keeps_history(&cdc.history, "billing", "invoices"));
        assert!(!keeps_history(&cdc.history, "public", "invoices"));
        let _ = std::fs::remove_dir_all(dir);
    }
}

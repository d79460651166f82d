//! `sources:`: the Postgres databases, the tables pg-copy copies, and what cdc-sync replicates;
//! and `qualify`, how a table name written there reads as Postgres `(schema, table)`.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::meta::{table_meta, TableMeta};
use super::Schedule;
use crate::secret::DsnRef;

/// Postgres `(schema, table)` of a configured table name: `orders` is `public.orders`.
pub fn qualify(name: &str) -> (String, String) {
    match name.split_once('.') {
        Some((s, t)) => (s.to_string(), t.to_string()),
        None => ("public".to_string(), name.to_string()),
    }
}

/// One Postgres database.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// How to find the connection string.
    pub dsn: DsnRef,
    /// BigQuery dataset that receives this source's tables (default: the source's name).
    #[serde(default)]
    pub dataset: Option<String>,
    /// Tables to copy with pg-copy, by name.
    #[serde(default)]
    pub tables: BTreeMap<String, TableConfig>,
    /// Change data capture of this database into replica tables (cdc-sync).
    #[serde(default)]
    pub cdc: Option<CdcConfig>,
    /// Default owner (a key of `owners:`) of this source's tables.
    #[serde(default)]
    pub owner: Option<String>,
}

table_meta! {
    /// What cdc-sync replicates from a source, and how; its `owner` and `freshness` are those of
    /// every replica (`per_table` overrides them).
    #[derive(Debug, Clone, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct CdcConfig {
        /// Tables in the publication (`orders` or `schema.orders`); give this, `schemas`, or
        /// `all_tables`.
        #[serde(default)]
        pub tables: Vec<String>,
        /// Every table of these Postgres schemas, including tables created later.
        #[serde(default)]
        pub schemas: Vec<String>,
        /// Every table of the database, including tables created later (needs a superuser).
        #[serde(default)]
        pub all_tables: bool,
        /// Publication name (default `sluice_<source>`).
        #[serde(default)]
        pub publication: Option<String>,
        /// Replication slot name (default `sluice_<source>`).
        #[serde(default)]
        pub slot: Option<String>,
        /// BigQuery dataset of the replica tables (default `<source>_replica`).
        #[serde(default)]
        pub dataset: Option<String>,
        /// `soft` (default): deleted and truncated rows stay, flagged `_sluice_deleted`; `hard`:
        /// they are removed.
        #[serde(default)]
        pub deletes: DeleteMode,
        /// Tables that also keep an append-only `<table>_history` of every change.
        #[serde(default)]
        pub history: Vec<String>,
        /// Changes read from the slot per batch (whole transactions, so a batch may hold more).
        #[serde(default = "default_batch_changes")]
        pub batch_changes: u32,
        /// Warn when the slot retains more WAL than this many MiB.
        #[serde(default = "default_retained_wal_warn_mib")]
        pub retained_wal_warn_mib: u64,
        /// `error` (default) or `skip` columns of unsupported types.
        #[serde(default)]
        pub on_unsupported: OnUnsupported,
        meta_defaults;
        /// `owner`, `description`, `freshness` of single replicated tables, by the name `tables`
        /// (or the schema) gives them.
        #[serde(default)]
        pub per_table: BTreeMap<String, TableMeta>,
        /// When `cdc-sync status` compares every replica with its source by content (a job of
        /// its own, alerting through the ledger): `daily` (default, 06:00), `hourly`, a cron, or
        /// `off`.
        #[serde(default = "default_verify", deserialize_with = "verify_schedule")]
        pub verify: Option<Schedule>,
    }
}

fn default_verify() -> Option<Schedule> {
    Some(Schedule::Daily)
}

fn verify_schedule<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Schedule>, D::Error> {
    let s = String::deserialize(d)?;
    if s.trim() == "off" {
        return Ok(None);
    }
    Schedule::parse(&s)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// How deletes and truncates reach a replica.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DeleteMode {
    /// The row stays with `_sluice_deleted = TRUE` and `_sluice_deleted_at`.
    #[default]
    Soft,
    /// The row is removed.
    Hard,
}

fn default_batch_changes() -> u32 {
    50_000
}
fn default_retained_wal_warn_mib() -> u64 {
    1024
}

impl CdcConfig {
    pub fn publication(&self, source: &str) -> String {
        self.publication
            .clone()
            .unwrap_or_else(|| format!("sluice_{source}"))
    }
    pub fn slot(&self, source: &str) -> String {
        self.slot
            .clone()
            .unwrap_or_else(|| format!("sluice_{source}"))
    }
}

/// How a table is copied.
#[derive(Debug, Clone, Copy, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Replace the whole BigQuery table on every run.
    Full,
    /// Copy rows whose watermark falls on the logical date and replace that date's partition.
    Incremental,
}

/// What to do with a column whose type sluice cannot map.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OnUnsupported {
    /// Fail with a message naming table and column.
    #[default]
    Error,
    /// Leave the column out, with a warning.
    Skip,
}

table_meta! {
    /// One table of a source; its `owner` defaults to the source's.
    #[derive(Debug, Clone, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct TableConfig {
        /// `full` or `incremental`.
        pub mode: Mode,
        /// Postgres schema of the table.
        #[serde(default = "default_schema")]
        pub schema: String,
        /// For `incremental`: the date, timestamp or timestamptz column that assigns rows to dates.
        #[serde(default)]
        pub watermark_column: Option<String>,
        /// When Cloud Scheduler starts the copy: `daily` (the day before) or `hourly` (today so far).
        #[serde(default)]
        pub schedule: Schedule,
        /// `numeric` columns to land as exact STRING instead of NUMERIC/BIGNUMERIC.
        #[serde(default)]
        pub numeric_as_string: Vec<String>,
        /// `error` (default) or `skip` columns of unsupported types.
        #[serde(default)]
        pub on_unsupported: OnUnsupported,
        /// BigQuery clustering columns.
        #[serde(default)]
        pub cluster_by: Vec<String>,
        /// A table too big to share a Cloud Run task: Terraform copies the large tables of a
        /// schedule in a job of their own, one task per table, each reading with `--parallel`.
        #[serde(default)]
        pub large: bool,
        meta;
    }
}

fn default_schema() -> String {
    "public".into()
}

//! `pipeline.yaml`: the team's pipeline in one file, read by every worker and by Terraform.
//!
//! `Pipeline` and the datasets sluice owns are here; the parts of the file each have a
//! module: `source` (databases, their tables and CDC, and `qualify` for the table names they
//! write), `events` (log-ingest), `meta` (a table's owner, description and freshness, wherever
//! the table is declared), `monitor` (owners and alerts), `target` (environments, resolved into
//! a `Target`), `duration` (how durations are written), and `validate` (every check beyond the
//! types, with the key path and line of what is wrong, and duplicate keys).

mod duration;
mod events;
mod meta;
mod monitor;
mod source;
mod target;
mod validate;

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};
use validate::refuse_duplicate_keys;

pub use crate::schedule::Schedule;
pub use duration::{parse_age, parse_duration};
pub use events::{EventBatch, EventsConfig, PushAuth};
pub use meta::{Freshness, TableMeta};
pub use monitor::{
    clock_minutes, AlertsConfig, Channel, ChannelKind, Digest, Owner, Quiet, Route, Severity,
};
pub use source::{qualify, CdcConfig, DeleteMode, Mode, OnUnsupported, Source, TableConfig};
pub use target::{LakeLocation, SourceOverride, Target, TargetConfig, Timeouts};
pub use validate::{duplicate_key, owner_key, weekday, DuplicateKey};

/// The whole pipeline definition.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pipeline {
    /// A short name for this pipeline; it prefixes job ids and labels.
    pub name: String,
    /// Where the warehouse lives.
    pub bigquery: BigQueryConfig,
    /// Where Parquet files are staged and kept for replay.
    pub lake: LakeConfig,
    /// Postgres databases to copy from, by name.
    #[serde(default)]
    pub sources: BTreeMap<String, Source>,
    /// App events from Pub/Sub (log-ingest).
    #[serde(default)]
    pub events: Option<EventsConfig>,
    /// Environments: `local`, `dev`, `prod`; pull-request targets (`pr-123`) derive from `dev`.
    #[serde(default)]
    pub targets: BTreeMap<String, TargetConfig>,
    /// People and groups alerts mention, by the key tables name as `owner`.
    #[serde(default)]
    pub owners: BTreeMap<String, Owner>,
    /// Where the monitor sends alerts and the digest.
    #[serde(default)]
    pub alerts: Option<AlertsConfig>,
}

/// BigQuery project and the datasets sluice itself owns.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BigQueryConfig {
    /// The Google Cloud project of the production warehouse.
    pub project: String,
    /// Location of datasets and jobs.
    #[serde(default = "default_location")]
    pub location: String,
    /// Dataset of the run ledger (`runs`) and other operational tables.
    #[serde(default = "default_ops_dataset")]
    pub ops_dataset: String,
    /// Dataset for staging tables; tables in it expire after a day.
    #[serde(default = "default_staging_dataset")]
    pub staging_dataset: String,
}

/// The lake in the cloud.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LakeConfig {
    /// GCS bucket that holds `raw/` and `cdc/`.
    pub bucket: String,
}

fn default_location() -> String {
    "US".into()
}
fn default_ops_dataset() -> String {
    "ops".into()
}
fn default_staging_dataset() -> String {
    "sluice_staging".into()
}

impl Pipeline {
    /// Reads and validates `pipeline.yaml`.
    pub fn load(path: &Path) -> Result<Pipeline> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::config(format!("cannot read {}: {e}", path.display())))?;
        Pipeline::parse(&text, &path.display().to_string())
    }

    /// Parses and validates pipeline YAML; `origin` names the file in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Pipeline> {
        refuse_duplicate_keys(text, origin)?;
        let p: Pipeline = serde_yaml::from_str(text).map_err(|e| {
            let msg = e.to_string();
            Error::config(format!("{origin}: {msg}"))
        })?;
        p.validate(text, origin)?;
        Ok(p)
    }
}

#[cfg(test)]
mod tests;

//! A mart's YAML header as written: what `serde` reads, before anything is resolved. The
//! checks in it are resolved in `checks`, the whole mart in `mart`.

use std::collections::BTreeMap;

use crate::schedule::Schedule;
use serde::Deserialize;

/// How a mart's result reaches its table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Materialized {
    /// The table is replaced by the result.
    #[default]
    Table,
    /// The `@ds` partition of a date-partitioned table is replaced by the result.
    Partition,
    /// The result is merged into the table by `unique_key`.
    Merge,
    /// A view of the SELECT (no checks run: nothing is built).
    View,
}

impl Materialized {
    /// As the header writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Materialized::Table => "table",
            Materialized::Partition => "partition",
            Materialized::Merge => "merge",
            Materialized::View => "view",
        }
    }
}

/// Who runs the mart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Runner {
    #[default]
    MartBuild,
    ScheduledQuery,
}

/// A list written as one string or as a list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(from = "OneOrMany")]
pub struct Names(pub Vec<String>);

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl From<OneOrMany> for Names {
    fn from(v: OneOrMany) -> Names {
        match v {
            OneOrMany::One(s) => Names(vec![s]),
            OneOrMany::Many(v) => Names(v),
        }
    }
}

/// The header, as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// Table description in BigQuery.
    #[serde(default)]
    pub description: Option<String>,
    /// Who is mentioned in alerts about this mart (a key of pipeline.yaml's `owners:`).
    #[serde(default)]
    pub owner: Option<String>,
    /// How old the mart may get before the monitor warns, then errors.
    #[serde(default)]
    pub freshness: Option<crate::config::Freshness>,
    /// Column descriptions, written to BigQuery.
    #[serde(default)]
    pub columns: BTreeMap<String, String>,
    #[serde(default)]
    pub materialized: Materialized,
    /// The DATE (or TIMESTAMP) column a `partition` mart is partitioned by.
    #[serde(default)]
    pub partition_by: Option<String>,
    #[serde(default)]
    pub cluster_by: Names,
    /// Key columns of a `merge` mart.
    #[serde(default)]
    pub unique_key: Names,
    /// `daily` (default), `hourly`, or a cron expression. `daily` and `hourly` are timed after
    /// the mart's inputs, a cron is checked against them (`crate::marts::timing`).
    #[serde(default)]
    pub schedule: Option<Schedule>,
    #[serde(default)]
    pub runner: Runner,
    /// Inputs the SQL does not name (`dataset.table`), read before this mart.
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// Checks that stop the mart (and its dependents) when they fail.
    #[serde(default)]
    pub fail_conditions: Vec<CheckSpec>,
    /// Checks that are only recorded.
    #[serde(default)]
    pub dq_metrics: Vec<CheckSpec>,
}

/// A check as written in the header.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckSpec {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub threshold: Option<f64>,
    #[serde(default)]
    pub expression: Option<String>,
    #[serde(default)]
    pub not_null: Option<String>,
    #[serde(default)]
    pub unique: Option<Names>,
    #[serde(default)]
    pub not_empty: Option<bool>,
    #[serde(default)]
    pub accepted_values: Option<AcceptedValues>,
    #[serde(default)]
    pub row_count_change: Option<RowCountChange>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceptedValues {
    pub column: String,
    pub values: Vec<serde_yaml::Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RowCountChange {
    /// Largest accepted change, as a fraction of the previous partition's rows (0.5 = ±50%).
    pub max_ratio: f64,
}

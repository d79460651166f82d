//! The run ledger: one row in `ops.runs` for every unit of work a worker does.
//!
//! Rows are streamed (insertAll, insertId = run id + unit) and never updated, so the table is
//! safe to query while workers write, and a retried write does not duplicate a row.

use serde::Serialize;
use serde_json::Value;

use crate::bigquery::BigQuery;
use crate::error::Result;

pub const RUNS_TABLE: &str = crate::ops::RUNS.name;

/// How a unit of work ended.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Success,
    Failed,
    Skipped,
}

/// One ledger row.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    pub run_id: String,
    pub worker: String,
    pub target: String,
    pub source: Option<String>,
    pub table_name: Option<String>,
    pub logical_date: Option<String>,
    pub lsn_range: Option<String>,
    /// RFC 3339.
    pub started_at: String,
    pub finished_at: String,
    pub status: Status,
    pub rows_in: u64,
    pub rows_loaded: u64,
    pub rows_dead_lettered: u64,
    pub bytes: u64,
    pub error: Option<String>,
    /// Anything else worth keeping (counts of adjusted values, files, job ids), as JSON text.
    pub details: Value,
}

/// Writes ledger rows to `<ops dataset>.runs`.
#[derive(Debug, Clone)]
pub struct Ledger {
    bq: BigQuery,
    dataset: String,
}

impl Ledger {
    /// Creates the ops dataset and the runs table if missing.
    pub async fn open(bq: BigQuery, dataset: &str) -> Result<Ledger> {
        bq.ensure_dataset(dataset, None).await?;
        crate::ops::RUNS.ensure(&bq, dataset).await?;
        Ok(Ledger {
            bq,
            dataset: dataset.to_string(),
        })
    }

    pub async fn record(&self, r: &RunRecord) -> Result<()> {
        let insert_id = format!(
            "{}:{}:{}:{}",
            r.run_id,
            r.table_name.as_deref().unwrap_or(""),
            r.logical_date.as_deref().unwrap_or(""),
            r.lsn_range.as_deref().unwrap_or("")
        );
        let mut row = serde_json::to_value(r).unwrap_or(Value::Null);
        // insertAll takes JSON columns as JSON text.
        row["details"] = Value::String(r.details.to_string());
        self.bq
            .insert_all(&self.dataset, RUNS_TABLE, &[(insert_id, row)])
            .await
    }
}

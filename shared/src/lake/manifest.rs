//! The manifest of a lake partition: which Parquet files make it, with their row counts.
//!
//! A partition is complete only once its manifest exists; a copy deletes the old manifest first
//! and writes the new one last, so a failure in between never leaves a partition that
//! `--from-lake` would load half of.

use serde::{Deserialize, Serialize};

/// One Parquet file of a partition.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PartFile {
    /// Path inside the bucket.
    pub path: String,
    pub rows: u64,
    pub bytes: u64,
}

/// What a partition holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// The run that wrote the files.
    pub run_id: String,
    pub source: String,
    pub table: String,
    pub ds: String,
    pub files: Vec<PartFile>,
    pub rows: u64,
    pub bytes: u64,
    /// The BigQuery schema of the files (REST `fields` on disk), so a reload needs no
    /// Postgres.
    pub bigquery_fields: Vec<crate::bigquery::schema::Field>,
    /// Counts of values that were adjusted on the way (see `DecodeStats`).
    pub decode_stats: serde_json::Value,
    pub written_at: String,
}

//! log-ingest: Land Pub/Sub events in BigQuery, validated against JSON Schemas, with a dead-letter table.
//!
//! Not built yet: this crate holds its place in the workspace until issue #4.

/// The issue that builds this worker.
pub const ISSUE: u32 = 4;

//! cdc-sync: Replicate Postgres into BigQuery from a logical replication slot.
//!
//! Not built yet: this crate holds its place in the workspace until issue #3.

/// The issue that builds this worker.
pub const ISSUE: u32 = 3;

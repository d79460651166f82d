//! BigQuery: the REST client, table schemas from the type mapping, and the SQL sluice generates.

pub mod client;
pub mod merge;
pub mod schema;
pub mod sql;

pub use client::{BigQuery, JobResult, Param, QueryRows, RowError};

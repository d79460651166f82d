//! BigQuery: the REST client, table schemas from the type mapping, and SQL helpers the workers share.

pub mod client;
pub mod schema;
pub mod sql;
pub mod staging;

pub use client::{BigQuery, JobResult, Param, QueryRows, RowError};

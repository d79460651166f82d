//! BigQuery: the REST client, table schemas from the type mapping, and SQL helpers the workers share.

pub mod client;
mod errors;
mod insert;
mod jobs;
pub mod schema;
pub mod sql;
pub mod staging;
mod tables;

pub use client::BigQuery;
pub use insert::RowError;
pub use jobs::{job_id, run_tag, JobResult, Param, QueryRows};

//! Support for the end-to-end tests (`tests/tests/main.rs`, one binary) and the bench, against the
//! local stack (`scripts/local-stack.sh up`).
//!
//! Each test gets its own Postgres database, BigQuery dataset suffix, lake bucket and scratch
//! directory, named by a random id and dropped when the test ends (`env`). A missing stack
//! fails the test (never a skip).
//!
//! - `env`: `Stack` (the stack's endpoints) and `TestEnv` (one test's world, its pipeline and
//!   its queries);
//! - `workers`: the worker binaries, log-ingest started as a service;
//! - fixtures: `marts` (landed orders, the daily mart, a marts directory), `ledger` (ledger rows
//!   as the workers record them), `cdc` (the cdc-sync steps), `limited` (a login role with only
//!   the rights a test grants), `tokens` (signed push tokens);
//! - stand-ins for what is not on the stack: `proxy` (HTTP and TCP proxies that record, answer
//!   or freeze), `faults` (an outage of BigQuery), `cloud_run` (Cloud Run's front end),
//!   `gcs_bridge` (GCS writes to fake-gcs-server), `pg_tls` (a TLS-only Postgres), `webhooks`
//!   (Slack and Teams).

pub mod cdc;
pub mod cloud_run;
pub mod env;
pub mod faults;
pub mod gcs_bridge;
pub mod ledger;
pub mod limited;
pub mod marts;
pub mod pg_tls;
pub mod proxy;
pub mod tokens;
pub mod webhooks;
pub mod workers;

pub use env::{cleanup, write_flushed, Stack, TestEnv};
pub use gcs_bridge::fake_gcs_lake;
pub use workers::{binary, peak_rss_kib_of, spawn_log_ingest, spawn_log_ingest_with};

/// A date written `YYYY-MM-DD` (tests write many).
pub fn d(s: &str) -> chrono::NaiveDate {
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("a YYYY-MM-DD date")
}

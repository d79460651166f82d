//! The sluice library: what every worker shares, each decision in one place.
//!
//! - `config`: pipeline.yaml (`source`, `events`, `target`, `validate`); `catalog`: where the
//!   pipeline lands each table; `inventory`: every table and scheduled unit the pipeline
//!   declares, walked once (what marts may read, the monitor expects, Terraform deploys);
//!   `ops`: sluice's own tables; `ledger`: run ids, ledger rows, the one policy for a failed
//!   ledger write, freshness queries.
//! - `cli`: the shared command line and a worker's `main`; `progress`; `telemetry` (logs).
//! - `bigquery`: REST client (`client`, `tables`, `jobs`, `insert`, `errors`), typed schemas and
//!   their evolution (`schema`), `staging`, shared SQL (`sql`).
//! - `lake`: paths, the Parquet writer, manifests. `postgres`: bounded connections, binary
//!   COPY and pgoutput decoding, the snapshot → Parquet loop (`to_lake`). `types`: the
//!   Postgres → BigQuery type mapping.
//! - `marts` (feature `marts`): the mart model; `deployment` (same feature): what Terraform
//!   deploys per target, derived from the pipeline and its marts.
//! - `error` (transient / permanent / unanswered), `retry` (named policies), `time`,
//!   `schedule`, `http`, `secret` and `secret_manager`.

pub mod auth;
pub mod bigquery;
pub mod catalog;
pub mod cli;
pub mod config;
#[cfg(feature = "marts")]
pub mod deployment;
pub mod error;
pub mod google;
pub mod http;
pub mod inventory;
pub mod lake;
pub mod ledger;
#[cfg(feature = "marts")]
pub mod marts;
pub mod ops;
pub mod postgres;
pub mod progress;
pub mod retry;
pub mod schedule;
pub mod secret;
pub mod secret_manager;
pub mod telemetry;
pub mod time;
pub mod types;

pub use error::{Error, ErrorKind, Result};

/// Installs rustls's ring provider once; reqwest is built without a default one.
pub fn install_crypto() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

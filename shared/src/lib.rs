//! The sluice library: what every worker shares — configuration, BigQuery, the lake, Postgres
//! helpers, the Postgres → BigQuery type mapping, classified retries and the run ledger.

pub mod bigquery;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod error;
pub mod http;
pub mod lake;
pub mod ledger;
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

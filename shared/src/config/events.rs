//! `events:`: what log-ingest does with the app's events.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::meta::{table_meta, TableMeta};

table_meta! {
    /// What log-ingest does with the app's events; its `owner` and `freshness` (the age of the
    /// newest event) are those of every event table (`types` overrides them).
    #[derive(Debug, Clone, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct EventsConfig {
        /// BigQuery dataset of the event tables (before the target's suffix).
        #[serde(default = "default_events_dataset")]
        pub dataset: String,
        /// Directory of the JSON Schemas, `<type>.json` each, relative to pipeline.yaml.
        #[serde(default = "default_events_schemas")]
        pub schemas: PathBuf,
        /// Message attribute that names the event type.
        #[serde(default = "default_type_attribute")]
        pub type_attribute: String,
        /// Top-level JSON field that names the type when the attribute is absent.
        #[serde(default)]
        pub type_field: Option<String>,
        /// Largest event payload (decoded message data) accepted; larger ones are dead-lettered.
        #[serde(default = "default_max_payload_bytes")]
        pub max_payload_bytes: usize,
        /// Group commit: a batch is written when it holds this many rows, this many bytes, or
        /// its first row has waited this long.
        #[serde(default)]
        pub batch: EventBatch,
        /// Seconds of counts per run-ledger row.
        #[serde(default = "default_ledger_window_s")]
        pub ledger_window_s: u64,
        /// Who may push: the OIDC token Pub/Sub signs for the push subscription.
        #[serde(default)]
        pub push: Option<PushAuth>,
        /// Pub/Sub subscription names, for Terraform and `log-ingest pull`.
        #[serde(default)]
        pub subscription: Option<String>,
        /// The Pub/Sub topic the app publishes events to (default `<pipeline name>-events`);
        /// Terraform creates it.
        #[serde(default)]
        pub topic: Option<String>,
        meta_defaults;
        /// `owner`, `description` and `freshness` by event type (the description defaults to the
        /// schema's `description`).
        #[serde(default)]
        pub types: BTreeMap<String, TableMeta>,
    }
}

/// Group-commit limits of log-ingest.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventBatch {
    #[serde(default = "default_batch_rows")]
    pub max_rows: usize,
    #[serde(default = "default_batch_bytes")]
    pub max_bytes: usize,
    #[serde(default = "default_batch_wait_ms")]
    pub max_wait_ms: u64,
}

impl Default for EventBatch {
    fn default() -> Self {
        EventBatch {
            max_rows: default_batch_rows(),
            max_bytes: default_batch_bytes(),
            max_wait_ms: default_batch_wait_ms(),
        }
    }
}

/// The push subscription's OIDC token: audience and signer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushAuth {
    /// The `aud` claim the push subscription is configured with (usually the service URL).
    pub audience: String,
    /// The service account whose token Pub/Sub attaches (`email` claim).
    pub service_account: String,
    /// Where the signing keys are: a JWKS URL (default Google's) or a file path.
    #[serde(default = "default_jwks")]
    pub jwks: String,
}

fn default_events_dataset() -> String {
    "events".into()
}
fn default_events_schemas() -> PathBuf {
    PathBuf::from("schemas/events")
}
fn default_type_attribute() -> String {
    "event_type".into()
}
fn default_max_payload_bytes() -> usize {
    1024 * 1024
}
fn default_batch_rows() -> usize {
    500
}
fn default_batch_bytes() -> usize {
    5 * 1024 * 1024
}
fn default_batch_wait_ms() -> u64 {
    25
}
fn default_ledger_window_s() -> u64 {
    60
}
fn default_jwks() -> String {
    "https://www.googleapis.com/oauth2/v3/certs".into()
}

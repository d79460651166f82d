//! log-ingest: land Pub/Sub events in BigQuery, validated against JSON Schemas, with a
//! dead-letter table.
//!
//! Start-up ([`Ingest::open`]) reads `schemas/events/*.json`, creates or widens each event
//! table, `ops.dead_letter` and the dedup views. Then either [`serve`] takes push requests or
//! [`pull()`] reads a subscription; both route every message ([`Router`]) and hand it to the
//! group-commit writer, and ack only what the writer reports committed.
//!
//! Where things live:
//! - `ingest` is the run's context (`Ingest`): it opens the event tables, dead-letter table
//!   and views, starts the writer and runs the ledger windows.
//! - `schema` loads and validates event schemas, `columns` maps them to BigQuery columns and
//!   evolves tables; `event` reads envelopes, routes and dead-letters; `row` writes a valid
//!   event's insertAll row, typed and meta columns, with the byte writer in `json`.
//! - `writer` is the group commit; `service` the push endpoint (`serve`), `pull` the
//!   subscriber, `replay` the dead-letter replay, `auth` the push-token check; `lambda` (feature
//!   `lambda`) serves the push endpoint under AWS Lambda.
//!
//! The face below is what `main` and the tests use.

mod auth;
mod columns;
mod event;
mod ingest;
mod json;
#[cfg(feature = "lambda")]
pub mod lambda;
mod pull;
mod replay;
mod row;
mod schema;
mod service;
mod writer;

pub use auth::{Platform, Verifier};
pub use event::{Incoming, Reason, Routed, Router, Via};
pub use ingest::{dedup_view_sql, events_config, load_router, stop_signal, Ingest, Running};
pub use pull::{run as pull, subscription_name, PullOptions, PullReport};
pub use replay::{
    parse_since, run as replay, ReplayFilter, ReplayReport, OPEN_VIEW, REPLAYS_TABLE,
};
pub use service::{push_app, serve, ServeReport};

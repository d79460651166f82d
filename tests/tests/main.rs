//! The end-to-end tests of sluice: one test binary against the local stack
//! (`scripts/local-stack.sh up`; `make test` starts it and builds the worker binaries first).
//!
//! A folder per worker and one for what they share, a file per feature inside; the support
//! code (the test environment, fixtures, stand-ins for Google) is the crate's library,
//! `tests/support/` (`sluice_tests`):
//!
//! ```text
//! tests/tests/
//!   main.rs          this file
//!   pg_copy/         types, incremental, backfill, from_lake, parallel, failures
//!   cdc_sync/        stream, schema_changes, crashes, errors, continuity, wal, verify,
//!                    verify_types, rights
//!   log_ingest/      push, tokens, lambda, shutdown, schemas, replay, pubsub
//!   mart_build/      materialized, checks, order, inputs, cli
//!   monitor/         alerts, schedules, checks, views, page, doctor, doctor_cloud
//!   shared/          cli (every worker's --target), credentials, silent_endpoints,
//!                    postgres_tls, lake
//! ```
//!
//! Each folder's `mod.rs` holds the helpers its files share. Every test gets its own database,
//! datasets, bucket and scratch directory (`sluice_tests::TestEnv`); nextest runs each test in
//! a process of its own. One test: `cargo nextest run -p sluice-tests <name>`.

mod cdc_sync;
mod log_ingest;
mod mart_build;
mod monitor;
mod pg_copy;
mod shared;

//! mart-build: SQL marts in dependency order with data-quality gates.
//!
//! The mart model (header, checks, mart, DAG, render, params, fixtures, timing) is the shared
//! library's `sluice::marts`, which the monitor and the deployment read too; this crate is the
//! worker that builds marts.
//!
//! Where things live:
//! - `run` builds marts for logical dates: `run/build` (stage, swap), `run/gate` (the checks),
//!   `run/freshness` (the wait for inputs), `run/record` (ledger and `ops.dq_results`),
//!   `run/result` (what a run reports).
//! - `sql` holds every statement mart-build writes, as pure functions.
//!
//! The face below is what `main` and the tests use.

mod run;
mod sql;

pub use run::{run, CheckKind, CheckResult, MartResult, Options, Outcome, Summary};

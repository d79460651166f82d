//! pg-copy: Postgres tables → Parquet in the lake → BigQuery, full, incremental or backfill.
//!
//! Each unit of work (a table for a logical date) is extracted into
//! `raw/<source>/<table>/dt=<ds>/` with a manifest, loaded into a staging table, swapped into
//! its target, and recorded in the run ledger. Reruns replace, never append.
//!
//! Where things live:
//! - `plan` turns tables and dates into units, each placed once in the target (`UnitPlan`:
//!   its date, lake partition and dataset).
//! - `ctx` holds a run's `Options` and the context its units share (BigQuery, the lake, the
//!   ledger); `run` copies the units a few at a time and records each in the ledger.
//! - `extract` reads a unit into Parquet and its manifest (on `sluice::postgres::to_lake`);
//!   `load` stages the files and swaps them into the target (on `sluice::bigquery::staging`);
//!   `verify` counts the unit's rows in Postgres again.
//!
//! The face below is what `main` and the tests use.

mod ctx;
mod extract;
mod load;
mod plan;
mod run;
mod verify;

pub use ctx::Options;
pub use extract::{extract, Counters, ExtractOptions};
pub use plan::{Dates, Unit, UnitPlan};
pub use run::{run, Summary, UnitOutcome};

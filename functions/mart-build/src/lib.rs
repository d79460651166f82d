//! mart-build: SQL marts in dependency order with data-quality gates.
//!
//! Where things live:
//! - `header` is a mart's YAML header as written; `checks` resolves its checks
//!   (`fail_conditions`, `dq_metrics`) into `Check`s; `mart` reads one
//!   `marts/<dataset>/<name>.sql` (header, SQL, references) into a `Mart`.
//! - `dag` checks all marts together (references against what the pipeline lands, from
//!   `sluice::catalog`; cycles) before anything runs; `render` places table names for a target.
//! - `run` builds marts for logical dates: `run/build` (stage, swap), `run/gate` (the checks),
//!   `run/freshness` (the wait for inputs), `run/record` (ledger and `ops.dq_results`),
//!   `run/result` (what a run reports). `params` holds the `@ds` parameters; `sql` every
//!   statement mart-build writes, as pure functions.
//! - `fixtures` runs a mart's unit tests on given rows; `timing` says when each mart runs
//!   (after what it reads); `export` writes the scheduled-query configs Terraform reads, and
//!   `deployment` everything Terraform deploys.
//!
//! The face below is what `main` and the tests use.

mod checks;
mod dag;
mod deployment;
mod export;
mod fixtures;
mod header;
mod mart;
mod params;
mod render;
mod run;
mod sql;
pub mod timing;

pub use dag::{load_dir, producer, Dag, Landed, Producer};
pub use deployment::deployment;
pub use export::scheduled_queries;
pub use fixtures::{fixture_file, run as run_fixtures, CaseResult};
pub use header::{Materialized, Runner};
pub use mart::{Mart, TableName};
pub use render::placed_query;
pub use render::Placement;
pub use run::{run, CheckKind, CheckResult, MartResult, Options, Outcome, Summary};
pub use timing::{schedules, Schedules, Timing};

//! The mart model: what a `marts/<dataset>/<name>.sql` file declares and how the marts fit
//! together, shared by mart-build (which builds them), the monitor (which watches them) and the
//! deployment (which schedules them). Behind the cargo feature `marts`, so the SQL parser stays
//! out of the workers that never read a mart.
//!
//! Where things live:
//! - `header` is a mart's YAML header as written; `checks` resolves its checks
//!   (`fail_conditions`, `dq_metrics`) into `Check`s; `mart` reads one file (header, SQL,
//!   references) into a `Mart`.
//! - `dag` checks all marts together (references against what the pipeline lands, from
//!   `crate::catalog`; cycles) before anything runs; `render` places table names for a target;
//!   `params` holds the `@ds` parameters.
//! - `timing` says when each mart runs (after what it reads); `fixtures` runs a mart's unit
//!   tests on given rows.

pub(crate) mod checks;
pub(crate) mod dag;
pub(crate) mod fixtures;
pub(crate) mod header;
pub(crate) mod mart;
pub(crate) mod params;
pub(crate) mod render;
pub(crate) mod timing;

pub use checks::{Check, Rule};
pub use dag::{load_dir, producer, Dag, Landed, Producer};
pub use fixtures::{fixture_file, run as run_fixtures, CaseResult};
pub use header::{Materialized, Runner};
pub use mart::{Mart, TableName};
pub use params::{date_params, mart_params};
pub use render::{placed_query, rewrite, Placement};
pub use timing::{schedules, Schedules, Timing, MARGIN_MINUTES};

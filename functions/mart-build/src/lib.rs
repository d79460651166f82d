//! mart-build: SQL marts in dependency order with data-quality gates.
//!
//! `mart` reads one `marts/<dataset>/<name>.sql` (header, SQL, checks); `dag` checks all of
//! them together (references, cycles) before anything runs; `render` places table names for
//! a target; `run` builds marts for logical dates, gated by their checks.

pub mod checks;
pub mod dag;
pub mod export;
pub mod fixtures;
pub mod mart;
pub mod render;
pub mod run;
pub mod sql;

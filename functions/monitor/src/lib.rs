//! monitor: what ran, what failed, how fresh each table is, who uses it and what it costs.
//!
//! Where things live:
//! - `context`: the `Monitor` a command runs with (pipeline, target, marts, declaration, the
//!   run's BigQuery client), where the ops tables, the lake and the status page are.
//! - `declared`: every table and scheduled unit pipeline.yaml and `marts/` declare, with owner,
//!   description, schedule and freshness SLA.
//! - `check`: one check, reading the ops tables once and writing its own ledger row;
//!   `findings/`: what is wrong, one file per kind (failed and missed runs, staleness, DQ,
//!   dead-letter rate, CDC lag and WAL, counts that do not add up), `findings/observed` the
//!   reading of the ops tables.
//! - `alerts`: incident state in `ops.alerts` (dedup, repeats, recoveries, quiet periods);
//!   `delivery`: the channels, an alert's message and its sends; `message` renders one model as
//!   Slack Block Kit and a Teams Adaptive Card; `webhook` posts.
//! - `page/`: the status page (its data, then the HTML section by section).
//! - `doctor/`: what a deployment still lacks, one line per need (`monitor doctor`).
//! - `digest`: the daily message; `views`: the SQL views for the console and Looker Studio
//!   (`shared/views/ops/*.sql`, each with its unit tests), made and tested by `ops_views`; `looker`:
//!   the Linking API URL.
//!
//! The face below is what `main` and the tests use.

mod alerts;
mod check;
mod context;
mod declared;
mod delivery;
mod digest;
mod doctor;
mod findings;
mod looker;
mod message;
mod ops_views;
mod page;
mod views;
mod webhook;

pub use alerts::{Delivery, Event, Outcome, Send};
pub use check::{check, preview, CheckSummary, StepReport};
pub use context::{marts_dir, Monitor, PAGE_PATH};
pub use digest::{digest, send as send_digest, Day as DigestDay};
pub use doctor::{
    doctor, Check as DoctorCheck, Mark, Options as DoctorOptions, Report as DoctorReport,
};
pub use findings::Finding;
pub use looker::for_target as looker_url;
pub use message::Message;
pub use ops_views::{make_views, test_views, ViewTests};
pub use page::{refresh as write_page, SECTION_IDS};
pub use views::Made;

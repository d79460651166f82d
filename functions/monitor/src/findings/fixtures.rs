//! What the findings' tests share: a pipeline with one source (two tables, one replicated),
//! instants, and ledger rows.

use chrono::{DateTime, Utc};
use sluice::config::Pipeline;
use sluice::ledger::Worker;
use sluice::marts::Dag;

use super::observed::{LastRun, UnitTimes};
use crate::declared::Declared;

/// An RFC 3339 instant.
pub fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

/// Source `shop` owned by ana: `orders` (warn after 26 h, error after 50 h) and `users` (no
/// SLA) copied daily, `orders` replicated (warn after 30 min, WAL warning at 10 MiB).
pub fn setup() -> (Pipeline, Declared) {
    let p = Pipeline::parse(
        "name: t\nbigquery: { project: p }\nlake: { bucket: b }\n\
         owners: {ana: {slack: U1}}\n\
         sources:\n  shop:\n    dsn: { env: X }\n    owner: ana\n    tables:\n      orders: { mode: full, freshness: {warn_after: 26h, error_after: 50h} }\n      users: { mode: full }\n\
         \x20   cdc: { tables: [orders], retained_wal_warn_mib: 10, freshness: {warn_after: 30m} }\n",
        "t",
    )
    .unwrap();
    let dir = std::env::temp_dir();
    let dag = Dag::build(vec![], &sluice::marts::Landed::of(&p, &dir)).unwrap();
    let d = Declared::of(&p, &dir, &dag);
    (p, d)
}

/// When `worker source.table` last started and (`ok`) last succeeded.
pub fn unit(
    worker: Worker,
    source: &str,
    table: Option<&str>,
    started: &str,
    ok: Option<&str>,
) -> UnitTimes {
    UnitTimes {
        worker,
        source: Some(source.into()),
        table: table.map(str::to_string),
        last_started: Some(t(started)),
        last_success: ok.map(t),
    }
}

/// A successful row of `worker` that counted nothing.
pub fn run(worker: Worker) -> LastRun {
    LastRun {
        run_id: String::new(),
        worker,
        source: None,
        table: None,
        logical_date: None,
        started_at: None,
        status: "success".into(),
        error: None,
        rows_in: 0,
        rows_loaded: 0,
        rows_dead_lettered: 0,
        details: serde_json::Value::Null,
    }
}

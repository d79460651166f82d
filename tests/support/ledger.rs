//! Run-ledger rows as the workers record them, for tests that seed `ops.runs` instead of
//! running the worker (write one with `env.ledger().await.record(&row)`).

use serde_json::json;
use sluice::ledger::{RunRecord, Status, Worker};

use crate::d;

/// A pg-copy run of `src.<table>` for `ds` on the `local` target: started at `started`
/// (RFC 3339), 40 s long; 3 rows read and loaded when it succeeded, none otherwise.
pub fn pg_copy_run(
    run_id: &str,
    table: &str,
    ds: &str,
    started: &str,
    status: Status,
    error: Option<&str>,
) -> RunRecord {
    let started = chrono::DateTime::parse_from_rfc3339(started)
        .unwrap_or_else(|e| panic!("{started}: {e}"))
        .to_utc();
    let rows = if status == Status::Success { 3 } else { 0 };
    RunRecord {
        run_id: run_id.into(),
        worker: Worker::PgCopy,
        target: "local".into(),
        source: Some("src".into()),
        table_name: Some(table.into()),
        logical_date: Some(d(ds)),
        lsn_range: None,
        started_at: started,
        finished_at: started + chrono::Duration::seconds(40),
        status,
        rows_in: rows,
        rows_loaded: rows,
        rows_dead_lettered: 0,
        bytes: 0,
        error: error.map(str::to_string),
        details: json!({}),
    }
}

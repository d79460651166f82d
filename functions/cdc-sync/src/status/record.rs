//! The ledger rows of `cdc-sync status`: one per table, so the monitor sees a replica that
//! differs until a later check finds it equal or a resync replaces it.

use serde_json::json;
use sluice::catalog;
use sluice::ledger::{RunRecord, Status};
use sluice::Result;

use super::report::{SourceStatus, Verdict};
use crate::source::SourceCtx;

/// The ledger rows of a source's check, one per table under its replica's name (the unit a
/// snapshot of it writes too): failed, naming the keys, when the replica differs, so the
/// monitor alerts the owner until a later check finds it equal or a resync replaces it;
/// skipped when it could not be compared (changes pending, slot busy, no key, no replica).
pub(super) async fn ledger_rows(
    ctx: &SourceCtx<'_>,
    s: &SourceStatus,
    started: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    for t in &s.tables {
        let found = match &t.verdict {
            Verdict::Differs(f) => Some(f),
            _ => None,
        };
        let details = json!({
            "kind": "verify",
            "slot": ctx.slot,
            "position": s.position.to_string(),
            "confirmed_flush": s.health.confirmed_flush.to_string(),
            "rechecked": s.rechecked,
            "verdict": t.verdict.name(),
            "differing": found.map(|f| f.differing),
            "exact": found.map(|f| f.exact),
            "first_keys": found.map(|f| f.first.iter().map(|(k, d)| json!({"key": k, "difference": d})).collect::<Vec<_>>()),
            "buckets": found.map(|f| &f.buckets),
            "pending_changes": match t.verdict { Verdict::Pending(n) => n, _ => None },
            "postgres_rows": t.postgres_rows,
            "replica_rows": t.replica_rows,
            "queries": t.queries,
            "seconds": (t.seconds * 1000.0).round() / 1000.0,
        });
        let (status, error) = match &t.verdict {
            Verdict::Equal => (Status::Success, None),
            v if v.is_difference() => (
                Status::Failed,
                Some(match found {
                    Some(f) => format!(
                        "the replica of {} differs from Postgres: {}{} key{}, first {}; run `cdc-sync resync --table {}`",
                        t.table,
                        if f.exact { "" } else { "at least " },
                        f.differing,
                        if f.differing == 1 { "" } else { "s" },
                        f.first
                            .iter()
                            .take(3)
                            .map(|(k, d)| format!("{k} ({})", d.describe()))
                            .collect::<Vec<_>>()
                            .join(", "),
                        t.table
                    ),
                    None => format!(
                        "the replica table of {} is gone; run `cdc-sync resync --table {}`",
                        t.table, t.table
                    ),
                }),
            ),
            v => (
                Status::Skipped,
                Some(format!(
                    "not compared: {}",
                    match v {
                        Verdict::Pending(_) => "changes committed in Postgres are not merged yet",
                        Verdict::NoKey => "no primary key (the replica is an append-only history)",
                        Verdict::SlotBusy => "the slot was in use by another session throughout",
                        _ => "no replica yet",
                    }
                )),
            ),
        };
        let (schema, table) = sluice::config::qualify(&t.table);
        ctx.record(RunRecord {
            status,
            error,
            table_name: Some(catalog::replica_table(&schema, &table)),
            ..ctx.ledger_row(started, details)
        })
        .await?;
    }
    Ok(())
}

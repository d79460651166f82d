//! `log-ingest replay`: dead letters checked again against today's schemas; those that pass
//! go to their tables and are recorded in `ops.dead_letter_replays`.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use serde_json::{json, Value};
use sluice::bigquery::sql::table_ref;
use sluice::bigquery::Param;
use sluice::progress::Progress;
use sluice::{Error, Result};

use crate::event::{Incoming, Reason, Routed, Via};
use crate::ingest::Ingest;
use crate::writer::Outcome;

/// Table of replayed dead letters.
pub const REPLAYS_TABLE: &str = sluice::ops::DEAD_LETTER_REPLAYS.name;
/// View of dead letters not replayed yet.
pub const OPEN_VIEW: &str = sluice::ops::DEAD_LETTER_OPEN;

/// Which dead letters to try again.
#[derive(Debug, Clone, Default)]
pub struct ReplayFilter {
    /// Only this reason code.
    pub reason: Option<Reason>,
    /// Only dead letters received at or after this time (RFC 3339).
    pub since: Option<String>,
    /// Check, but write nothing.
    pub dry_run: bool,
}

/// What a replay did.
#[derive(Debug, Clone, Default)]
pub struct ReplayReport {
    pub considered: u64,
    /// Stored in their tables now, by table.
    pub replayed: BTreeMap<String, u64>,
    /// Still failing, by reason code.
    pub still_failing: BTreeMap<&'static str, u64>,
    /// Payloads cut at the size limit when dead-lettered: they cannot be replayed.
    pub truncated: u64,
    /// Passed validation but not committed (transient error); run replay again.
    pub not_committed: u64,
}

/// `--since`: RFC 3339, or a date (midnight UTC).
pub fn parse_since(s: &str) -> Result<String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&chrono::Utc).to_rfc3339());
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(format!("{d}T00:00:00+00:00"));
    }
    Err(Error::config(format!(
        "--since `{s}` is neither an RFC 3339 time nor a date (YYYY-MM-DD)"
    )))
}

/// Replays the open dead letters that match `filter`.
pub async fn run(ingest: Arc<Ingest>, filter: &ReplayFilter) -> Result<ReplayReport> {
    let open = table_ref(ingest.bq.project(), &ingest.ops_dataset, OPEN_VIEW);
    let mut sql = format!(
        "SELECT message_id, subscription, event_type, reason_code, TO_BASE64(payload) AS payload,\n\
         payload_size, TO_JSON_STRING(attributes) AS attributes,\n\
         FORMAT_TIMESTAMP('%Y-%m-%dT%H:%M:%E6SZ', publish_time) AS publish_time, delivery_attempt\n\
         FROM {open} WHERE TRUE"
    );
    let mut params = vec![];
    if let Some(r) = filter.reason {
        sql.push_str(" AND reason_code = @reason");
        params.push(Param::scalar("reason", "STRING", r.code()));
    }
    if let Some(since) = &filter.since {
        sql.push_str(" AND received_at >= @since");
        params.push(Param::scalar("since", "TIMESTAMP", since.clone()));
    }
    sql.push_str(" ORDER BY received_at");
    let rows = ingest.bq.query(&sql, &params).await?;
    let mut report = ReplayReport::default();
    let mut passing = vec![];
    for i in 0..rows.rows.len() {
        report.considered += 1;
        let get = |c: &str| rows.get(i, c).map(str::to_string);
        let message_id = get("message_id").unwrap_or_default();
        let data = base64::engine::general_purpose::STANDARD
            .decode(get("payload").unwrap_or_default())
            .map_err(|e| {
                Error::config(format!(
                    "dead letter {message_id}: stored payload is not base64: {e}"
                ))
            })?;
        let size: usize = get("payload_size")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if size > data.len() {
            report.truncated += 1;
            continue;
        }
        let attributes: BTreeMap<String, String> = get("attributes")
            .and_then(|a| serde_json::from_str(&a).ok())
            .unwrap_or_default();
        let msg = Incoming {
            message_id,
            subscription: get("subscription"),
            data: Bytes::from(data),
            attributes,
            publish_time: get("publish_time"),
            delivery_attempt: get("delivery_attempt").and_then(|s| s.parse().ok()),
            via: Via::Replay,
            bad_base64: None,
        };
        let old_reason = get("reason_code").unwrap_or_default();
        match ingest.route(msg) {
            Routed::Dead(d) => *report.still_failing.entry(d.reason.code()).or_default() += 1,
            Routed::Row(r) => passing.push((old_reason, r)),
        }
    }
    if filter.dry_run || passing.is_empty() {
        for (_, r) in passing {
            *report.replayed.entry(r.table).or_default() += 1;
        }
        return Ok(report);
    }
    let running = ingest.start(Via::Replay).await?;
    let run_id = sluice::ledger::new_run_id();
    let mut stored = vec![];
    let terminal = sluice::progress::stderr_is_terminal();
    let chunks = passing.len().div_ceil(1000) as u64;
    let progress = Progress::start("replaying", Some(chunks), terminal, String::new);
    for chunk in passing.chunks(1000) {
        let outcomes = futures::future::join_all(
            chunk
                .iter()
                .map(|(_, r)| running.writer.submit(Routed::Row(r.clone()))),
        )
        .await;
        for ((old_reason, r), outcome) in chunk.iter().zip(outcomes) {
            match outcome {
                Ok(Outcome::Loaded) => {
                    *report.replayed.entry(r.table.clone()).or_default() += 1;
                    stored.push((old_reason.clone(), r));
                }
                Ok(Outcome::DeadLettered(reason)) => {
                    *report.still_failing.entry(reason.code()).or_default() += 1
                }
                Err(e) => {
                    tracing::warn!(
                        message_id = r.insert_id,
                        error = e.message,
                        "replayed event not committed"
                    );
                    report.not_committed += 1;
                }
            }
        }
        progress.step(None);
    }
    progress.finish();
    running.finish().await;
    let now = chrono::Utc::now().to_rfc3339();
    let marks: Vec<(String, Value)> = stored
        .iter()
        .map(|(reason, r)| {
            (
                format!("{}:{reason}", r.insert_id),
                json!({
                    "message_id": r.insert_id,
                    "reason_code": reason,
                    "event_type": r.event_type,
                    "table_name": r.table,
                    "replayed_at": now,
                    "run_id": run_id,
                }),
            )
        })
        .collect();
    for chunk in marks.chunks(500) {
        ingest
            .bq
            .insert_all(&ingest.ops_dataset, REPLAYS_TABLE, chunk)
            .await?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_times_and_dates() {
        assert_eq!(
            parse_since("2026-11-23").unwrap(),
            "2026-11-23T00:00:00+00:00"
        );
        assert_eq!(
            parse_since("2026-11-23T12:00:00+01:00").unwrap(),
            "2026-11-23T11:00:00+00:00"
        );
        assert!(parse_since("yesterday").is_err());
    }
}

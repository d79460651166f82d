//! Alert state in `ops.alerts`: one message per incident however often `check` runs, a
//! repeat after `alerts.repeat_after`, a recovery notice when it clears, warnings held in
//! quiet periods. Rows are appended (never updated: streamed rows cannot be), and the
//! newest row of an incident is its state (`read_state`). `plan` decides from the state and
//! the findings alone (pure, tested in `alerts/tests.rs`); `check` sends and records what it
//! decided, and `row` is what it records.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde_json::{json, Value};
use sluice::bigquery::{BigQuery, Param};
use sluice::config::{clock_minutes, weekday, AlertsConfig, Severity};
use sluice::Result;

use crate::findings::{self, Finding};

/// The newest row of an incident.
#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    pub key: String,
    pub kind: String,
    pub severity: Severity,
    /// open, resolving, resolved.
    pub status: String,
    pub title: String,
    pub worker: Option<String>,
    pub subject: Option<String>,
    pub owner: Option<String>,
    pub run_id: Option<String>,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub last_sent_at: Option<DateTime<Utc>>,
    pub sent_to: Value,
    pub delivery_failures: i64,
    pub finding: Value,
}

impl Incident {
    /// The incident as its `ops.alerts` row (`row`) records it: what reading the row back
    /// would give.
    pub fn from_row(r: &Value) -> Incident {
        let text = |c: &str| r[c].as_str().map(str::to_string);
        let at = |c: &str| findings::ts(r[c].as_str());
        let json = |c: &str| findings::json_cell(r[c].as_str());
        let now = at("recorded_at").unwrap_or_default();
        Incident {
            key: text("incident_key").unwrap_or_default(),
            kind: text("kind").unwrap_or_default(),
            severity: r["severity"]
                .as_str()
                .and_then(Severity::parse)
                .unwrap_or(Severity::Warn),
            status: text("status").unwrap_or_default(),
            title: text("title").unwrap_or_default(),
            worker: text("worker"),
            subject: text("subject"),
            owner: text("owner"),
            run_id: text("run_id"),
            first_seen: at("first_seen").unwrap_or(now),
            last_seen: at("last_seen").unwrap_or(now),
            last_sent_at: at("last_sent_at"),
            sent_to: json("sent_to"),
            delivery_failures: r["delivery_failures"].as_i64().unwrap_or(0),
            finding: json("finding"),
        }
    }
}

/// The newest row of every incident in `alerts` (a quoted table) as of `now`.
pub async fn read_state(
    bq: &BigQuery,
    alerts: &str,
    now: DateTime<Utc>,
) -> Result<BTreeMap<String, Incident>> {
    let since = Param::scalar(
        "since",
        "TIMESTAMP",
        sluice::time::bigquery_timestamp(now - chrono::Duration::days(findings::HISTORY_DAYS)),
    );
    let q = bq
        .query(
            &state_sql(alerts),
            &[
                since,
                Param::scalar("now", "TIMESTAMP", sluice::time::bigquery_timestamp(now)),
            ],
        )
        .await?;
    let (ts, json) = (findings::ts, findings::json_cell);
    let list = findings::rows(&q, |g| Incident {
        key: g("incident_key").unwrap_or_default().into(),
        kind: g("kind").unwrap_or_default().into(),
        severity: g("severity")
            .and_then(Severity::parse)
            .unwrap_or(Severity::Warn),
        status: g("status").unwrap_or_default().into(),
        title: g("title").unwrap_or_default().into(),
        worker: g("worker").map(str::to_string),
        subject: g("subject").map(str::to_string),
        owner: g("owner").map(str::to_string),
        run_id: g("run_id").map(str::to_string),
        first_seen: ts(g("first_seen")).unwrap_or(now),
        last_seen: ts(g("last_seen")).unwrap_or(now),
        last_sent_at: ts(g("last_sent_at")),
        sent_to: json(g("sent_to")),
        delivery_failures: g("delivery_failures")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        finding: json(g("finding")),
    });
    Ok(list.into_iter().map(|i| (i.key.clone(), i)).collect())
}

/// What a check did about an incident, as `ops.alerts.event` records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Found for the first time (or again after it was resolved).
    Opened,
    /// Still open, and sent again after `alerts.repeat_after`.
    Repeated,
    /// Still open; nothing to send.
    Seen,
    /// Gone.
    Resolved,
    /// A message waits for the end of a quiet period.
    Held,
    /// Open, but its first message did not reach every channel: sent again to those missed.
    Retry,
}

impl Event {
    /// As `ops.alerts.event` records it and `monitor check` prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Opened => "opened",
            Event::Repeated => "repeated",
            Event::Seen => "seen",
            Event::Resolved => "resolved",
            Event::Held => "held",
            Event::Retry => "retry",
        }
    }
}

/// Which message a step sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Send {
    Alert,
    Repeat,
    Recovery,
}

impl Send {
    /// As `ops.alerts.sent_to.message` records it.
    pub fn as_str(self) -> &'static str {
        match self {
            Send::Alert => "alert",
            Send::Repeat => "repeat",
            Send::Recovery => "recovery",
        }
    }
}

/// What one check does about one incident.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub key: String,
    pub event: Event,
    /// The status after this step, if the message (when any) is delivered everywhere.
    pub status: &'static str,
    pub send: Option<Send>,
    /// Channels already given this message (a retry skips them).
    pub delivered: BTreeSet<String>,
    /// The finding (None when it cleared).
    pub finding: Option<Finding>,
    pub previous: Option<Incident>,
}

/// Whether a message of `severity` waits at `now` (a quiet period in the digest's time zone).
pub fn held(a: &AlertsConfig, severity: Severity, now: DateTime<Utc>) -> bool {
    let tz: chrono_tz::Tz = a.digest.time_zone.parse().unwrap_or(chrono_tz::UTC);
    let local = now.with_timezone(&tz);
    let minute = local.hour() * 60 + local.minute();
    a.quiet.iter().any(|q| {
        if severity == Severity::Error && !q.errors_too {
            return false;
        }
        let (Some(from), Some(to)) = (clock_minutes(&q.from), clock_minutes(&q.to)) else {
            return false;
        };
        // A period over midnight belongs to the day it starts on.
        let (inside, day) = if from <= to {
            (minute >= from && minute < to, local.weekday())
        } else if minute >= from {
            (true, local.weekday())
        } else {
            (minute < to, local.weekday().pred())
        };
        inside && (q.days.is_empty() || q.days.iter().any(|d| weekday(d) == Some(day)))
    })
}

/// Channels already given the message `send` of an incident whose last send was incomplete.
fn delivered_before(i: &Incident, send: Send) -> BTreeSet<String> {
    let s = &i.sent_to;
    if s["complete"].as_bool() != Some(false) || s["message"].as_str() != Some(send.as_str()) {
        return BTreeSet::new();
    }
    s["channels"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(_, v)| v.as_str() == Some(Outcome::DELIVERED))
                .map(|(k, _)| k.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// What to do about every open incident and every finding.
pub fn plan(
    state: &BTreeMap<String, Incident>,
    findings: &[Finding],
    a: &AlertsConfig,
    now: DateTime<Utc>,
) -> Vec<Step> {
    let repeat = chrono::Duration::from_std(a.repeat_after).unwrap_or_default();
    let mut steps = vec![];
    let found: BTreeSet<&str> = findings.iter().map(|f| f.key.as_str()).collect();
    for f in findings {
        let prev = state.get(&f.key).filter(|i| i.status != "resolved");
        let quiet = held(a, f.severity, now);
        let (event, send) = match prev {
            None => (Event::Opened, Some(Send::Alert)),
            Some(i) if i.last_sent_at.is_none() => (Event::Retry, Some(Send::Alert)),
            Some(i) if i.last_sent_at.is_some_and(|t| now - t >= repeat) => {
                (Event::Repeated, Some(Send::Repeat))
            }
            Some(_) => (Event::Seen, None),
        };
        let (event, send) = match (send, quiet) {
            (Some(Send::Repeat), true) => (Event::Seen, None),
            (Some(_), true) => (Event::Held, None),
            other => (event, other.0),
        };
        steps.push(Step {
            key: f.key.clone(),
            event,
            status: "open",
            send,
            delivered: match (prev, send) {
                (Some(i), Some(s)) => delivered_before(i, s),
                _ => BTreeSet::new(),
            },
            finding: Some(f.clone()),
            previous: state.get(&f.key).cloned(),
        });
    }
    for (key, i) in state {
        if i.status == "resolved" || found.contains(key.as_str()) {
            continue;
        }
        let never_sent = i.last_sent_at.is_none();
        let (event, status, send) = if never_sent {
            (Event::Resolved, "resolved", None)
        } else if held(a, i.severity, now) {
            (Event::Held, "resolving", None)
        } else {
            (Event::Resolved, "resolved", Some(Send::Recovery))
        };
        steps.push(Step {
            key: key.clone(),
            event,
            status,
            send,
            delivered: send.map(|s| delivered_before(i, s)).unwrap_or_default(),
            finding: None,
            previous: Some(i.clone()),
        });
    }
    steps
}

/// The channels of an alert: the first route whose conditions all hold, else the default.
pub fn route(
    a: &AlertsConfig,
    owner: Option<&str>,
    worker: &str,
    severity: Severity,
) -> Vec<String> {
    a.routes
        .iter()
        .find(|r| {
            r.owner
                .as_deref()
                .is_none_or(|o| Some(sluice::config::owner_key(o)) == owner)
                && r.worker.as_deref().is_none_or(|w| w == worker)
                && r.severity.is_none_or(|s| s == severity)
        })
        .map(|r| r.channels.clone())
        .unwrap_or_else(|| a.default.clone())
}

/// What sending a message to one channel did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Why not, after every retry.
    Failed(String),
}

impl Outcome {
    /// How `ops.alerts.sent_to` records a delivered message.
    pub const DELIVERED: &'static str = "delivered";

    /// As recorded and printed: `delivered`, or the error.
    pub fn as_str(&self) -> &str {
        match self {
            Outcome::Delivered => Outcome::DELIVERED,
            Outcome::Failed(e) => e,
        }
    }

    /// The channel took the message.
    pub fn is_delivered(&self) -> bool {
        *self == Outcome::Delivered
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What sending a step's message did, per channel.
pub type Delivery = BTreeMap<String, Outcome>;

/// The `ops.alerts` row of a step after its sends.
pub fn row(step: &Step, delivery: &Delivery, check_run_id: &str, now: DateTime<Utc>) -> Value {
    let ts = sluice::time::bigquery_timestamp;
    let prev = step
        .previous
        .as_ref()
        .filter(|p| p.status != "resolved" || step.finding.is_none());
    let all_delivered = delivery.values().all(Outcome::is_delivered);
    let failures = delivery.values().filter(|v| !v.is_delivered()).count() as i64;
    let mut status = step.status;
    if step.send == Some(Send::Recovery) && !all_delivered {
        status = "resolving";
    }
    let last_sent_at = match step.send {
        Some(_) if all_delivered => Some(now),
        _ => prev.and_then(|p| p.last_sent_at),
    };
    let sent_to = match step.send {
        Some(s) => {
            let mut channels: serde_json::Map<String, Value> = step
                .delivered
                .iter()
                .map(|c| (c.clone(), json!(Outcome::DELIVERED)))
                .collect();
            channels.extend(delivery.iter().map(|(k, v)| (k.clone(), json!(v.as_str()))));
            json!({"message": s.as_str(), "complete": all_delivered, "channels": channels})
        }
        None => prev.map(|p| p.sent_to.clone()).unwrap_or(Value::Null),
    };
    let (kind, severity, title, worker, subject, owner, run_id, finding) =
        match (&step.finding, prev) {
            (Some(f), _) => (
                f.kind.to_string(),
                f.severity,
                f.title.clone(),
                Some(f.worker.as_str().to_string()),
                Some(f.subject.clone()),
                f.owner.clone(),
                f.run_id.clone(),
                finding_json(f),
            ),
            (None, Some(p)) => (
                p.kind.clone(),
                p.severity,
                p.title.clone(),
                p.worker.clone(),
                p.subject.clone(),
                p.owner.clone(),
                p.run_id.clone(),
                p.finding.clone(),
            ),
            (None, None) => (
                String::new(),
                Severity::Warn,
                String::new(),
                None,
                None,
                None,
                None,
                Value::Null,
            ),
        };
    json!({
        "incident_key": step.key,
        "kind": kind,
        "severity": severity.as_str(),
        "status": status,
        "event": step.event.as_str(),
        "title": title,
        "worker": worker,
        "subject": subject,
        "owner": owner,
        "run_id": run_id,
        "first_seen": ts(prev.map(|p| p.first_seen).unwrap_or(now)),
        "last_seen": ts(if step.finding.is_some() { now } else { prev.map(|p| p.last_seen).unwrap_or(now) }),
        "last_sent_at": last_sent_at.map(ts),
        "resolved_at": (status == "resolved").then(|| ts(now)),
        "sent_to": sent_to.to_string(),
        "delivery_failures": prev.map(|p| p.delivery_failures).unwrap_or(0) + failures,
        "finding": finding.to_string(),
        "check_run_id": check_run_id,
        "recorded_at": ts(now),
    })
}

/// A finding as JSON (kept with its incident, shown on the status page).
pub fn finding_json(f: &Finding) -> Value {
    json!({
        "kind": f.kind,
        "severity": f.severity.as_str(),
        "worker": f.worker.as_str(),
        "subject": f.subject,
        "owner": f.owner,
        "title": f.title,
        "error": f.error,
        "logical_date": f.logical_date,
        "run_id": f.run_id,
        "facts": f.facts.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
    })
}

/// The newest row of every incident recorded since `since`.
pub fn state_sql(alerts: &str) -> String {
    format!(
        "SELECT incident_key, kind, severity, status, title, worker, subject, owner, run_id, first_seen, last_seen, last_sent_at, TO_JSON_STRING(sent_to) AS sent_to, delivery_failures, TO_JSON_STRING(finding) AS finding\n\
         FROM {alerts} WHERE recorded_at >= @since AND recorded_at <= @now\n\
         QUALIFY ROW_NUMBER() OVER (PARTITION BY incident_key ORDER BY recorded_at DESC) = 1"
    )
}

#[cfg(test)]
mod tests;

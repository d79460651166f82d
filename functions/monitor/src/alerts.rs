//! Alert state in `ops.alerts`: one message per incident however often `check` runs, a
//! repeat after `alerts.repeat_after`, a recovery notice when it clears, warnings held in
//! quiet periods. Rows are appended (never updated: streamed rows cannot be), and the
//! newest row of an incident is its state. `plan` decides from the state and the findings
//! alone (pure, tested below); `check` sends and records what it decided.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde_json::{json, Value};
use sluice::config::{clock_minutes, weekday, AlertsConfig, Severity};

use crate::findings::Finding;

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

/// Which message a step sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Send {
    Alert,
    Repeat,
    Recovery,
}

impl Send {
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
    /// opened, repeated, seen, resolved, held, retry.
    pub event: &'static str,
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
                .filter(|(_, v)| v.as_str() == Some("delivered"))
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
            None => ("opened", Some(Send::Alert)),
            Some(i) if i.last_sent_at.is_none() => ("retry", Some(Send::Alert)),
            Some(i) if i.last_sent_at.is_some_and(|t| now - t >= repeat) => {
                ("repeated", Some(Send::Repeat))
            }
            Some(_) => ("seen", None),
        };
        let (event, send) = match (send, quiet) {
            (Some(Send::Repeat), true) => ("seen", None),
            (Some(_), true) => ("held", None),
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
            ("resolved", "resolved", None)
        } else if held(a, i.severity, now) {
            ("held", "resolving", None)
        } else {
            ("resolved", "resolved", Some(Send::Recovery))
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

/// What sending a step's message did, per channel: "delivered" or the error.
pub type Delivery = BTreeMap<String, String>;

/// The `ops.alerts` row of a step after its sends.
pub fn row(step: &Step, delivery: &Delivery, check_run_id: &str, now: DateTime<Utc>) -> Value {
    let ts = sluice::time::bigquery_timestamp;
    let prev = step
        .previous
        .as_ref()
        .filter(|p| p.status != "resolved" || step.finding.is_none());
    let all_delivered = delivery.values().all(|v| v == "delivered");
    let failures = delivery.values().filter(|v| *v != "delivered").count() as i64;
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
                .map(|c| (c.clone(), json!("delivered")))
                .collect();
            channels.extend(delivery.iter().map(|(k, v)| (k.clone(), json!(v))));
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
                Some(f.worker.clone()),
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
        "event": step.event,
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
        "worker": f.worker,
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
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn finding(key: &str, severity: Severity) -> Finding {
        Finding {
            key: key.into(),
            kind: "failed",
            severity,
            worker: "pg-copy".into(),
            subject: "shop.orders".into(),
            owner: Some("ana".into()),
            title: "pg-copy failed".into(),
            error: None,
            logical_date: None,
            run_id: None,
            facts: vec![],
        }
    }

    /// Feeds a step's row back as the incident's state, as the next check reads it.
    fn apply(
        state: &mut BTreeMap<String, Incident>,
        step: &Step,
        d: &Delivery,
        now: DateTime<Utc>,
    ) {
        let r = row(step, d, "c", now);
        let tsv = |v: &Value| {
            v.as_str()
                .map(|s| DateTime::parse_from_rfc3339(s).unwrap().to_utc())
        };
        state.insert(
            step.key.clone(),
            Incident {
                key: step.key.clone(),
                kind: r["kind"].as_str().unwrap().into(),
                severity: Severity::parse(r["severity"].as_str().unwrap()).unwrap(),
                status: r["status"].as_str().unwrap().into(),
                title: r["title"].as_str().unwrap().into(),
                worker: None,
                subject: None,
                owner: None,
                run_id: None,
                first_seen: tsv(&r["first_seen"]).unwrap(),
                last_seen: tsv(&r["last_seen"]).unwrap(),
                last_sent_at: tsv(&r["last_sent_at"]),
                sent_to: serde_json::from_str(r["sent_to"].as_str().unwrap()).unwrap(),
                delivery_failures: r["delivery_failures"].as_i64().unwrap(),
                finding: Value::Null,
            },
        );
    }

    fn ok(channels: &[&str]) -> Delivery {
        channels
            .iter()
            .map(|c| (c.to_string(), "delivered".to_string()))
            .collect()
    }

    #[test]
    fn one_message_per_incident_a_repeat_later_and_a_recovery() {
        let a: AlertsConfig = serde_yaml::from_str("{repeat_after: 4h}").unwrap();
        let mut state = BTreeMap::new();
        let f = [finding("failed:x", Severity::Error)];
        let mut sent = vec![];
        let times = [
            "2026-12-03T10:00:00Z",
            "2026-12-03T10:10:00Z",
            "2026-12-03T14:05:00Z",
            "2026-12-03T14:15:00Z",
        ];
        for now in times {
            for s in plan(&state, &f, &a, t(now)) {
                sent.push((now, s.event, s.send));
                apply(
                    &mut state,
                    &s,
                    &if s.send.is_some() {
                        ok(&["ops"])
                    } else {
                        Delivery::new()
                    },
                    t(now),
                );
            }
        }
        let now = t("2026-12-03T14:25:00Z");
        for s in plan(&state, &[], &a, now) {
            sent.push(("2026-12-03T14:25:00Z", s.event, s.send));
            apply(&mut state, &s, &ok(&["ops"]), now);
        }
        assert_eq!(
            sent,
            [
                (times[0], "opened", Some(Send::Alert)),
                (times[1], "seen", None),
                (times[2], "repeated", Some(Send::Repeat)),
                (times[3], "seen", None),
                ("2026-12-03T14:25:00Z", "resolved", Some(Send::Recovery)),
            ]
        );
        assert_eq!(state["failed:x"].status, "resolved");
        assert_eq!(state["failed:x"].first_seen, t(times[0]));
        // Resolved incidents stay quiet; the same problem again is a new alert.
        assert!(plan(&state, &[], &a, now).is_empty());
        assert_eq!(plan(&state, &f, &a, now)[0].event, "opened");
    }

    #[test]
    fn a_failed_delivery_is_retried_to_the_channels_that_missed_it() {
        let a: AlertsConfig = serde_yaml::from_str("{}").unwrap();
        let mut state = BTreeMap::new();
        let f = [finding("failed:x", Severity::Error)];
        let now = t("2026-12-03T10:00:00Z");
        let s = &plan(&state, &f, &a, now)[0];
        let mut d = ok(&["slack"]);
        d.insert("teams".into(), "HTTP 500 (after 5 attempts)".into());
        apply(&mut state, s, &d, now);
        assert_eq!(state["failed:x"].last_sent_at, None);
        assert_eq!(state["failed:x"].delivery_failures, 1);
        let s = &plan(&state, &f, &a, t("2026-12-03T10:10:00Z"))[0];
        assert_eq!((s.event, s.send), ("retry", Some(Send::Alert)));
        assert_eq!(s.delivered, BTreeSet::from(["slack".to_string()]));
        // A recovery that does not get through is tried again at the next check.
        apply(&mut state, s, &ok(&["teams"]), t("2026-12-03T10:10:00Z"));
        let s = &plan(&state, &[], &a, t("2026-12-03T10:20:00Z"))[0];
        let mut d = Delivery::new();
        d.insert("slack".into(), "HTTP 429 (after 5 attempts)".into());
        apply(&mut state, s, &d, t("2026-12-03T10:20:00Z"));
        assert_eq!(state["failed:x"].status, "resolving");
        let s = &plan(&state, &[], &a, t("2026-12-03T10:30:00Z"))[0];
        assert_eq!((s.event, s.send), ("resolved", Some(Send::Recovery)));
    }

    #[test]
    fn quiet_periods_hold_warnings_until_they_end() {
        let a: AlertsConfig = serde_yaml::from_str(
            "{digest: {time_zone: Europe/Berlin}, quiet: [{from: '22:00', to: '07:00'}, {from: '00:00', to: '23:59', days: [sat, sun], errors_too: true}]}",
        )
        .unwrap();
        // 05:30 UTC is 06:30 in Berlin in December: quiet for warnings, not errors.
        let thu = t("2026-12-03T05:30:00Z");
        assert!(held(&a, Severity::Warn, thu));
        assert!(!held(&a, Severity::Error, thu));
        assert!(!held(&a, Severity::Warn, t("2026-12-03T06:30:00Z")));
        // Saturday noon in Berlin: everything waits.
        assert!(held(&a, Severity::Error, t("2026-12-05T11:00:00Z")));
        let state = BTreeMap::new();
        let s = &plan(&state, &[finding("stale:x", Severity::Warn)], &a, thu)[0];
        assert_eq!((s.event, s.send), ("held", None));
    }

    #[test]
    fn routes_match_owner_worker_and_severity() {
        let a: AlertsConfig = serde_yaml::from_str(
            "{default: [ops], routes: [{owner: '@ana', channels: [fin]}, {worker: cdc-sync, severity: error, channels: [eng]}]}",
        )
        .unwrap();
        assert_eq!(route(&a, Some("ana"), "pg-copy", Severity::Warn), ["fin"]);
        assert_eq!(route(&a, None, "cdc-sync", Severity::Error), ["eng"]);
        assert_eq!(route(&a, None, "cdc-sync", Severity::Warn), ["ops"]);
    }
}

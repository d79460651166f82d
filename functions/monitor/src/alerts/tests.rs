//! The alert plan over several checks: one message per incident, repeats, recoveries, retries
//! to the channels that missed a message, quiet periods and routes.

use super::*;
use sluice::ledger::Worker;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

fn finding(key: &str, severity: Severity) -> Finding {
    Finding {
        key: key.into(),
        kind: "failed",
        severity,
        worker: Worker::PgCopy,
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
fn apply(state: &mut BTreeMap<String, Incident>, step: &Step, d: &Delivery, now: DateTime<Utc>) {
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
        .map(|c| (c.to_string(), Outcome::Delivered))
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
            (times[0], Event::Opened, Some(Send::Alert)),
            (times[1], Event::Seen, None),
            (times[2], Event::Repeated, Some(Send::Repeat)),
            (times[3], Event::Seen, None),
            (
                "2026-12-03T14:25:00Z",
                Event::Resolved,
                Some(Send::Recovery)
            ),
        ]
    );
    assert_eq!(state["failed:x"].status, "resolved");
    assert_eq!(state["failed:x"].first_seen, t(times[0]));
    // Resolved incidents stay quiet; the same problem again is a new alert.
    assert!(plan(&state, &[], &a, now).is_empty());
    assert_eq!(plan(&state, &f, &a, now)[0].event, Event::Opened);
}

#[test]
fn a_failed_delivery_is_retried_to_the_channels_that_missed_it() {
    let a: AlertsConfig = serde_yaml::from_str("{}").unwrap();
    let mut state = BTreeMap::new();
    let f = [finding("failed:x", Severity::Error)];
    let now = t("2026-12-03T10:00:00Z");
    let s = &plan(&state, &f, &a, now)[0];
    let mut d = ok(&["slack"]);
    d.insert(
        "teams".into(),
        Outcome::Failed("HTTP 500 (after 5 attempts)".into()),
    );
    apply(&mut state, s, &d, now);
    assert_eq!(state["failed:x"].last_sent_at, None);
    assert_eq!(state["failed:x"].delivery_failures, 1);
    let s = &plan(&state, &f, &a, t("2026-12-03T10:10:00Z"))[0];
    assert_eq!((s.event, s.send), (Event::Retry, Some(Send::Alert)));
    assert_eq!(s.delivered, BTreeSet::from(["slack".to_string()]));
    // A recovery that does not get through is tried again at the next check.
    apply(&mut state, s, &ok(&["teams"]), t("2026-12-03T10:10:00Z"));
    let s = &plan(&state, &[], &a, t("2026-12-03T10:20:00Z"))[0];
    let mut d = Delivery::new();
    d.insert(
        "slack".into(),
        Outcome::Failed("HTTP 429 (after 5 attempts)".into()),
    );
    apply(&mut state, s, &d, t("2026-12-03T10:20:00Z"));
    assert_eq!(state["failed:x"].status, "resolving");
    let s = &plan(&state, &[], &a, t("2026-12-03T10:30:00Z"))[0];
    assert_eq!((s.event, s.send), (Event::Resolved, Some(Send::Recovery)));
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
    assert_eq!((s.event, s.send), (Event::Held, None));
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

#[test]
fn an_incident_reads_back_from_the_row_a_check_wrote() {
    let a: AlertsConfig = serde_yaml::from_str("{}").unwrap();
    let now = t("2026-12-03T10:00:00Z");
    let f = [finding("failed:x", Severity::Error)];
    let s = &plan(&BTreeMap::new(), &f, &a, now)[0];
    let mut d = ok(&["slack"]);
    d.insert("teams".into(), Outcome::Failed("HTTP 500".into()));
    let r = row(s, &d, "c", now);
    assert_eq!(r["event"], "opened");
    assert_eq!(r["worker"], "pg-copy");
    assert_eq!(
        r["sent_to"],
        r#"{"channels":{"slack":"delivered","teams":"HTTP 500"},"complete":false,"message":"alert"}"#
    );
    let i = Incident::from_row(&r);
    assert_eq!(
        i,
        Incident {
            key: "failed:x".into(),
            kind: "failed".into(),
            severity: Severity::Error,
            status: "open".into(),
            title: "pg-copy failed".into(),
            worker: Some("pg-copy".into()),
            subject: Some("shop.orders".into()),
            owner: Some("ana".into()),
            run_id: None,
            first_seen: now,
            last_seen: now,
            last_sent_at: None,
            sent_to: serde_json::json!({"channels": {"slack": "delivered", "teams": "HTTP 500"}, "complete": false, "message": "alert"}),
            delivery_failures: 1,
            finding: finding_json(&f[0]),
        }
    );
    // The next check plans from it as from the row read back: a retry to teams only.
    let state = BTreeMap::from([(i.key.clone(), i)]);
    let s = &plan(&state, &f, &a, t("2026-12-03T10:10:00Z"))[0];
    assert_eq!((s.event, s.send), (Event::Retry, Some(Send::Alert)));
    assert_eq!(s.delivered, BTreeSet::from(["slack".to_string()]));
}

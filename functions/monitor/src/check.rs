//! `monitor check`: find what is wrong, send what is new, record it, refresh the page, and
//! write the check's own ledger row. The ops tables are read once per check; the page gets
//! what the check read and the incident rows it wrote. `preview` is a check that sends and
//! records nothing.

use std::fmt::Write;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sluice::ledger::{Ledger, Status, Worker};
use sluice::Result;

use crate::alerts::{self, Delivery, Event, Incident, Send};
use crate::context::Monitor;
use crate::delivery::{self, Channels};
use crate::findings::{self, Finding, Observed};
use crate::page;

/// What a check did about one incident.
#[derive(Debug, Clone, PartialEq)]
pub struct StepReport {
    pub key: String,
    pub event: Event,
    /// The message sent, if any.
    pub send: Option<Send>,
    /// Each channel it went to, with the outcome.
    pub delivery: Delivery,
}

/// What one `check` did.
#[derive(Debug, Clone, Default)]
pub struct CheckSummary {
    pub run_id: String,
    pub findings: Vec<Finding>,
    pub steps: Vec<StepReport>,
    /// Channels that did not take a message after every retry: (incident, channel, error).
    pub undelivered: Vec<(String, String, String)>,
    pub page: Option<String>,
}

impl CheckSummary {
    /// Messages delivered, over every channel.
    pub fn delivered(&self) -> usize {
        self.steps
            .iter()
            .map(|s| s.delivery.values().filter(|v| v.is_delivered()).count())
            .sum()
    }

    /// What `monitor check` prints: a line per incident, then the counts and the page.
    pub fn report(&self) -> String {
        let mut out = String::new();
        for s in &self.steps {
            let to: Vec<String> = s
                .delivery
                .iter()
                .map(|(c, r)| format!("{c}: {r}"))
                .collect();
            let sent = match s.send {
                Some(kind) => format!(
                    "  [{} → {}]",
                    kind.as_str(),
                    if to.is_empty() {
                        "no channel".into()
                    } else {
                        to.join(", ")
                    }
                ),
                None => String::new(),
            };
            let _ = writeln!(out, "{:<9} {}{sent}", s.event.as_str(), s.key);
        }
        let _ = writeln!(
            out,
            "{} findings, {} messages delivered (run {})",
            self.findings.len(),
            self.delivered(),
            self.run_id
        );
        if let Some(p) = &self.page {
            let _ = writeln!(out, "status page: {p}");
        }
        out
    }
}

/// `monitor check`: find what is wrong, send what is new, record it, refresh the page
/// (`write_page`); then the check's row in the ledger, as every worker writes one per run.
pub async fn check(m: &Monitor, now: DateTime<Utc>, write_page: bool) -> Result<CheckSummary> {
    let started = Utc::now();
    let ledger = m.ensure_tables().await?;
    let done = run(m, now, write_page).await;
    record(m, &ledger, started, &done).await?;
    done
}

async fn run(m: &Monitor, now: DateTime<Utc>, write_page: bool) -> Result<CheckSummary> {
    crate::views::ensure(m, false).await?;
    m.write_declared(now).await?;
    let observed = Observed::read(&m.bq, &m.pipeline, &m.target, &m.alerts, now).await?;
    let found = findings::findings(&m.pipeline, &m.declared, &observed, &m.alerts, now);
    let alerts_table = m.ops_table(sluice::ops::ALERTS.name);
    // After the rows below, the incidents as the page shows them.
    let mut incidents = alerts::read_state(&m.bq, &alerts_table, now).await?;
    let steps = alerts::plan(&incidents, &found, &m.alerts, now);
    let mut channels = Channels::resolve(&m.alerts, &m.target).await;
    let mut summary = CheckSummary {
        run_id: m.run_id.clone(),
        findings: found,
        ..CheckSummary::default()
    };
    let mut rows = vec![];
    for step in &steps {
        let mut delivery = Delivery::new();
        if let Some(send) = step.send {
            let Some(route) = delivery::route(&m.alerts, step) else {
                continue;
            };
            let msg = delivery::alert_message(m, step);
            for (ch, outcome) in channels.send_alert(step, send, route, &msg).await {
                if let alerts::Outcome::Failed(e) = &outcome {
                    summary
                        .undelivered
                        .push((step.key.clone(), ch.clone(), e.clone()));
                }
                delivery.insert(ch, outcome);
            }
        }
        let row = alerts::row(step, &delivery, &m.run_id, now);
        incidents.insert(step.key.clone(), Incident::from_row(&row));
        rows.push((format!("{}:{}", m.run_id, step.key), row));
        summary.steps.push(StepReport {
            key: step.key.clone(),
            event: step.event,
            send: step.send,
            delivery,
        });
    }
    if !rows.is_empty() {
        m.bq.insert_all(&m.ops, sluice::ops::ALERTS.name, &rows)
            .await?;
    }
    if write_page {
        let incidents = incidents.into_values().collect();
        summary.page = Some(page::publish(m, now, &observed, incidents).await?);
    }
    Ok(summary)
}

/// The check's ledger row: failed when the check failed or left a message undelivered (it
/// exits non-zero then), with what it found and sent. A row that cannot be written fails the
/// check (the ledger's policy); when the check failed already, its own error is the one told.
async fn record(
    m: &Monitor,
    ledger: &Ledger,
    started: DateTime<Utc>,
    done: &Result<CheckSummary>,
) -> Result<()> {
    let recorder = ledger.recorder(&m.run_id, Worker::Monitor, &m.target.name);
    let mut row = recorder.row(started);
    match done {
        Ok(s) => {
            row.details = json!({
                "findings": s.findings.len(),
                "messages_delivered": s.delivered(),
                "undelivered": s.undelivered.len(),
            });
            if !s.undelivered.is_empty() {
                row.status = Status::Failed;
                row.error = Some(format!(
                    "{} message(s) not delivered; the next check tries again",
                    s.undelivered.len()
                ));
            }
        }
        Err(e) => {
            row.status = Status::Failed;
            row.error = Some(e.to_string());
        }
    }
    match (recorder.record(&row).await, done) {
        (Err(e), Err(_)) => {
            tracing::error!(error = %e, "could not write the check's ledger row");
            Ok(())
        }
        (result, _) => result,
    }
}

/// `monitor preview`: the Slack and Teams messages the current findings would send, as if
/// every incident were new.
pub async fn preview(m: &Monitor, now: DateTime<Utc>) -> Result<Value> {
    let observed = Observed::read(&m.bq, &m.pipeline, &m.target, &m.alerts, now).await?;
    let found = findings::findings(&m.pipeline, &m.declared, &observed, &m.alerts, now);
    let steps = alerts::plan(&Default::default(), &found, &m.alerts, now);
    let out: Vec<Value> = steps
        .iter()
        .map(|s| {
            let msg = delivery::alert_message(m, s);
            json!({"incident": s.key, "slack": msg.slack(), "teams": msg.teams()})
        })
        .collect();
    Ok(Value::Array(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::Outcome;

    #[test]
    fn the_report_lists_each_incident_and_what_was_delivered() {
        let mut delivery = Delivery::new();
        delivery.insert("slack".into(), Outcome::Delivered);
        delivery.insert(
            "teams".into(),
            Outcome::Failed("HTTP 500 (after 5 attempts)".into()),
        );
        let s = CheckSummary {
            run_id: "20261203T070000-1a2b3c4d".into(),
            steps: vec![
                StepReport {
                    key: "failed:pg-copy:shop.orders:2026-12-02".into(),
                    event: Event::Opened,
                    send: Some(Send::Alert),
                    delivery,
                },
                StepReport {
                    key: "stale:shop.orders".into(),
                    event: Event::Seen,
                    send: None,
                    delivery: Delivery::new(),
                },
                StepReport {
                    key: "missed:cdc-sync shop".into(),
                    event: Event::Resolved,
                    send: Some(Send::Recovery),
                    delivery: Delivery::new(),
                },
            ],
            page: Some("gs://b/status/index.html".into()),
            ..CheckSummary::default()
        };
        assert_eq!(s.delivered(), 1);
        assert_eq!(
            s.report(),
            "opened    failed:pg-copy:shop.orders:2026-12-02  [alert → slack: delivered, teams: HTTP 500 (after 5 attempts)]\n\
             seen      stale:shop.orders\n\
             resolved  missed:cdc-sync shop  [recovery → no channel]\n\
             0 findings, 1 messages delivered (run 20261203T070000-1a2b3c4d)\n\
             status page: gs://b/status/index.html\n"
        );
    }
}

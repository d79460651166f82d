//! monitor: what ran, what failed, how fresh each table is, who uses it and what it costs.
//!
//! Where things live:
//! - `declared`: every table and scheduled unit pipeline.yaml and `marts/` declare, with owner,
//!   description, schedule and freshness SLA.
//! - `findings`: the ops tables read against the declaration: failed and missed runs,
//!   staleness, DQ, dead-letter rate, CDC lag and WAL, counts that do not add up.
//! - `alerts`: incident state in `ops.alerts` (dedup, repeats, recoveries, quiet periods);
//!   `message` renders one model as Slack Block Kit and a Teams Adaptive Card; `webhook` posts.
//! - `doctor`: what a deployment still lacks, one line per need (`monitor doctor`).
//! - `digest`: the daily message; `views`: the SQL views for the console and Looker Studio
//!   (`views/ops/*.sql`, each with its unit tests); `page`: the status page; `looker`: the
//!   Linking API URL.
//!
//! The face below is what `main` and the tests use.

pub mod alerts;
pub mod declared;
pub mod digest;
pub mod doctor;
pub mod findings;
pub mod looker;
pub mod message;
pub mod page;
pub mod views;
pub mod webhook;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde_json::Value;
use sluice::bigquery::{BigQuery, Param};
use sluice::config::{AlertsConfig, Pipeline, Target};
use sluice::marts::Dag;
use sluice::{Error, Result};

use crate::alerts::{Incident, Send, Step};
use crate::declared::Declared;
use crate::findings::{Finding, Observed};
use crate::message::{Message, Tone};
use crate::webhook::Webhook;

/// The worker's name in the ledger's labels and in logs.
pub const WORKER: &str = "monitor";

/// Everything a command needs: the pipeline, its target, the marts, the declaration.
pub struct Monitor {
    pub pipeline: Pipeline,
    pub target: Target,
    pub dag: Dag,
    pub declared: Declared,
    pub alerts: AlertsConfig,
    pub bq: BigQuery,
    pub run_id: String,
    /// The ops dataset of the target.
    pub ops: String,
}

impl Monitor {
    /// Reads pipeline.yaml (relative paths from `base`) and the marts in `marts` (none when the
    /// directory does not exist), for `target`.
    pub fn open(pipeline: Pipeline, base: &Path, marts: &Path, target: &str) -> Result<Monitor> {
        let target = pipeline.target(target)?;
        // A pipeline without marts has no marts directory.
        let files = if marts.exists() {
            sluice::marts::load_dir(marts)?
        } else {
            vec![]
        };
        let dag = Dag::build(files, &sluice::marts::Landed::of(&pipeline, base))?;
        let declared = Declared::of(&pipeline, base, &dag);
        let run_id = sluice::ledger::new_run_id();
        let bq = BigQuery::for_run(&target, WORKER, &run_id)?;
        let ops = target.dataset(&pipeline.bigquery.ops_dataset);
        Ok(Monitor {
            alerts: pipeline.alerts.clone().unwrap_or_default(),
            pipeline,
            target,
            dag,
            declared,
            bq,
            run_id,
            ops,
        })
    }

    /// `project.ops.name`, quoted.
    pub fn ops_table(&self, name: &str) -> String {
        sluice::bigquery::sql::table_ref(self.bq.project(), &self.ops, name)
    }

    /// Creates the ops tables the monitor writes, and the ledger's if no worker ran yet.
    pub async fn ensure_tables(&self) -> Result<()> {
        self.bq.ensure_dataset(&self.ops, None).await?;
        for t in [
            sluice::ops::RUNS,
            sluice::ops::DQ_RESULTS,
            sluice::ops::DEAD_LETTER,
            sluice::ops::ALERTS,
            sluice::ops::DECLARED_TABLES,
        ] {
            t.ensure(&self.bq, &self.ops).await?;
        }
        Ok(())
    }

    /// Appends the declaration to `ops.declared_tables` (the views read the newest one).
    pub async fn write_declared(&self, now: DateTime<Utc>) -> Result<()> {
        let at = sluice::time::bigquery_timestamp(now);
        let rows: Vec<(String, Value)> = self
            .declared
            .rows(&self.target)
            .into_iter()
            .map(|mut r| {
                r["declared_at"] = Value::String(at.clone());
                let id = format!(
                    "{}:{}.{}",
                    self.run_id,
                    r["dataset"].as_str().unwrap_or(""),
                    r["table_name"].as_str().unwrap_or("")
                );
                (id, r)
            })
            .collect();
        if rows.is_empty() {
            return Ok(());
        }
        self.bq
            .insert_all(&self.ops, sluice::ops::DECLARED_TABLES.name, &rows)
            .await
    }

    /// The newest row of every incident.
    pub async fn state(&self, now: DateTime<Utc>) -> Result<BTreeMap<String, Incident>> {
        let since = Param::scalar(
            "since",
            "TIMESTAMP",
            sluice::time::bigquery_timestamp(now - chrono::Duration::days(findings::HISTORY_DAYS)),
        );
        let q = self
            .bq
            .query(
                &alerts::state_sql(&self.ops_table(sluice::ops::ALERTS.name)),
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
                .and_then(sluice::config::Severity::parse)
                .unwrap_or(sluice::config::Severity::Warn),
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

    /// The status page's address as messages link to it.
    pub fn status_page_url(&self) -> Option<String> {
        if let Some(u) = &self.alerts.status_page_url {
            return Some(u.clone());
        }
        match &self.target.lake {
            // The console's authenticated URL: opens for anyone who may read the object.
            sluice::config::LakeLocation::Gcs { bucket } => Some(format!(
                "https://storage.cloud.google.com/{bucket}/{}",
                page::PAGE_PATH
            )),
            sluice::config::LakeLocation::Local { .. } => None,
        }
    }

    /// The message of a step.
    pub fn message(&self, step: &Step) -> Message {
        let (title, severity, owner, worker, subject, run_id, error, facts, date) =
            match &step.finding {
                Some(f) => (
                    f.title.clone(),
                    f.severity,
                    f.owner.clone(),
                    f.worker.clone(),
                    f.subject.clone(),
                    f.run_id.clone(),
                    f.error.clone(),
                    f.facts.clone(),
                    f.logical_date.clone(),
                ),
                None => {
                    let p = step.previous.as_ref();
                    let f = p.map(|p| &p.finding);
                    (
                        p.map(|p| p.title.clone()).unwrap_or_default(),
                        p.map(|p| p.severity)
                            .unwrap_or(sluice::config::Severity::Warn),
                        p.and_then(|p| p.owner.clone()),
                        p.and_then(|p| p.worker.clone()).unwrap_or_default(),
                        p.and_then(|p| p.subject.clone()).unwrap_or_default(),
                        p.and_then(|p| p.run_id.clone()),
                        None,
                        vec![],
                        f.and_then(|f| f["logical_date"].as_str().map(str::to_string)),
                    )
                }
            };
        let (tone, title) = match step.send {
            Some(Send::Recovery) => (Tone::Resolved, format!("Resolved: {title}")),
            Some(Send::Repeat) => (Tone::of(severity), format!("Still open: {title}")),
            _ => (Tone::of(severity), title),
        };
        let mut all_facts = vec![
            ("Worker".to_string(), worker),
            ("Table / unit".to_string(), subject),
        ];
        if let Some(d) = date {
            all_facts.push(("Date".into(), d));
        }
        all_facts.extend(facts.into_iter().map(|(k, v)| (capitalized(&k), v)));
        let mut text = vec![format!(
            "Target {} · project {}{}",
            self.target.name,
            self.target.project,
            run_id
                .as_ref()
                .map(|r| format!(" · run {r}"))
                .unwrap_or_default()
        )];
        if let Some(p) = &step.previous {
            if step.send == Some(Send::Recovery) || step.send == Some(Send::Repeat) {
                text.push(format!(
                    "Open since {} UTC.",
                    p.first_seen.format("%Y-%m-%d %H:%M")
                ));
            }
        }
        let mut links = vec![];
        if let Some(r) = &run_id {
            links.push((
                "Logs of the run".to_string(),
                message::logs_url(&self.target.project, r),
            ));
        }
        if let Some(u) = self.status_page_url() {
            links.push(("Status page".to_string(), u));
        }
        Message {
            tone,
            title,
            owner: owner.and_then(|o| self.pipeline.owners.get(&o).map(|x| (o.clone(), x.clone()))),
            text,
            facts: all_facts,
            error,
            links,
        }
    }

    /// Every channel of `alerts.channels`, its URL resolved, or why it could not be (an unset
    /// variable, an unreadable secret): one channel's problem does not keep the others quiet.
    pub async fn webhooks(&self) -> BTreeMap<String, std::result::Result<Webhook, String>> {
        let mut out = BTreeMap::new();
        for (name, c) in &self.alerts.channels {
            let hook = Webhook::resolve(name, c, &self.target)
                .await
                .map_err(|e| e.into_message());
            out.insert(name.clone(), hook);
        }
        out
    }
}

/// What one `check` did.
#[derive(Debug, Clone, Default)]
pub struct CheckSummary {
    pub run_id: String,
    pub findings: Vec<Finding>,
    /// (incident, event, message sent, channels with their outcome).
    pub steps: Vec<(String, &'static str, Option<Send>, alerts::Delivery)>,
    /// Channels that did not take a message after every retry: (incident, channel, error).
    pub undelivered: Vec<(String, String, String)>,
    pub page: Option<String>,
}

/// `monitor check`: find what is wrong, send what is new, record it, refresh the page.
pub async fn check(m: &Monitor, now: DateTime<Utc>, write_page: bool) -> Result<CheckSummary> {
    m.ensure_tables().await?;
    views::ensure(m, false).await?;
    m.write_declared(now).await?;
    let observed = Observed::read(&m.bq, &m.pipeline, &m.target, &m.alerts, now).await?;
    let found = findings::findings(&m.pipeline, &m.declared, &observed, &m.alerts, now);
    let state = m.state(now).await?;
    let steps = alerts::plan(&state, &found, &m.alerts, now);
    let hooks = m.webhooks().await;
    let http = webhook::client();
    // A channel that failed every retry in this check is not tried again before the next one:
    // a silent endpoint costs one message's retries, not every message's.
    let mut down: BTreeMap<String, String> = BTreeMap::new();
    let mut summary = CheckSummary {
        run_id: m.run_id.clone(),
        findings: found,
        ..CheckSummary::default()
    };
    let mut rows = vec![];
    for step in &steps {
        let mut delivery = alerts::Delivery::new();
        if let Some(send) = step.send {
            let (severity, owner, worker) = match (&step.finding, &step.previous) {
                (Some(f), _) => (f.severity, f.owner.clone(), f.worker.clone()),
                (None, Some(p)) => (
                    p.severity,
                    p.owner.clone(),
                    p.worker.clone().unwrap_or_default(),
                ),
                (None, None) => continue,
            };
            let msg = m.message(step);
            for ch in alerts::route(&m.alerts, owner.as_deref(), &worker, severity) {
                if step.delivered.contains(&ch) {
                    continue;
                }
                let Some(hook) = hooks.get(&ch) else { continue };
                let sent = match (hook, down.get(&ch)) {
                    (Err(e), _) => Err(e.clone()),
                    (Ok(_), Some(e)) => Err(format!(
                        "not tried: the channel failed earlier in this check ({e})"
                    )),
                    (Ok(h), None) => h.send(&http, &msg).await,
                };
                let outcome = match sent {
                    Ok(()) => {
                        tracing::info!(incident = %step.key, channel = %ch, message = send.as_str(), "alert sent");
                        "delivered".to_string()
                    }
                    Err(e) => {
                        tracing::error!(incident = %step.key, channel = %ch, error = %e, "alert not delivered; the next check tries again");
                        if hook.is_ok() && !down.contains_key(&ch) {
                            down.insert(ch.clone(), e.clone());
                        }
                        summary
                            .undelivered
                            .push((step.key.clone(), ch.clone(), e.clone()));
                        e
                    }
                };
                delivery.insert(ch, outcome);
            }
        }
        rows.push((
            format!("{}:{}", m.run_id, step.key),
            alerts::row(step, &delivery, &m.run_id, now),
        ));
        summary
            .steps
            .push((step.key.clone(), step.event, step.send, delivery));
    }
    if !rows.is_empty() {
        m.bq.insert_all(&m.ops, sluice::ops::ALERTS.name, &rows)
            .await?;
    }
    if write_page {
        summary.page = Some(page::publish(m, now).await?);
    }
    Ok(summary)
}

/// `rows in` → `Rows in`: findings label facts in lower case, messages start them upper.
fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// The marts directory: `--marts`, else `marts` beside pipeline.yaml.
pub fn marts_dir(base: &Path, marts: Option<PathBuf>) -> PathBuf {
    marts.unwrap_or_else(|| base.join("marts"))
}

/// Errors of the monitor's own making.
pub fn config_error(msg: impl Into<String>) -> Error {
    Error::config(msg.into())
}

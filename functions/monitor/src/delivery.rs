//! Delivering messages to the channels of `alerts.channels`: each channel's URL resolved once
//! per command (one channel's problem does not keep the others quiet), an alert step's
//! message, sent to the channels its route names, and the digest, sent to its channels.

use std::collections::BTreeMap;

use sluice::config::{AlertsConfig, Severity, Target};

use crate::alerts::{self, Outcome, Send, Step};
use crate::context::Monitor;
use crate::message::{self, Message, Tone};
use crate::webhook::{self, Webhook};

/// The channels, their URLs resolved, and the client they are posted with.
pub struct Channels {
    /// Each channel, or why its URL could not be resolved (an unset variable, an unreadable
    /// secret).
    hooks: BTreeMap<String, std::result::Result<Webhook, String>>,
    http: reqwest::Client,
    /// Channels that failed every retry in this command, with the error: a silent endpoint
    /// costs one message's retries, not every message's.
    down: BTreeMap<String, String>,
}

impl Channels {
    /// Resolves every channel of `alerts.channels`.
    pub async fn resolve(alerts: &AlertsConfig, target: &Target) -> Channels {
        let mut hooks = BTreeMap::new();
        for (name, c) in &alerts.channels {
            let hook = Webhook::resolve(name, c, target)
                .await
                .map_err(|e| e.into_message());
            hooks.insert(name.clone(), hook);
        }
        Channels {
            hooks,
            http: webhook::client(),
            down: BTreeMap::new(),
        }
    }

    /// Sends an alert step's message (`send`) to `route` but the channels already given it;
    /// each channel tried, in route order, with its outcome. A channel that failed earlier is
    /// not tried again.
    pub async fn send_alert(
        &mut self,
        step: &Step,
        send: Send,
        route: Vec<String>,
        msg: &Message,
    ) -> Vec<(String, Outcome)> {
        let mut out = vec![];
        for ch in route {
            if step.delivered.contains(&ch) {
                continue;
            }
            let Some(hook) = self.hooks.get(&ch) else {
                continue;
            };
            let sent = match (hook, self.down.get(&ch)) {
                (Err(e), _) => Err(e.clone()),
                (Ok(_), Some(e)) => Err(format!(
                    "not tried: the channel failed earlier in this check ({e})"
                )),
                (Ok(h), None) => h.send(&self.http, msg).await,
            };
            let outcome = match sent {
                Ok(()) => {
                    tracing::info!(incident = %step.key, channel = %ch, message = send.as_str(), "alert sent");
                    Outcome::Delivered
                }
                Err(e) => {
                    tracing::error!(incident = %step.key, channel = %ch, error = %e, "alert not delivered; the next check tries again");
                    if hook.is_ok() && !self.down.contains_key(&ch) {
                        self.down.insert(ch.clone(), e.clone());
                    }
                    Outcome::Failed(e)
                }
            };
            out.push((ch, outcome));
        }
        out
    }

    /// Sends the digest to its channels (`alerts.digest.channels`, else the default ones):
    /// each channel, in order, with what sending did.
    pub async fn send_digest(
        &self,
        alerts: &AlertsConfig,
        msg: &Message,
    ) -> Vec<(String, std::result::Result<(), String>)> {
        let mut out = vec![];
        for ch in digest_channels(alerts) {
            let Some(h) = self.hooks.get(&ch) else {
                continue;
            };
            let sent = match h {
                Ok(h) => h.send(&self.http, msg).await,
                Err(e) => Err(e.clone()),
            };
            out.push((ch, sent));
        }
        out
    }
}

/// The digest's channels: `alerts.digest.channels`, else the default ones.
fn digest_channels(a: &AlertsConfig) -> Vec<String> {
    if a.digest.channels.is_empty() {
        a.default.clone()
    } else {
        a.digest.channels.clone()
    }
}

/// The channels an alert step's message goes to (its route), with its severity, owner and
/// worker; None when the step is about nothing.
pub fn route(a: &AlertsConfig, step: &Step) -> Option<Vec<String>> {
    let (severity, owner, worker) = match (&step.finding, &step.previous) {
        (Some(f), _) => (f.severity, f.owner.clone(), f.worker.to_string()),
        (None, Some(p)) => (
            p.severity,
            p.owner.clone(),
            p.worker.clone().unwrap_or_default(),
        ),
        (None, None) => return None,
    };
    Some(alerts::route(a, owner.as_deref(), &worker, severity))
}

/// The message of an alert step.
pub fn alert_message(m: &Monitor, step: &Step) -> Message {
    let (title, severity, owner, worker, subject, run_id, error, facts, date) = match &step.finding
    {
        Some(f) => (
            f.title.clone(),
            f.severity,
            f.owner.clone(),
            f.worker.to_string(),
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
                p.map(|p| p.severity).unwrap_or(Severity::Warn),
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
        m.target.name,
        m.target.project,
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
            message::logs_url(&m.target.project, r),
        ));
    }
    if let Some(u) = m.status_page_url() {
        links.push(("Status page".to_string(), u));
    }
    Message {
        tone,
        title,
        owner: owner.and_then(|o| m.pipeline.owners.get(&o).map(|x| (o.clone(), x.clone()))),
        text,
        facts: all_facts,
        error,
        links,
    }
}

/// `rows in` → `Rows in`: findings label facts in lower case, messages start them upper.
fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_start_upper_case_and_the_digest_falls_back_to_the_default_channels() {
        assert_eq!(capitalized("rows in"), "Rows in");
        assert_eq!(capitalized("été"), "Été");
        assert_eq!(capitalized(""), "");
        let a: AlertsConfig = serde_yaml::from_str("{default: [ops, eng]}").unwrap();
        assert_eq!(digest_channels(&a), ["ops", "eng"]);
        let a: AlertsConfig =
            serde_yaml::from_str("{default: [ops], digest: {channels: [team]}}").unwrap();
        assert_eq!(digest_channels(&a), ["team"]);
    }
}

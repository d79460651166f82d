//! Posting a message to a Slack or Teams webhook: bounded time per attempt, 429 and 5xx
//! (and no answer) tried again with backoff, honouring `Retry-After` up to 30 s; any other
//! refusal is final. The URL is a secret: errors name the channel, never the URL.

use std::time::Duration;

use serde_json::Value;
use sluice::config::{ChannelKind, Target};
use sluice::retry::STANDARD;
use sluice::secret::DsnRef;
use sluice::secret::Secret;

use crate::message::Message;

/// A channel with its URL resolved.
#[derive(Debug, Clone)]
pub struct Webhook {
    pub kind: ChannelKind,
    url: Secret,
}

impl Webhook {
    /// The URL from its environment variable or Secret Manager secret.
    pub async fn resolve(
        name: &str,
        c: &sluice::config::Channel,
        target: &Target,
    ) -> sluice::Result<Webhook> {
        let url = match &c.url {
            DsnRef::Env(var) => match std::env::var(var) {
                Ok(v) if !v.is_empty() => Secret::new(v),
                _ => {
                    return Err(sluice::Error::config(format!(
                        "alerts.channels.{name}.url: environment variable {var} is not set"
                    )))
                }
            },
            DsnRef::Secret(s) => sluice::secret_manager::access(s, target)
                .await
                .map_err(|e| e.within(&format!("alerts.channels.{name}.url")))?,
        };
        if !url.expose().starts_with("https://") && !url.expose().starts_with("http://") {
            return Err(sluice::Error::config(format!(
                "alerts.channels.{name}.url: not an http(s) URL"
            )));
        }
        Ok(Webhook { kind: c.kind, url })
    }

    /// The body this channel takes.
    pub fn body(&self, m: &Message) -> Value {
        match self.kind {
            ChannelKind::Slack => m.slack(),
            ChannelKind::Teams => m.teams(),
        }
    }

    /// Posts the message; Ok when the service answered 2xx, else why it did not take it.
    pub async fn send(&self, http: &reqwest::Client, m: &Message) -> Result<(), String> {
        post(http, self.url.expose(), &self.body(m)).await
    }
}

/// Posts `body`, retrying 429, 5xx and transport errors; the error says what the last
/// attempt got and how many were made.
pub async fn post(http: &reqwest::Client, url: &str, body: &Value) -> Result<(), String> {
    let mut delays = STANDARD.delays().take(4);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let (retry, wait, why) = match http.post(url).json(body).send().await {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => {
                let status = r.status();
                let after = r
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .map(|s| Duration::from_secs(s.min(30)));
                let text: String = r
                    .text()
                    .await
                    .unwrap_or_default()
                    .chars()
                    .take(200)
                    .collect();
                let retry = status.as_u16() == 429 || status.is_server_error();
                (retry, after, format!("HTTP {status}: {}", text.trim()))
            }
            Err(e) => (true, None, sluice::http::describe(&e, &Default::default())),
        };
        let next = delays.next();
        match (retry, next) {
            (true, Some(d)) => {
                let d = wait.unwrap_or(d);
                tracing::warn!(attempt, wait_ms = d.as_millis() as u64, reason = %why, "webhook refused; trying again");
                tokio::time::sleep(d).await;
            }
            _ => {
                return Err(format!(
                    "{why} (after {attempt} attempt{})",
                    if attempt == 1 { "" } else { "s" }
                ))
            }
        }
    }
}

/// The client webhooks are posted with: 10 s to connect, 20 s per attempt.
pub fn client() -> reqwest::Client {
    sluice::install_crypto();
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap_or_default()
}

//! What the monitor reads from pipeline.yaml: `owners:` (who to mention in Slack and Teams)
//! and `alerts:` (channels, routes, the digest, quiet periods, thresholds). The `owner`,
//! `description` and `freshness` of each table are in `meta`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::duration::age;
use crate::secret::DsnRef;

/// One owner: how Slack and Teams mention them through a plain webhook.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Owner {
    /// Display name in messages and on the status page (default: the owner's key).
    #[serde(default)]
    pub name: Option<String>,
    /// Slack member id (`U…`, `W…`) or user group id (`S…`): `<@U…>` / `<!subteam^S…>`.
    #[serde(default)]
    pub slack: Option<String>,
    /// Teams user: UPN or e-mail, mentioned with `<at>` and its entity.
    #[serde(default)]
    pub teams: Option<String>,
}

/// `alerts:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// Webhooks by name.
    #[serde(default)]
    pub channels: BTreeMap<String, Channel>,
    /// Which channels get which alerts; the first route that matches wins.
    #[serde(default)]
    pub routes: Vec<Route>,
    /// Channels of alerts no route matches (and of the digest, unless it names its own).
    #[serde(default)]
    pub default: Vec<String>,
    /// The daily digest.
    #[serde(default)]
    pub digest: Digest,
    /// Times when warnings wait (errors still go out unless `errors_too`).
    #[serde(default)]
    pub quiet: Vec<Quiet>,
    /// An open incident is sent again after this long (default 4h).
    #[serde(default = "default_repeat", deserialize_with = "age")]
    pub repeat_after: Duration,
    /// A scheduled run counts as missed this long after it was due (default 30m).
    #[serde(default = "default_missed", deserialize_with = "age")]
    pub missed_after: Duration,
    /// Dead letters as a share of events in the last hour above which the monitor warns
    /// (default 0.05).
    #[serde(default = "default_dead_letter_rate")]
    pub dead_letter_rate: f64,
    /// CDC lag above which the monitor warns (default 30m).
    #[serde(default = "default_cdc_lag", deserialize_with = "age")]
    pub cdc_lag: Duration,
    /// How far back failures are looked for (default 24h).
    #[serde(default = "default_lookback", deserialize_with = "age")]
    pub lookback: Duration,
    /// The status page's URL as the team opens it (messages link to it).
    #[serde(default)]
    pub status_page_url: Option<String>,
}

/// A webhook.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Channel {
    /// `slack` (incoming webhook) or `teams` (Workflows webhook).
    pub kind: ChannelKind,
    /// Where the URL is: `{env: VAR}` or `{secret: projects/P/secrets/S}`; never inline.
    pub url: DsnRef,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    Slack,
    Teams,
}

/// A route: alerts matching every condition given go to `channels`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    #[serde(default)]
    pub owner: Option<String>,
    /// pg-copy, cdc-sync, log-ingest, mart-build, monitor.
    #[serde(default)]
    pub worker: Option<String>,
    #[serde(default)]
    pub severity: Option<Severity>,
    pub channels: Vec<String>,
}

/// How bad an alert is.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Warn,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warn => "warn",
            Severity::Error => "error",
        }
    }
    pub fn parse(s: &str) -> Option<Severity> {
        match s {
            "warn" => Some(Severity::Warn),
            "error" => Some(Severity::Error),
            _ => None,
        }
    }
}

/// When the digest goes out.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Digest {
    /// Local time, `HH:MM` (default 08:00).
    #[serde(default = "default_digest_at")]
    pub at: String,
    /// IANA time zone of `at` and of quiet periods (default UTC).
    #[serde(default = "default_tz")]
    pub time_zone: String,
    /// Channels (default: `alerts.default`).
    #[serde(default)]
    pub channels: Vec<String>,
}

impl Default for Digest {
    fn default() -> Self {
        Digest {
            at: default_digest_at(),
            time_zone: default_tz(),
            channels: vec![],
        }
    }
}

/// A quiet period, in the digest's time zone: `from` to `to` (`22:00` to `07:00` spans
/// midnight), on `days` (default every day; `mon`..`sun`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quiet {
    pub from: String,
    pub to: String,
    #[serde(default)]
    pub days: Vec<String>,
    /// Hold errors too (default: only warnings wait).
    #[serde(default)]
    pub errors_too: bool,
}

/// What an absent `alerts:` means: no channels, every threshold at its documented default.
impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            channels: BTreeMap::new(),
            routes: vec![],
            default: vec![],
            digest: Digest::default(),
            quiet: vec![],
            repeat_after: default_repeat(),
            missed_after: default_missed(),
            dead_letter_rate: default_dead_letter_rate(),
            cdc_lag: default_cdc_lag(),
            lookback: default_lookback(),
            status_page_url: None,
        }
    }
}

fn default_repeat() -> Duration {
    Duration::from_secs(4 * 3600)
}
fn default_missed() -> Duration {
    Duration::from_secs(30 * 60)
}
fn default_dead_letter_rate() -> f64 {
    0.05
}
fn default_cdc_lag() -> Duration {
    Duration::from_secs(30 * 60)
}
fn default_lookback() -> Duration {
    Duration::from_secs(24 * 3600)
}
fn default_digest_at() -> String {
    "08:00".into()
}
fn default_tz() -> String {
    "UTC".into()
}

/// `HH:MM` as minutes after midnight.
pub fn clock_minutes(s: &str) -> Option<u32> {
    let (h, m) = s.split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60 && s.len() == 5).then_some(h * 60 + m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_times() {
        assert_eq!(clock_minutes("07:30"), Some(450));
        assert_eq!(clock_minutes("24:00"), None);
        assert_eq!(clock_minutes("7:30"), None);
    }

    #[test]
    fn alert_thresholds_default_alike() {
        let a: AlertsConfig = serde_yaml::from_str("{}").unwrap();
        assert_eq!(a.repeat_after, Duration::from_secs(14_400));
        assert_eq!(a.digest.at, "08:00");
        // No `alerts:` block at all means the same thresholds as an empty one.
        let n = AlertsConfig::default();
        assert_eq!(
            (n.repeat_after, n.missed_after, n.cdc_lag, n.lookback),
            (a.repeat_after, a.missed_after, a.cdc_lag, a.lookback)
        );
        assert_eq!(n.dead_letter_rate, a.dead_letter_rate);
    }
}

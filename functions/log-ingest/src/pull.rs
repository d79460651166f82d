//! `log-ingest pull`: the same pipeline fed by streaming pull (a Cloud Run job). Each message
//! is acked once its row or dead letter is committed, nacked when it was not.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::FuturesUnordered;
use futures::StreamExt;
use google_cloud_pubsub::client::Subscriber;
use sluice::progress::Progress;
use sluice::{Error, ErrorKind, Result};
use tokio::time::Instant;

use crate::event::{Incoming, Via};
use crate::ingest::Ingest;
use crate::writer::Outcome;

/// Where and how long to pull.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// `projects/P/subscriptions/S`.
    pub subscription: String,
    /// Pub/Sub endpoint (the emulator's `http://host:port`); Google's when None.
    pub endpoint: Option<String>,
    /// Use no credentials (the emulator).
    pub anonymous: bool,
    pub max_duration: Option<Duration>,
    /// Stop once no message has come for this long.
    pub idle_timeout: Option<Duration>,
    /// Messages leased at once (flow control).
    pub max_outstanding: i64,
}

/// What a pull run did.
#[derive(Debug, Clone, Default)]
pub struct PullReport {
    pub received: u64,
    pub loaded: u64,
    pub dead_lettered: BTreeMap<&'static str, u64>,
    /// Not committed, so nacked for redelivery.
    pub nacked: u64,
}

impl PullReport {
    /// `120 received · 118 loaded · 2 dead-lettered · 0 nacked`.
    pub fn line(&self) -> String {
        format!(
            "{} received · {} loaded · {} dead-lettered · {} nacked",
            self.received,
            self.loaded,
            self.dead_lettered.values().sum::<u64>(),
            self.nacked
        )
    }
}

/// The full subscription name, from `S` or `projects/P/subscriptions/S`.
pub fn subscription_name(project: &str, s: &str) -> String {
    if s.starts_with("projects/") {
        s.to_string()
    } else {
        format!("projects/{project}/subscriptions/{s}")
    }
}

fn pubsub_error(context: &str, e: impl std::fmt::Display) -> Error {
    Error::PubSub {
        context: context.to_string(),
        message: e.to_string(),
        kind: ErrorKind::Transient,
    }
}

/// Pulls until `shutdown`, the time limit, the idle limit, or the end of the stream.
pub async fn run(
    ingest: Arc<Ingest>,
    opts: PullOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<PullReport> {
    sluice::install_crypto();
    let ctx = format!("subscribing to {}", opts.subscription);
    let mut builder = Subscriber::builder();
    if let Some(ep) = &opts.endpoint {
        builder = builder.with_endpoint(ep.clone());
    }
    // The target's own credentials (one token cache with its BigQuery client); anonymous for
    // the emulator.
    let auth = if opts.anonymous {
        sluice::auth::Auth::none()
    } else {
        sluice::auth::Auth::for_target(&ingest.target)
    };
    builder = builder.with_credentials(auth.credentials().await?);
    let client = builder.build().await.map_err(|e| pubsub_error(&ctx, e))?;
    let mut stream = client
        .subscribe(opts.subscription.clone())
        .set_max_outstanding_messages(opts.max_outstanding)
        .build();
    let running = ingest.start(Via::Pull).await?;
    let mut report = PullReport::default();
    let mut inflight = FuturesUnordered::new();
    let started = Instant::now();
    let far = Duration::from_secs(100 * 365 * 24 * 3600);
    let deadline = started + opts.max_duration.unwrap_or(far);
    let mut last_message = Instant::now();
    tokio::pin!(shutdown);
    let mut failure = None;
    tracing::info!(subscription = opts.subscription, "pulling");
    let shown = Arc::new(std::sync::Mutex::new(String::new()));
    let progress = {
        let shown = shown.clone();
        let terminal = sluice::progress::stderr_is_terminal();
        Progress::start("pulling", None, terminal, move || {
            shown.lock().map(|s| s.clone()).unwrap_or_default()
        })
    };
    let show = |r: &PullReport| {
        if let Ok(mut s) = shown.lock() {
            *s = r.line();
        }
    };
    loop {
        show(&report);
        let idle_at = last_message + opts.idle_timeout.unwrap_or(far);
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tokio::time::sleep_until(deadline) => break,
            _ = tokio::time::sleep_until(idle_at), if inflight.is_empty() => break,
            Some(done) = inflight.next() => tally(&mut report, done),
            // MessageStream::next is cancel-safe: it polls an inner stream.
            item = stream.next() => match item {
                None => break,
                Some(Err(e)) => {
                    failure = Some(pubsub_error(&ctx, e));
                    break;
                }
                Some(Ok((m, handler))) => {
                    last_message = Instant::now();
                    report.received += 1;
                    let publish_time = m
                        .publish_time
                        .as_ref()
                        .and_then(|t| serde_json::to_value(t).ok())
                        .and_then(|v| v.as_str().map(str::to_string));
                    let msg = Incoming {
                        message_id: m.message_id,
                        subscription: Some(opts.subscription.clone()),
                        data: m.data,
                        attributes: m.attributes.into_iter().collect(),
                        publish_time,
                        delivery_attempt: handler.delivery_attempt().map(i64::from),
                        via: Via::Pull,
                        bad_base64: None,
                    };
                    let routed = ingest.route(msg);
                    let writer = running.writer.clone();
                    inflight.push(async move {
                        let r = writer.submit(routed).await;
                        match &r {
                            Ok(_) => handler.ack(),
                            Err(_) => handler.nack(),
                        }
                        r
                    });
                }
            },
        }
    }
    // Messages in hand are committed and acked before stopping; the rest stay leased until
    // their deadline and are redelivered.
    drop(stream);
    while let Some(done) = inflight.next().await {
        tally(&mut report, done);
    }
    running.finish().await;
    progress.finish();
    match failure {
        Some(e) => Err(e),
        None => Ok(report),
    }
}

fn tally(report: &mut PullReport, done: std::result::Result<Outcome, crate::writer::NotCommitted>) {
    match done {
        Ok(Outcome::Loaded) => report.loaded += 1,
        Ok(Outcome::DeadLettered(r)) => *report.dead_lettered.entry(r.code()).or_default() += 1,
        Err(e) => {
            tracing::warn!(
                error = e.message,
                "message not committed; nacked for redelivery"
            );
            report.nacked += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_names() {
        assert_eq!(subscription_name("p", "s"), "projects/p/subscriptions/s");
        assert_eq!(
            subscription_name("p", "projects/q/subscriptions/s"),
            "projects/q/subscriptions/s"
        );
    }
}

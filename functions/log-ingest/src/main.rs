//! The log-ingest command line.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use log_ingest::Ingest;
use log_ingest::Reason;
use log_ingest::ReplayFilter;
use sluice::cli::{run_main, CommonArgs};
use sluice::config::Pipeline;
use sluice::telemetry;

/// Land Pub/Sub events in BigQuery, validated against JSON Schemas, with a dead-letter table.
///
/// `serve` takes Pub/Sub push requests (Cloud Run service); `pull` reads a subscription
/// (Cloud Run job); `replay` retries dead letters against today's schemas; `check` validates
/// the schemas and prints the tables they make.
#[derive(Debug, Parser)]
#[command(name = "log-ingest", version)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(subcommand)]
    command: Command,
}

/// Where a subcommand's own flags start in its `--help`: after the three of `CommonArgs`
/// (global: given before or after the subcommand).
const OWN_FLAGS: usize = 3;

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve Pub/Sub push requests on POST / (and GET /healthz) until SIGTERM.
    #[command(next_display_order = OWN_FLAGS)]
    Serve {
        /// Port to listen on (Cloud Run sets PORT).
        #[arg(long, env = "PORT", default_value_t = 8080)]
        port: u16,
        /// Address to listen on.
        #[arg(long, default_value = "0.0.0.0")]
        host: String,
        /// Serve AWS Lambda invocations (API Gateway, function URL, ALB) instead of listening
        /// on a port; needs a build with `--features lambda`.
        #[arg(long)]
        lambda: bool,
    },
    /// Read a subscription by streaming pull; ack each message once committed.
    #[command(next_display_order = OWN_FLAGS)]
    Pull {
        /// Subscription: `projects/P/subscriptions/S`, or S in the target's project
        /// (default: events.subscription).
        #[arg(long)]
        subscription: Option<String>,
        /// Stop after this long, e.g. 50m or 300s (default: until SIGTERM).
        #[arg(long, value_parser = sluice::config::parse_duration)]
        max_duration: Option<Duration>,
        /// Stop once no message has arrived for this long, e.g. 30s.
        #[arg(long, value_parser = sluice::config::parse_duration)]
        idle_timeout: Option<Duration>,
        /// Pub/Sub endpoint (default: PUBSUB_EMULATOR_HOST when set, else Google's).
        #[arg(long)]
        endpoint: Option<String>,
    },
    /// Validate dead-lettered events against today's schemas; store those that pass.
    #[command(next_display_order = OWN_FLAGS)]
    Replay {
        /// Only dead letters with this reason code (e.g. unknown_type, schema_violation).
        #[arg(long)]
        reason: Option<String>,
        /// Only dead letters received since this time (RFC 3339 or YYYY-MM-DD).
        #[arg(long)]
        since: Option<String>,
        /// Report what would be replayed; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Validate the event schemas and print each event type's table and columns (offline).
    Check,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.common.log_format());
    run_main("log-ingest", run(cli.common, cli.command))
}

async fn open(common: &CommonArgs) -> anyhow::Result<(Pipeline, Arc<Ingest>)> {
    let pipeline = common.pipeline()?;
    let target = pipeline.target(common.target()?)?;
    let ingest = Ingest::open(&pipeline, &common.pipeline_dir(), &target).await?;
    Ok((pipeline, Arc::new(ingest)))
}

async fn run(common: CommonArgs, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve { port, host, lambda } => {
            let (_, ingest) = open(&common).await?;
            let verifier = if ingest.target.verify_push_tokens {
                let push = ingest.events.push.clone().ok_or_else(|| {
                    anyhow::anyhow!("events.push (audience, service_account) is required to check push tokens; set `verify_push_tokens: false` on targets without them")
                })?;
                let v = log_ingest::Verifier::new(push);
                let n = v.preload().await?;
                tracing::info!(keys = n, platform = ?v.platform(), "checking push tokens");
                Some(Arc::new(v))
            } else {
                tracing::warn!(
                    target = ingest.target.name,
                    "push tokens are not checked on this target"
                );
                None
            };
            if lambda {
                #[cfg(feature = "lambda")]
                return Ok(log_ingest::lambda::serve(ingest, verifier).await?);
                #[cfg(not(feature = "lambda"))]
                anyhow::bail!("--lambda: this log-ingest was built without the `lambda` feature (cargo build -p log-ingest --features lambda)");
            }
            let listener = tokio::net::TcpListener::bind((host.as_str(), port))
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {host}:{port}: {e}"))?;
            log_ingest::serve(ingest, listener, verifier, log_ingest::stop_signal()).await?;
        }
        Command::Pull {
            subscription,
            max_duration,
            idle_timeout,
            endpoint,
        } => {
            let (_, ingest) = open(&common).await?;
            let sub = subscription
                .or_else(|| ingest.events.subscription.clone())
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "--subscription is required (or events.subscription in the pipeline)"
                    )
                })?;
            let emulator = std::env::var("PUBSUB_EMULATOR_HOST")
                .ok()
                .filter(|h| !h.is_empty());
            let endpoint = endpoint.or_else(|| emulator.as_ref().map(|h| format!("http://{h}")));
            let opts = log_ingest::PullOptions {
                subscription: log_ingest::subscription_name(&ingest.target.project, &sub),
                anonymous: ingest.target.no_auth || emulator.is_some(),
                endpoint,
                max_duration,
                idle_timeout,
                max_outstanding: 5000,
            };
            let r = log_ingest::pull(ingest, opts, log_ingest::stop_signal()).await?;
            println!(
                "received {}, loaded {}, nacked {}",
                r.received, r.loaded, r.nacked
            );
            for (code, n) in &r.dead_lettered {
                println!("  dead-lettered ({code}): {n}");
            }
        }
        Command::Replay {
            reason,
            since,
            dry_run,
        } => {
            let reason = reason
                .map(|r| {
                    Reason::from_code(&r).ok_or_else(|| {
                        anyhow::anyhow!("--reason {r}: not a reason code (not_json, bad_base64, missing_type, unknown_type, schema_violation, payload_too_large, bigquery_rejected)")
                    })
                })
                .transpose()?;
            let since = since.map(|s| log_ingest::parse_since(&s)).transpose()?;
            let (_, ingest) = open(&common).await?;
            let report = log_ingest::replay(
                ingest,
                &ReplayFilter {
                    reason,
                    since,
                    dry_run,
                },
            )
            .await?;
            println!("dead letters considered: {}", report.considered);
            for (table, n) in &report.replayed {
                println!(
                    "  {} into {table}: {n}",
                    if dry_run { "would replay" } else { "replayed" }
                );
            }
            for (code, n) in &report.still_failing {
                println!("  still failing ({code}): {n}");
            }
            if report.truncated > 0 {
                println!(
                    "  payload cut at the size limit, not replayable: {}",
                    report.truncated
                );
            }
            if report.not_committed > 0 {
                anyhow::bail!("{} events passed but were not committed (transient BigQuery errors); run replay again", report.not_committed);
            }
        }
        Command::Check => {
            let pipeline = common.pipeline()?;
            let events = log_ingest::events_config(&pipeline)?;
            let router = log_ingest::load_router(events, &common.pipeline_dir())?;
            for s in router.schemas.values() {
                println!(
                    "{} → {}.{} (partitioned by {} {}{})",
                    s.event_type,
                    events.dataset,
                    s.table,
                    s.partition_field,
                    s.partition_type.as_str(),
                    if s.clustering.is_empty() {
                        String::new()
                    } else {
                        format!(", clustered by {}", s.clustering.join(", "))
                    }
                );
                for f in s.fields() {
                    println!("    {:<24} {}", f.name, f.shape());
                }
            }
        }
    }
    Ok(())
}

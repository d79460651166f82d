//! The monitor command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Result};
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};

use monitor::{DigestDay, Made, Mark, Monitor};
use sluice::cli::{run_main, CommonArgs};
use sluice::telemetry;

/// Watch a sluice pipeline: alerts that name the owner, a daily digest, the ops views and the
/// status page.
///
/// Reads ops.runs, ops.dq_results and ops.dead_letter against what pipeline.yaml and marts/
/// declare (schedules, freshness SLAs, owners), keeps incidents in ops.alerts, and posts to
/// the Slack and Teams webhooks of `alerts.channels`.
#[derive(Debug, Parser)]
#[command(name = "monitor", version)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    /// The marts directory (default: `marts` next to pipeline.yaml).
    #[arg(long, global = true)]
    marts: Option<PathBuf>,
    /// Evaluate as of this instant (RFC 3339) instead of now: replays and tests.
    #[arg(long, global = true, value_parser = instant)]
    now: Option<DateTime<Utc>>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Find failed and missed runs, stale tables, failed checks, dead-letter rates, CDC lag and
    /// counts that do not add up; alert once per incident, repeat after `alerts.repeat_after`,
    /// notice recoveries; refresh the status page. Exits non-zero when a webhook did not take
    /// a message after every retry (it is tried again at the next check).
    Check {
        /// Do not write the status page.
        #[arg(long)]
        no_page: bool,
        /// Exit non-zero when anything is found (for scripts), not only on undelivered alerts.
        #[arg(long)]
        fail_on_findings: bool,
    },
    /// Send the daily digest: the monitor is alive, yesterday's runs, failures, the DQ report
    /// (checks not computed listed as such), freshness, dead letters and cost.
    Digest {
        /// Print the digest, send nothing.
        #[arg(long)]
        dry_run: bool,
        /// Report this day instead of yesterday: YYYY-MM-DD or `today`, in the digest's time
        /// zone.
        #[arg(long, value_parser = day)]
        day: Option<DigestDay>,
    },
    /// Write the status page (status/index.html in the lake) and print where it is.
    Page,
    /// Create (or replace) the ops views: catalog, freshness, heatmap, DQ, dead letters,
    /// usage and cost.
    Views,
    /// Run the ops views' unit tests (fixture rows in a scratch dataset of the target).
    TestViews,
    /// Print a Looker Studio Linking API URL that creates a report over the ops views.
    LookerUrl {
        /// A report to copy (its data sources aliased ds0, ds1, ...); default a blank report.
        #[arg(long)]
        template: Option<String>,
    },
    /// Print, as JSON, the Slack and Teams messages the current findings would send.
    Preview,
    /// Check what the target's deployment still lacks, one line per need: credentials and the
    /// principal, datasets, ops tables, the lake, the workers' roles, the image Cloud Run
    /// runs, each secret's versions, each source over its TLS mode (wal_level, slot,
    /// publication, rights, retained WAL) and each alert channel's URL. Exits non-zero on any ✗.
    Doctor {
        /// The region Terraform deployed Cloud Run into (its `region` variable).
        #[arg(long, default_value = "us-central1")]
        region: String,
    },
}

fn day(s: &str) -> Result<DigestDay, String> {
    if s == "today" {
        return Ok(DigestDay::Today);
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map(DigestDay::Date)
        .map_err(|_| format!("`{s}`: expected `today` or a day like 2026-12-03"))
}

fn instant(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.to_utc())
        .map_err(|_| format!("`{s}`: expected an instant like 2026-12-03T07:00:00Z"))
}

async fn try_main(cli: Cli) -> Result<ExitCode> {
    let pipeline = cli.common.pipeline()?;
    let base = cli.common.pipeline_dir();
    if let Some(dir) = cli.marts.as_ref().filter(|d| !d.is_dir()) {
        bail!("--marts {}: no such directory", dir.display());
    }
    let marts = monitor::marts_dir(&base, cli.marts.clone());
    let now = cli.now.unwrap_or_else(Utc::now);
    if let Command::LookerUrl { template } = &cli.command {
        let target = cli.common.target()?;
        println!(
            "{}",
            monitor::looker_url(&pipeline, target, template.as_deref())?
        );
        return Ok(ExitCode::SUCCESS);
    }
    let m = Monitor::open(pipeline, &base, &marts, cli.common.target()?)?;
    if let Command::Doctor { region } = &cli.command {
        return doctor(&m, &base, region).await;
    }
    let span = tracing::info_span!("monitor", run_id = %m.run_id, target = %m.target.name);
    let _g = span.enter();
    match cli.command {
        Command::Check {
            no_page,
            fail_on_findings,
        } => check(&m, now, !no_page, fail_on_findings).await,
        Command::Digest { dry_run, day } => digest(&m, now, day, dry_run).await,
        Command::Page => {
            println!("{}", monitor::write_page(&m, now).await?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Views => views(&m).await,
        Command::TestViews => test_views(&m).await,
        Command::Preview => {
            let out = monitor::preview(&m, now).await?;
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::LookerUrl { .. } | Command::Doctor { .. } => Ok(ExitCode::SUCCESS),
    }
}

/// `monitor views`: a line per view made or skipped.
async fn views(m: &Monitor) -> Result<ExitCode> {
    for v in monitor::make_views(m).await? {
        match v {
            Made::Created(v) => println!("view {v}"),
            Made::Skipped(v, why) => println!("skipped {v}: {why}"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `monitor test-views`: a line per case; an error when a case failed or a view has none.
async fn test_views(m: &Monitor) -> Result<ExitCode> {
    let t = monitor::test_views(m).await?;
    print!("{}", t.report());
    if t.failed() > 0 || !t.untested.is_empty() {
        bail!(
            "{} view tests failed, {} views without tests",
            t.failed(),
            t.untested.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `monitor check`: a line per incident; non-zero when a message was not delivered, or
/// (`fail_on_findings`) when anything was found.
async fn check(
    m: &Monitor,
    now: DateTime<Utc>,
    write_page: bool,
    fail_on_findings: bool,
) -> Result<ExitCode> {
    let s = monitor::check(m, now, write_page).await?;
    print!("{}", s.report());
    for (key, ch, e) in &s.undelivered {
        eprintln!("monitor: alert {key} not delivered to channel {ch}: {e}");
    }
    let failed = !s.undelivered.is_empty() || (fail_on_findings && !s.findings.is_empty());
    Ok(exit(!failed))
}

/// `monitor digest`: prints the digest, then (unless `dry_run`) sends it.
async fn digest(
    m: &Monitor,
    now: DateTime<Utc>,
    day: Option<DigestDay>,
    dry_run: bool,
) -> Result<ExitCode> {
    let msg = monitor::digest(m, now, day).await?;
    println!("{}\n{}", msg.title, msg.text.join("\n"));
    if dry_run {
        return Ok(ExitCode::SUCCESS);
    }
    let mut failed = false;
    for (ch, sent) in monitor::send_digest(m, &msg).await {
        match sent {
            Ok(()) => println!("digest sent to {ch}"),
            Err(e) => {
                eprintln!("monitor: digest not delivered to channel {ch}: {e}");
                failed = true;
            }
        }
    }
    Ok(exit(!failed))
}

/// `monitor doctor`: a line per check and the counts; non-zero on any ✗.
async fn doctor(m: &Monitor, base: &Path, region: &str) -> Result<ExitCode> {
    println!(
        "sluice doctor: target {} (project {})",
        m.target.name, m.target.project
    );
    let opts = monitor::DoctorOptions {
        region: region.to_string(),
    };
    let report = monitor::doctor(m, base, &opts).await?;
    for c in &report.checks {
        println!("{c}");
    }
    println!("{}", report.summary());
    Ok(exit(report.count(Mark::Fail) == 0))
}

fn exit(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.common.log_format());
    run_main("monitor", try_main(cli))
}

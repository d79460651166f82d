//! The monitor command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Result};
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};

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
        day: Option<Day>,
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
    /// Write every cloud target's view queries for Terraform (terraform/views.json), which
    /// creates the views where the monitor may not.
    ExportViews {
        /// Where to write (default: stdout).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy)]
enum Day {
    Today,
    Date(chrono::NaiveDate),
}

fn day(s: &str) -> Result<Day, String> {
    if s == "today" {
        return Ok(Day::Today);
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map(Day::Date)
        .map_err(|_| format!("`{s}`: expected `today` or a day like 2026-12-03"))
}

fn instant(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.to_utc())
        .map_err(|_| format!("`{s}`: expected an instant like 2026-12-03T07:00:00Z"))
}

async fn try_main(cli: Cli) -> Result<ExitCode> {
    telemetry::init(cli.common.log_format());
    let pipeline = cli.common.pipeline()?;
    let base = cli.common.pipeline_dir();
    if let Some(dir) = cli.marts.as_ref().filter(|d| !d.is_dir()) {
        bail!("--marts {}: no such directory", dir.display());
    }
    let marts = monitor::marts_dir(&base, cli.marts.clone());
    let now = cli.now.unwrap_or_else(Utc::now);
    if let Command::ExportViews { out } = &cli.command {
        let text = serde_json::to_string_pretty(&monitor::views::export(&pipeline)?)? + "\n";
        match out {
            Some(path) => {
                std::fs::write(path, text)
                    .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
                println!("wrote {}", path.display());
            }
            None => print!("{text}"),
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Command::LookerUrl { template } = &cli.command {
        let target = pipeline.target(cli.common.target()?)?;
        let ops = target.dataset(&pipeline.bigquery.ops_dataset);
        println!(
            "{}",
            monitor::looker::url(&target.project, &ops, &pipeline.name, template.as_deref())
        );
        return Ok(ExitCode::SUCCESS);
    }
    let m = monitor::Monitor::open(pipeline, &base, &marts, cli.common.target()?)?;
    if let Command::Doctor { region } = &cli.command {
        println!(
            "sluice doctor: target {} (project {})",
            m.target.name, m.target.project
        );
        let opts = monitor::doctor::Options {
            region: region.clone(),
        };
        let report = monitor::doctor::doctor(&m, &base, &opts).await?;
        for c in &report.checks {
            println!("{c}");
        }
        println!("{}", report.summary());
        return Ok(if report.count(monitor::doctor::Mark::Fail) > 0 {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        });
    }
    let span = tracing::info_span!("monitor", run_id = %m.run_id, target = %m.target.name);
    let _g = span.enter();
    match cli.command {
        Command::Check {
            no_page,
            fail_on_findings,
        } => {
            let s = monitor::check(&m, now, !no_page).await?;
            for (key, event, send, delivery) in &s.steps {
                let to: Vec<String> = delivery.iter().map(|(c, r)| format!("{c}: {r}")).collect();
                println!(
                    "{event:<9} {key}{}",
                    match send {
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
                    }
                );
            }
            let delivered: usize = s
                .steps
                .iter()
                .map(|(_, _, _, d)| d.values().filter(|v| *v == "delivered").count())
                .sum();
            println!(
                "{} findings, {delivered} messages delivered (run {})",
                s.findings.len(),
                s.run_id
            );
            if let Some(p) = &s.page {
                println!("status page: {p}");
            }
            if !s.undelivered.is_empty() {
                for (key, ch, e) in &s.undelivered {
                    eprintln!("monitor: alert {key} not delivered to channel {ch}: {e}");
                }
                return Ok(ExitCode::FAILURE);
            }
            if fail_on_findings && !s.findings.is_empty() {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Digest { dry_run, day } => {
            m.ensure_tables().await?;
            monitor::views::ensure(&m, false).await?;
            let d = monitor::digest::data(
                &m,
                now,
                day.map(|d| match d {
                    Day::Date(d) => d,
                    Day::Today => {
                        monitor::digest::yesterday(
                            &m.alerts.digest.time_zone,
                            now + chrono::Duration::days(1),
                        )
                        .0
                    }
                }),
            )
            .await?;
            let msg =
                monitor::digest::message(&d, &m.pipeline.name, &m.target.name, m.status_page_url());
            println!("{}\n{}", msg.title, msg.text.join("\n"));
            if dry_run {
                return Ok(ExitCode::SUCCESS);
            }
            let channels = if m.alerts.digest.channels.is_empty() {
                m.alerts.default.clone()
            } else {
                m.alerts.digest.channels.clone()
            };
            let hooks = m.webhooks().await;
            let http = monitor::webhook::client();
            let mut failed = false;
            for ch in channels {
                let Some(h) = hooks.get(&ch) else { continue };
                let sent = match h {
                    Ok(h) => h.send(&http, &msg).await,
                    Err(e) => Err(e.clone()),
                };
                match sent {
                    Ok(()) => println!("digest sent to {ch}"),
                    Err(e) => {
                        eprintln!("monitor: digest not delivered to channel {ch}: {e}");
                        failed = true;
                    }
                }
            }
            if failed {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Page => {
            m.ensure_tables().await?;
            println!("{}", monitor::page::publish(&m, now).await?);
        }
        Command::Views => {
            m.ensure_tables().await?;
            for v in monitor::views::ensure(&m, true).await? {
                match v {
                    monitor::views::Made::Created(v) => println!("view {v}"),
                    monitor::views::Made::Skipped(v, why) => println!("skipped {v}: {why}"),
                }
            }
        }
        Command::TestViews => {
            let dag = monitor::views::dag()?;
            let selected: Vec<String> = dag.marts.keys().cloned().collect();
            let (results, untested) = sluice::marts::run_fixtures(&m.bq, &dag, &selected).await?;
            let mut failed = 0;
            for r in &results {
                match &r.failure {
                    None => println!("ok    {}: {}", r.mart, r.case),
                    Some(f) => {
                        failed += 1;
                        println!("FAIL  {}: {}\n{f}", r.mart, r.case);
                    }
                }
            }
            for u in &untested {
                println!("no tests  {u}");
            }
            println!("{} cases, {failed} failed", results.len());
            if failed > 0 || !untested.is_empty() {
                bail!(
                    "{failed} view tests failed, {} views without tests",
                    untested.len()
                );
            }
        }
        Command::Preview => {
            let observed =
                monitor::findings::Observed::read(&m.bq, &m.pipeline, &m.target, &m.alerts, now)
                    .await?;
            let found =
                monitor::findings::findings(&m.pipeline, &m.declared, &observed, &m.alerts, now);
            let steps = monitor::alerts::plan(&Default::default(), &found, &m.alerts, now);
            let out: Vec<serde_json::Value> = steps
                .iter()
                .map(|s| {
                    let msg = m.message(s);
                    serde_json::json!({"incident": s.key, "slack": msg.slack(), "teams": msg.teams()})
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        Command::LookerUrl { .. } | Command::ExportViews { .. } | Command::Doctor { .. } => {}
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    run_main("monitor", try_main(Cli::parse()))
}

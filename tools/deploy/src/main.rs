//! `sluice-deploy`: the files Terraform reads, derived from pipeline.yaml, `schemas/` and
//! `marts/` by the shared library (`sluice::deployment`), so no worker carries the deployment.
//! `make deployment` runs it; the checks compare its output with the checked-in files.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::{Parser, Subcommand};
use serde_json::Value;

use sluice::cli::{run_main, CommonArgs};
use sluice::marts::{Dag, Landed, Placement};

/// Derive what Terraform deploys from pipeline.yaml, schemas/ and marts/.
///
/// Terraform computes no names of its own: datasets, Cloud Run jobs with their arguments and
/// schedules, grants, the log-ingest service, scheduled queries and the ops views all come
/// from here, from the code the workers run.
#[derive(Debug, Parser)]
#[command(name = "sluice-deploy", version)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    /// The marts directory (default: `marts` next to pipeline.yaml).
    #[arg(long, global = true)]
    marts: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

/// Where a file goes: standard output, a file, or only compared with one.
#[derive(Debug, clap::Args)]
struct Output {
    /// Write here instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Only compare with this file: exit non-zero, saying how to refresh it, when it differs.
    #[arg(long, conflicts_with = "out")]
    check: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write, as JSON for Terraform, what each target deploys: datasets, what each worker
    /// writes, reads and needs, the Cloud Run jobs with their arguments and schedules, the
    /// log-ingest service and its topics, the scheduled queries (terraform/deployment.json).
    #[command(name = "export-deployment")]
    Deployment {
        /// Targets to include (default: every target of pipeline.yaml but those with
        /// `no_auth`); repeatable, e.g. `--for prod --for pr-123`.
        #[arg(long = "for")]
        targets: Vec<String>,
        #[command(flatten)]
        output: Output,
    },
    /// Print, as JSON for Terraform, the BigQuery scheduled queries of marts with
    /// `runner: scheduled_query`, for `--target`.
    #[command(name = "export-scheduled-queries")]
    ScheduledQueries,
    /// Write every cloud target's ops view queries for Terraform (terraform/views.json), which
    /// creates the views where the monitor may not.
    #[command(name = "export-views")]
    Views {
        #[command(flatten)]
        output: Output,
    },
}

/// The pipeline's marts, checked against what it lands.
fn dag(cli: &Cli, pipeline: &sluice::config::Pipeline, base: &Path) -> Result<Dag> {
    let dir = cli.marts.clone().unwrap_or_else(|| base.join("marts"));
    let marts = sluice::marts::load_dir(&dir)?;
    Ok(Dag::build(marts, &Landed::of(pipeline, base))?)
}

/// Pretty JSON, one line at the end, where `output` says.
fn write(json: &Value, output: &Output) -> Result<()> {
    let text = serde_json::to_string_pretty(json)? + "\n";
    if let Some(file) = &output.check {
        let old = std::fs::read_to_string(file).unwrap_or_default();
        if old != text {
            bail!(
                "{} is stale: pipeline.yaml, schemas/, marts/ or the ops views changed since it was written; run `make deployment`",
                file.display()
            );
        }
        println!("{} is up to date", file.display());
    } else if let Some(file) = &output.out {
        std::fs::write(file, text)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", file.display()))?;
        eprintln!("wrote {}", file.display());
    } else {
        print!("{text}");
    }
    Ok(())
}

async fn try_main(cli: Cli) -> Result<ExitCode> {
    let pipeline = cli.common.pipeline()?;
    let base = cli.common.pipeline_dir();
    match &cli.command {
        Command::Deployment { targets, output } => {
            let dag = dag(&cli, &pipeline, &base)?;
            let json = sluice::deployment::deployment(&pipeline, &dag, &base, targets)?;
            write(&json, output)?;
        }
        Command::ScheduledQueries => {
            let dag = dag(&cli, &pipeline, &base)?;
            let t = pipeline.target(cli.common.target()?)?;
            let timings = sluice::marts::schedules(&pipeline, &dag).checked()?;
            let placement = Placement::for_target(&t);
            let json =
                sluice::deployment::scheduled_queries(&dag, &timings, &placement, &t.location)?;
            println!("{}", serde_json::to_string_pretty(&json)?);
        }
        Command::Views { output } => {
            write(&sluice::deployment::views::export(&pipeline)?, output)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    sluice::telemetry::init(cli.common.log_format());
    run_main("sluice-deploy", try_main(cli))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "sluice-deploy",
            "export-deployment",
            "--for",
            "prod",
            "--for",
            "pr-7",
            "--check",
            "terraform/deployment.json",
        ])
        .unwrap();
        assert!(
            matches!(cli.command, Command::Deployment { ref targets, .. } if targets == &["prod", "pr-7"])
        );
        let both = Cli::try_parse_from([
            "sluice-deploy",
            "export-views",
            "--out",
            "a",
            "--check",
            "b",
        ]);
        assert!(both.is_err(), "--out and --check exclude each other");
    }
}

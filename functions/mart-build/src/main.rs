//! The mart-build command line.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;

use std::time::Duration;

use anyhow::Result;
use clap::{Parser, Subcommand};
use sluice::marts::Placement;
use sluice::marts::{Dag, Landed};

use sluice::cli::{parse_date, run_main, CommonArgs, DateArgs};
use sluice::config::Pipeline;
use sluice::telemetry;

/// Build SQL marts in dependency order with data-quality gates.
///
/// Marts are `marts/<dataset>/<name>.sql`: a YAML header in a leading comment, then one
/// SELECT. Every file is checked (header keys, SQL syntax, table references, cycles) before
/// anything is printed or run.
#[derive(Debug, Parser)]
#[command(name = "mart-build", version)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    /// The marts directory (default: `marts` next to pipeline.yaml).
    #[arg(long, global = true)]
    marts: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The marts in run order, when each runs (after its inputs), and a Mermaid flowchart.
    Plan {
        /// `mart`, `mart+` (and downstream), `+mart` (and upstream); repeatable.
        #[arg(long)]
        select: Vec<String>,
    },
    /// A mart's SELECT exactly as it runs for a target, references placed.
    Render {
        /// `dataset.name`, or a name only one dataset has.
        mart: String,
        /// The logical date, passed to the query as @ds.
        #[arg(long)]
        ds: String,
    },
    /// Build marts for a logical date (default yesterday) or a range of dates.
    ///
    /// Each mart is built into a staging table, checked, and only then swapped into its table
    /// or partition. A tripped fail condition leaves the table as it was and skips the marts
    /// downstream (`upstream_failed`); the run then exits non-zero. Check results go to
    /// ops.dq_results, one row per mart and date to ops.runs. dev and pr-<n> targets read
    /// production inputs and write marts into suffixed datasets.
    Run {
        /// The logical dates (default: yesterday, UTC).
        #[command(flatten)]
        dates: DateArgs,
        /// `mart`, `mart+` (and downstream), `+mart` (and upstream); repeatable.
        #[arg(long)]
        select: Vec<String>,
        /// Marts built at the same time.
        #[arg(long, default_value_t = 4)]
        parallel: usize,
        /// How long a mart waits for a late input (pg-copy, cdc-sync, an upstream mart)
        /// before failing, e.g. 45m, 2h, 0s.
        #[arg(long, default_value = "1h", value_parser = duration)]
        wait: Duration,
        /// How often to look again while waiting.
        #[arg(long, default_value = "30s", value_parser = duration)]
        poll: Duration,
        /// Do not check that inputs are fresh (ad-hoc rebuilds).
        #[arg(long)]
        no_freshness: bool,
    },
    /// Run the marts' unit tests (`<name>.test.yaml` next to each mart) in BigQuery: fixture
    /// rows in, the mart's SELECT run, its rows compared with the expected ones.
    /// The target's project gets a scratch dataset, dropped afterwards (`--target local`: the
    /// emulator).
    Test {
        /// `mart`, `mart+`, `+mart`; repeatable.
        #[arg(long)]
        select: Vec<String>,
    },
}

fn duration(s: &str) -> Result<Duration, String> {
    sluice::config::parse_duration(s)
}

fn load(cli: &Cli) -> Result<(Pipeline, Dag)> {
    let pipeline = cli.common.pipeline()?;
    let base = cli.common.pipeline_dir();
    let dir = cli.marts.clone().unwrap_or_else(|| base.join("marts"));
    let marts = sluice::marts::load_dir(&dir)?;
    let dag = Dag::build(marts, &Landed::of(&pipeline, &base))?;
    Ok((pipeline, dag))
}

async fn try_main(cli: Cli) -> Result<ExitCode> {
    let (pipeline, dag) = load(&cli)?;
    match cli.command {
        Command::Plan { select } => {
            let selected: BTreeSet<String> = dag.select(&select)?;
            print!("{}", dag.plan_text(&selected));
            let schedules = sluice::marts::schedules(&pipeline, &dag);
            println!(
                "\nwhen each runs (UTC; at least {} minutes after each input, or in one run with its upstream mart):",
                sluice::marts::MARGIN_MINUTES
            );
            print!("{}", schedules.text(&dag, &selected));
            println!("\n```mermaid\n{}```", dag.plan_mermaid(&selected));
        }
        Command::Render { mart, ds } => {
            parse_date("--ds", &ds)?;
            let target = cli.common.target()?;
            let t = pipeline.target(target)?;
            let id = dag.resolve(&mart)?;
            let placement = Placement::for_target(&t);
            let sql = placement.render(&dag, &id)?;
            println!("-- {id} for target {target}; parameters: @ds = DATE '{ds}', @ds_start/@ds_end = the day's bounds (TIMESTAMP, UTC)");
            println!("{sql}");
        }
        Command::Run {
            dates,
            select,
            parallel,
            wait,
            poll,
            no_freshness,
        } => {
            let yesterday = chrono::Utc::now()
                .date_naive()
                .pred_opt()
                .unwrap_or_default();
            let dates = dates.dates()?.list(yesterday);
            let mut opts = mart_build::Options::new(cli.common.target()?, dates);
            opts.select = select;
            opts.parallel = parallel.max(1);
            opts.wait = wait;
            opts.poll = poll;
            opts.check_freshness = !no_freshness;
            let summary = mart_build::run(&pipeline, dag, opts).await?;
            print!("{}", summary.table());
            if summary.failed() > 0 {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Test { select } => {
            let t = pipeline.target(cli.common.target()?)?;
            let bq = sluice::bigquery::BigQuery::for_target(&t)?;
            let chosen = dag.select(&select)?;
            let selected: Vec<String> = dag
                .order()
                .filter(|m| chosen.contains(*m))
                .cloned()
                .collect();
            let (results, untested) = sluice::marts::run_fixtures(&bq, &dag, &selected).await?;
            for r in &results {
                match &r.failure {
                    None => println!("ok    {}: {}", r.mart, r.case),
                    Some(f) => println!("FAIL  {}: {}\n{f}", r.mart, r.case),
                }
            }
            for m in &untested {
                println!(
                    "--    {m}: no unit tests ({})",
                    sluice::marts::fixture_file(&dag.marts[m]).display()
                );
            }
            let failed = results.iter().filter(|r| r.failure.is_some()).count();
            println!(
                "{} passed, {failed} failed, {} marts without tests",
                results.len() - failed,
                untested.len()
            );
            if failed > 0 {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.common.log_format());
    run_main("mart-build", try_main(cli))
}

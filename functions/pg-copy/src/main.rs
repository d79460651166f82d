//! The pg-copy command line.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use pg_copy::{Dates, Options};
use sluice::config::{parse_date, Pipeline};
use sluice::telemetry::{self, LogFormat};

/// Copy Postgres tables into BigQuery through Parquet files in the lake.
///
/// Each table of pipeline.yaml is copied in its mode: `full` replaces the BigQuery table,
/// `incremental` replaces the date partition of the logical date (`--ds`, default yesterday).
/// `--from`/`--to` backfills a range of dates. Reruns are idempotent.
#[derive(Debug, Parser)]
#[command(name = "pg-copy", version)]
struct Cli {
    /// The pipeline definition.
    #[arg(long, default_value = "pipeline.yaml", env = "SLUICE_PIPELINE")]
    config: PathBuf,
    /// Target environment: local, dev, prod, or a pull-request name like pr-123.
    #[arg(long, env = "SLUICE_TARGET")]
    target: String,
    /// Only tables of this source.
    #[arg(long)]
    source: Option<String>,
    /// Only these tables (`table` or `source.table`); repeat for more.
    #[arg(long = "table")]
    tables: Vec<String>,
    /// Logical date (YYYY-MM-DD).
    #[arg(long, conflicts_with_all = ["from", "to"])]
    ds: Option<String>,
    /// First date of a backfill.
    #[arg(long, requires = "to")]
    from: Option<String>,
    /// Last date of a backfill (inclusive).
    #[arg(long, requires = "from")]
    to: Option<String>,
    /// Reload from files already in the lake, without reading Postgres.
    #[arg(long)]
    from_lake: bool,
    /// Read each table over this many ctid ranges at once (one connection each).
    #[arg(long, default_value_t = 1)]
    parallel: usize,
    /// Units (tables, dates of a backfill) copied at once.
    #[arg(long, default_value_t = 2)]
    concurrency: usize,
    /// Cloud Run job task index (set by Cloud Run).
    #[arg(long, env = "CLOUD_RUN_TASK_INDEX", default_value_t = 0)]
    task_index: usize,
    /// Cloud Run job task count (set by Cloud Run).
    #[arg(long, env = "CLOUD_RUN_TASK_COUNT", default_value_t = 1)]
    task_count: usize,
    /// After loading, count each unit's rows in Postgres again and compare with BigQuery.
    #[arg(long)]
    verify: bool,
    /// Log format: auto (human on a terminal), json, human.
    #[arg(long, default_value = "auto")]
    log_format: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(LogFormat::from_flag(&cli.log_format));
    telemetry::run_main("pg-copy", try_main(cli))
}

async fn try_main(cli: Cli) -> anyhow::Result<ExitCode> {
    let pipeline = Pipeline::load(&cli.config)?;
    let dates = match (&cli.ds, &cli.from, &cli.to) {
        (Some(d), _, _) => Dates::One(parse_date("--ds", d)?),
        (None, Some(f), Some(t)) => {
            let (f, t) = (parse_date("--from", f)?, parse_date("--to", t)?);
            anyhow::ensure!(f <= t, "--from {f} is after --to {t}");
            Dates::Range(f, t)
        }
        _ => Dates::Default,
    };
    anyhow::ensure!(
        cli.task_count >= 1 && cli.task_index < cli.task_count,
        "task index {} is not below task count {}",
        cli.task_index,
        cli.task_count
    );
    let mut opts = Options::new(&cli.target);
    opts.source = cli.source;
    opts.tables = cli.tables;
    opts.dates = dates;
    opts.from_lake = cli.from_lake;
    opts.extract.parallel = cli.parallel.max(1);
    opts.concurrency = cli.concurrency.max(1);
    opts.task = (cli.task_index, cli.task_count);
    opts.progress_bar = std::io::stderr().is_terminal();
    opts.verify = cli.verify;
    let summary = pg_copy::run(&pipeline, &opts).await?;
    print_summary(&summary, cli.verify);
    if summary.failed() > 0 {
        let first = summary.units.iter().find_map(|u| u.error.as_deref());
        eprintln!(
            "pg-copy: {} of {} units failed (run {}); the first: {}",
            summary.failed(),
            summary.units.len(),
            summary.run_id,
            first.unwrap_or("?")
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// The table of what was loaded, one line per unit.
fn print_summary(summary: &pg_copy::Summary, verify: bool) {
    let pg = if verify { "postgres" } else { "" };
    println!(
        "{:<30} {:<10} {:<11} {:>9} {:>9} {:>9} {:>8}  status",
        "bigquery table", "ds", "mode", "read", "loaded", pg, "MB"
    );
    for u in &summary.units {
        let pg_rows = u.postgres_rows.map(|n| n.to_string()).unwrap_or_default();
        println!(
            "{:<30} {:<10} {:<11} {:>9} {:>9} {:>9} {:>8.2}  {}",
            format!("{}.{}", u.dataset, u.unit.table),
            u.unit.ds,
            format!("{:?}", u.unit.config.mode).to_lowercase(),
            u.rows_read,
            u.rows_loaded,
            pg_rows,
            u.bytes as f64 / 1e6,
            u.error
                .as_deref()
                .map(|e| format!("FAILED: {e}"))
                .unwrap_or_else(|| "ok".into())
        );
    }
}

//! The pg-copy command line.

use std::process::ExitCode;

use clap::Parser;
use pg_copy::Options;
use sluice::cli::{run_main, CommonArgs, DateArgs};
use sluice::telemetry;

/// Copy Postgres tables into BigQuery through Parquet files in the lake.
///
/// Each table of pipeline.yaml is copied in its mode: `full` replaces the BigQuery table,
/// `incremental` replaces the date partition of the logical date (`--ds`, default yesterday).
/// `--from`/`--to` backfills a range of dates. Reruns are idempotent.
#[derive(Debug, Parser)]
#[command(name = "pg-copy", version)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    dates: DateArgs,
    /// Only tables of this source.
    #[arg(long)]
    source: Option<String>,
    /// Only these tables (`table` or `source.table`); repeat for more.
    #[arg(long = "table")]
    tables: Vec<String>,
    /// Reload from files already in the lake, without reading Postgres.
    #[arg(long, conflicts_with = "lake_only")]
    from_lake: bool,
    /// Read Postgres and write the lake's Parquet files and manifests only: load nothing,
    /// record nothing in the ledger (load later with --from-lake). Times the extract alone.
    #[arg(long)]
    lake_only: bool,
    /// Read each table over at most this many ctid ranges at once, one connection each
    /// (default: one per CPU this process may use, up to 4, and one per 64 MB of table;
    /// never more than the CPUs).
    #[arg(long)]
    parallel: Option<usize>,
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.common.log_format());
    run_main("pg-copy", try_main(cli))
}

async fn try_main(cli: Cli) -> anyhow::Result<ExitCode> {
    let pipeline = cli.common.pipeline()?;
    let dates = cli.dates.dates()?;
    anyhow::ensure!(
        cli.task_count >= 1 && cli.task_index < cli.task_count,
        "task index {} is not below task count {}",
        cli.task_index,
        cli.task_count
    );
    let mut opts = Options::new(cli.common.target()?);
    opts.source = cli.source;
    opts.tables = cli.tables;
    opts.dates = dates;
    opts.from_lake = cli.from_lake;
    opts.lake_only = cli.lake_only;
    opts.extract.parallel = cli.parallel;
    opts.concurrency = cli.concurrency.max(1);
    opts.task = (cli.task_index, cli.task_count);
    opts.progress_bar = sluice::progress::stderr_is_terminal();
    opts.verify = cli.verify;
    let summary = pg_copy::run(&pipeline, &opts).await?;
    print_summary(&summary, cli.verify, cli.lake_only);
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
fn print_summary(summary: &pg_copy::Summary, verify: bool, lake_only: bool) {
    let pg = if verify { "postgres" } else { "" };
    if lake_only {
        println!("lake only: Parquet files and manifests written, nothing loaded (load them with --from-lake)");
    }
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

//! The cdc-sync command line.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use sluice::cli::{run_main, CommonArgs};
use sluice::config::Pipeline;
use sluice::telemetry;

/// Replicate Postgres into BigQuery from a logical replication slot.
///
/// `init` creates the publication and the slot; `run` drains the slot into replica tables
/// (new tables are snapshotted first, new columns added on their own); `resync` rebuilds
/// replicas from a fresh snapshot.
#[derive(Debug, Parser)]
#[command(name = "cdc-sync", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct Common {
    #[command(flatten)]
    args: CommonArgs,
    /// Only this source (default: every source with a `cdc:` block).
    #[arg(long, global = true)]
    source: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check wal_level and the role's rights, then create (or adopt) the publication and the
    /// pgoutput slot (idempotent; prints what it did). What the role lacks fails the command,
    /// with the SQL for the tables' owner or an admin to run first.
    Init {
        #[command(flatten)]
        common: Common,
    },
    /// Drain committed changes from the slot into BigQuery, batch by batch.
    Run {
        #[command(flatten)]
        common: Common,
        /// Stop starting batches after this long, e.g. 50m or 300s (keep it under the Cloud
        /// Run task timeout); finished batches stay committed.
        #[arg(long, value_parser = sluice::config::parse_duration)]
        max_duration: Option<Duration>,
        /// Apply one batch and exit.
        #[arg(long)]
        once: bool,
        /// Keep polling for new changes until --max-duration instead of exiting when caught up.
        #[arg(long, requires = "max_duration")]
        follow: bool,
        /// Changes per batch (default: cdc.batch_changes of the pipeline).
        #[arg(long)]
        batch_changes: Option<u32>,
    },
    /// The slot's health and, per table, rows in Postgres against live rows in the replica.
    Status {
        #[command(flatten)]
        common: Common,
    },
    /// Rebuild replicas from a fresh snapshot (after a primary key or type change).
    Resync {
        #[command(flatten)]
        common: Common,
        /// Tables to resync (`table` or `schema.table`); repeat for more.
        #[arg(long = "table", required_unless_present = "all")]
        tables: Vec<String>,
        /// Every table of the publication.
        #[arg(long)]
        all: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let common = match &cli.command {
        Command::Init { common }
        | Command::Run { common, .. }
        | Command::Status { common }
        | Command::Resync { common, .. } => common,
    };
    telemetry::init(common.args.log_format());
    run_main("cdc-sync", try_main(cli))
}

async fn try_main(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Init { common } => {
            let (pipeline, target) = load(&common)?;
            for (source, r) in cdc_sync::init(&pipeline, &target, common.source.as_deref()).await? {
                let publication = if r.publication_created {
                    "created"
                } else if r.publication_adopted {
                    "exists (adopted)"
                } else {
                    "exists"
                };
                println!("source {source}: publication {publication}");
                for t in &r.tables_added {
                    println!("source {source}: added {t} to the publication");
                }
                match &r.slot_lsn {
                    Some(lsn) => println!("source {source}: slot created at {lsn}"),
                    None => println!("source {source}: slot exists"),
                }
            }
        }
        Command::Run {
            common,
            max_duration,
            once,
            follow,
            batch_changes,
        } => {
            let (pipeline, target) = load(&common)?;
            let mut opts = cdc_sync::Options::new(&target);
            opts.source = common.source.clone();
            opts.max_duration = max_duration;
            opts.once = once;
            opts.follow = follow;
            opts.batch_changes = batch_changes;
            opts.progress = sluice::progress::stderr_is_terminal();
            let s = cdc_sync::run(&pipeline, &opts).await?;
            for (t, rows) in &s.snapshots {
                println!("snapshot {t}: {rows} rows");
            }
            for (t, n) in &s.tables {
                println!("{t}: {n} changes");
            }
            println!(
                "{} changes in {} batches; slot at {}; retained WAL {:.1} MiB; lag {:.0}s (run {})",
                s.changes,
                s.batches,
                s.last_lsn.as_deref().unwrap_or("(unchanged)"),
                s.retained_wal_bytes as f64 / (1024.0 * 1024.0),
                s.lag_seconds,
                s.run_id
            );
        }
        Command::Status { common } => {
            let (pipeline, target) = load(&common)?;
            let mut differ = 0;
            for (source, health, tables) in
                cdc_sync::status(&pipeline, &target, common.source.as_deref()).await?
            {
                println!(
                    "source {source}: slot at {}, retaining {:.1} MiB of WAL",
                    health.confirmed_flush,
                    health.retained_wal_bytes as f64 / (1024.0 * 1024.0)
                );
                println!(
                    "{:<32} {:>10} {:>10}  {:<7} last synced",
                    "table", "postgres", "replica", "match"
                );
                for t in tables {
                    let (replica, same) = match t.replica_rows {
                        None => ("-".to_string(), "no replica yet".to_string()),
                        Some(n) if t.append_only => (n.to_string(), "history".into()),
                        Some(n) => {
                            let ok = n as i64 == t.postgres_rows;
                            if !ok {
                                differ += 1;
                            }
                            (n.to_string(), if ok { "yes" } else { "NO" }.into())
                        }
                    };
                    println!(
                        "{:<32} {:>10} {:>10}  {:<7} {}",
                        t.table,
                        t.postgres_rows,
                        replica,
                        same,
                        t.last_synced.unwrap_or_default()
                    );
                }
            }
            if differ > 0 {
                anyhow::bail!("{differ} replicas differ in row count from Postgres (changes not yet synced, or run `cdc-sync resync`)");
            }
        }
        Command::Resync {
            common,
            tables,
            all,
        } => {
            let (pipeline, target) = load(&common)?;
            for (t, rows) in
                cdc_sync::resync(&pipeline, &target, common.source.as_deref(), &tables, all).await?
            {
                println!("resynced {t}: {rows} rows");
            }
        }
    }
    Ok(())
}

fn load(common: &Common) -> anyhow::Result<(Pipeline, String)> {
    Ok((common.args.pipeline()?, common.args.target()?.to_string()))
}

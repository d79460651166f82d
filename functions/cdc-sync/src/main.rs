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
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: Command,
}

/// The flags every subcommand takes (global: given before or after the subcommand).
#[derive(Debug, Args)]
struct Common {
    #[command(flatten)]
    args: CommonArgs,
    /// Only this source (default: every source with a `cdc:` block).
    #[arg(long, global = true)]
    source: Option<String>,
}

/// Where a subcommand's own flags start in its `--help`: after the four of `Common`.
const OWN_FLAGS: usize = 4;

#[derive(Debug, Subcommand)]
enum Command {
    /// Check wal_level and the role's rights, then create (or adopt) the publication and the
    /// pgoutput slot (idempotent; prints what it did). What the role lacks fails the command,
    /// with the SQL for the tables' owner or an admin to run first.
    Init,
    /// Drain committed changes from the slot into BigQuery, batch by batch.
    #[command(next_display_order = OWN_FLAGS)]
    Run {
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
    /// The slot's health and, per table, its replica compared with Postgres by content (bucket
    /// checksums on both sides, narrowed down to the differing keys), as of one consistent
    /// point; tables with changes not yet merged are reported as pending. Fails when a replica
    /// differs.
    #[command(next_display_order = OWN_FLAGS)]
    Status {
        /// Only these tables (`table` or `schema.table`); repeat for more.
        #[arg(long = "table")]
        tables: Vec<String>,
    },
    /// Rebuild replicas from a fresh snapshot: after a primary key or type change (`--table`),
    /// or after a break in continuity that stopped `run` (`--all`: a lost slot is replaced).
    #[command(next_display_order = OWN_FLAGS)]
    Resync {
        /// Tables to resync (`table` or `schema.table`); repeat for more.
        #[arg(long = "table", required_unless_present = "all")]
        tables: Vec<String>,
        /// Every table of the publication.
        #[arg(long)]
        all: bool,
    },
    /// Stop replicating tables that left the publication (or were dropped): their replicas
    /// stay as they are, and runs no longer stop on them.
    #[command(next_display_order = OWN_FLAGS)]
    Forget {
        /// Tables to forget (`table` or `schema.table`); repeat for more.
        #[arg(long = "table", required = true)]
        tables: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.common.args.log_format());
    run_main("cdc-sync", try_main(cli))
}

async fn try_main(cli: Cli) -> anyhow::Result<()> {
    let common = cli.common;
    match cli.command {
        Command::Init => {
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
        Command::Status { tables } => {
            let (pipeline, target) = load(&common)?;
            let sources =
                cdc_sync::check(&pipeline, &target, common.source.as_deref(), &tables).await?;
            let mut problems = vec![];
            for s in &sources {
                for line in s.lines() {
                    println!("{line}");
                }
                problems.extend(s.problems());
            }
            if !problems.is_empty() {
                anyhow::bail!("{}", problems.join("; "));
            }
        }
        Command::Resync { tables, all } => {
            let (pipeline, target) = load(&common)?;
            for (t, rows) in
                cdc_sync::resync(&pipeline, &target, common.source.as_deref(), &tables, all).await?
            {
                println!("resynced {t}: {rows} rows");
            }
        }
        Command::Forget { tables } => {
            let (pipeline, target) = load(&common)?;
            let forgotten =
                cdc_sync::forget(&pipeline, &target, common.source.as_deref(), &tables).await?;
            for t in &forgotten {
                println!("forgot {t}: its replica stays as it is; runs no longer read it");
            }
            if forgotten.is_empty() {
                println!("no replicated table of those names: nothing to forget");
            }
        }
    }
    Ok(())
}

fn load(common: &Common) -> anyhow::Result<(Pipeline, String)> {
    Ok((common.args.pipeline()?, common.args.target()?.to_string()))
}

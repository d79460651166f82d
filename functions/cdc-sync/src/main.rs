//! The cdc-sync command line (a placeholder until issue #3).

use std::process::ExitCode;

use clap::Parser;

/// Replicate Postgres into BigQuery from a logical replication slot.
///
/// Not built yet (issue #3); this command only says so.
#[derive(Debug, Parser)]
#[command(name = "cdc-sync", version)]
struct Cli {}

fn main() -> ExitCode {
    let _ = Cli::parse();
    eprintln!("cdc-sync: not built yet (issue #{})", cdc_sync::ISSUE);
    ExitCode::FAILURE
}

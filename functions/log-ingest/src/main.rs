//! The log-ingest command line (a placeholder until issue #4).

use std::process::ExitCode;

use clap::Parser;

/// Land Pub/Sub events in BigQuery, validated against JSON Schemas, with a dead-letter table.
///
/// Not built yet (issue #4); this command only says so.
#[derive(Debug, Parser)]
#[command(name = "log-ingest", version)]
struct Cli {}

fn main() -> ExitCode {
    let _ = Cli::parse();
    eprintln!("log-ingest: not built yet (issue #{})", log_ingest::ISSUE);
    ExitCode::FAILURE
}

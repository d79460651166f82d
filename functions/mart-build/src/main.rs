//! The mart-build command line (a placeholder until issue #5).

use std::process::ExitCode;

use clap::Parser;

/// Build SQL marts in dependency order with data-quality gates.
///
/// Not built yet (issue #5); this command only says so.
#[derive(Debug, Parser)]
#[command(name = "mart-build", version)]
struct Cli {}

fn main() -> ExitCode {
    let _ = Cli::parse();
    eprintln!("mart-build: not built yet (issue #{})", mart_build::ISSUE);
    ExitCode::FAILURE
}

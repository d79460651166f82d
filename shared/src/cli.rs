//! The command line every worker shares: `--config`, `--target`, `--log-format` and the logical
//! dates `--ds` / `--from` `--to`, so the four `--help` pages read alike; and a worker's `main`.
//!
//! One rule for `--target`: every command that reads or writes a target needs one (the flag, or
//! `SLUICE_TARGET`); there is no default, so nothing runs against production by accident.
//! Commands that work offline (`mart-build plan`, `log-ingest check`) take none.

use std::path::{Path, PathBuf};

use chrono::NaiveDate;

use crate::config::Pipeline;
use crate::error::{Error, Result};
use crate::telemetry::LogFormat;

/// `--config`, `--target` and `--log-format`, on every subcommand.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// The pipeline definition.
    #[arg(
        long,
        default_value = "pipeline.yaml",
        env = "SLUICE_PIPELINE",
        global = true
    )]
    pub config: PathBuf,
    /// Target environment: local, dev, prod, or a pull-request name like pr-123.
    #[arg(long, env = "SLUICE_TARGET", global = true)]
    pub target: Option<String>,
    /// Log format: auto (human on a terminal), json, human.
    #[arg(long, value_enum, default_value_t = LogChoice::Auto, global = true)]
    pub log_format: LogChoice,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogChoice {
    Auto,
    Json,
    Human,
}

impl CommonArgs {
    /// Reads and checks pipeline.yaml.
    pub fn pipeline(&self) -> Result<Pipeline> {
        Pipeline::load(&self.config)
    }

    /// The target asked for; an error saying how to give one when there is none.
    pub fn target(&self) -> Result<&str> {
        self.target.as_deref().ok_or_else(|| {
            Error::config("--target is required (local, dev, prod or pr-N; or set SLUICE_TARGET)")
        })
    }

    /// The directory of pipeline.yaml, which its relative paths (schemas, marts) start from.
    pub fn pipeline_dir(&self) -> PathBuf {
        pipeline_dir(&self.config)
    }

    pub fn log_format(&self) -> LogFormat {
        match self.log_format {
            LogChoice::Auto => LogFormat::auto(),
            LogChoice::Json => LogFormat::Json,
            LogChoice::Human => LogFormat::Human,
        }
    }
}

/// The directory a pipeline file is in (`.` for a bare file name).
pub fn pipeline_dir(config: &Path) -> PathBuf {
    config
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// `--ds`, or `--from` and `--to`: the logical dates of a run.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct DateArgs {
    /// Logical date (YYYY-MM-DD).
    #[arg(long, conflicts_with_all = ["from", "to"])]
    pub ds: Option<String>,
    /// First date of a backfill.
    #[arg(long, requires = "to")]
    pub from: Option<String>,
    /// Last date of a backfill (inclusive).
    #[arg(long, requires = "from")]
    pub to: Option<String>,
}

/// The logical dates asked for on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dates {
    /// The worker's default (yesterday, for most).
    Default,
    One(NaiveDate),
    /// From, to (inclusive).
    Range(NaiveDate, NaiveDate),
}

impl DateArgs {
    /// The dates, checked: real dates, `--from` not after `--to`.
    pub fn dates(&self) -> Result<Dates> {
        Ok(match (&self.ds, &self.from, &self.to) {
            (Some(d), _, _) => Dates::One(parse_date("--ds", d)?),
            (None, Some(f), Some(t)) => {
                let (f, t) = (parse_date("--from", f)?, parse_date("--to", t)?);
                if f > t {
                    return Err(Error::config(format!("--from {f} is after --to {t}")));
                }
                Dates::Range(f, t)
            }
            _ => Dates::Default,
        })
    }
}

impl Dates {
    /// Every date, with `default` for `Dates::Default`.
    pub fn list(&self, default: NaiveDate) -> Vec<NaiveDate> {
        match *self {
            Dates::Default => vec![default],
            Dates::One(d) => vec![d],
            Dates::Range(f, t) => f.iter_days().take_while(|d| *d <= t).collect(),
        }
    }
}

/// A logical date on the command line, `YYYY-MM-DD`; the error names the flag.
pub fn parse_date(flag: &str, s: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| Error::config(format!("{flag} {s}: expected a date like 2024-05-01")))
}

/// A worker's `main`: runs `main` on a multi-threaded runtime and returns its exit code; an
/// error is printed on one line as `<name>: <error and its causes>` and exits 1.
pub fn run_main<T, E>(
    name: &str,
    main: impl std::future::Future<Output = std::result::Result<T, E>>,
) -> std::process::ExitCode
where
    T: std::process::Termination,
    E: std::fmt::Display,
{
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{name}: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(main) {
        Ok(t) => t.report(),
        Err(e) => {
            eprintln!("{name}: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        dates: DateArgs,
    }

    fn parse(args: &[&str]) -> std::result::Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("w").chain(args.iter().copied()))
    }

    #[test]
    fn dates_and_targets() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let c = parse(&["--from", "2024-02-28", "--to", "2024-03-01"]).unwrap();
        assert_eq!(
            c.dates.dates().unwrap().list(d("2000-01-01")),
            [d("2024-02-28"), d("2024-02-29"), d("2024-03-01")]
        );
        assert_eq!(
            parse(&["--ds", "2024-05-01"])
                .unwrap()
                .dates
                .dates()
                .unwrap(),
            Dates::One(d("2024-05-01"))
        );
        let e = parse(&["--from", "2024-03-02", "--to", "2024-03-01"])
            .unwrap()
            .dates
            .dates()
            .unwrap_err();
        assert!(e
            .to_string()
            .contains("--from 2024-03-02 is after --to 2024-03-01"));
        assert!(parse(&["--ds", "2024-05-01", "--from", "2024-05-01"]).is_err());
        assert!(parse(&["--from", "2024-05-01"]).is_err());
        let bad = parse(&["--ds", "May 1st"])
            .unwrap()
            .dates
            .dates()
            .unwrap_err();
        assert!(
            bad.to_string().contains("--ds May 1st: expected a date"),
            "{bad}"
        );
        if std::env::var_os("SLUICE_TARGET").is_none() {
            let e = parse(&[]).unwrap().common.target().unwrap_err();
            assert!(e.to_string().contains("--target is required"), "{e}");
        }
        assert_eq!(
            parse(&["--target", "dev"])
                .unwrap()
                .common
                .target()
                .unwrap(),
            "dev"
        );
        assert!(parse(&["--log-format", "xml"]).is_err());
    }

    #[test]
    fn relative_paths_start_at_the_pipeline_file() {
        assert_eq!(pipeline_dir(Path::new("pipeline.yaml")), PathBuf::from("."));
        assert_eq!(
            pipeline_dir(Path::new("conf/p.yaml")),
            PathBuf::from("conf")
        );
    }
}

//! pg-copy's extract timed as a user runs it (`pg-copy --lake-only`, a process of its own),
//! against DuckDB's Postgres scanner (`duckdb_copy.py`, also a process of its own) and the
//! single-connection binary COPY ceiling, interleaved on the same table in one invocation.
//! Each process is measured whole by `sluice-bench measure`: wall time, CPU seconds (user and
//! system) and peak resident memory. Every Parquet file written, pg-copy's and DuckDB's, is
//! read back: rows and the sum of ids must equal Postgres's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use arrow::array::{AsArray, Int64Array};
use arrow::datatypes::Int64Type;
use nix::sys::resource::{getrusage, UsageWho};
use nix::sys::time::TimeVal;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::{ceiling, dsn, ensure_doubled, ensure_table, env, median, pg, RUNS};

const BIG: (&str, u64) = ("bench_5m", 5_000_000);
const HUGE: (&str, u64) = ("bench_10m", 10_000_000);

/// One measured process.
#[derive(Debug, Clone, Copy)]
pub struct Measured {
    pub secs: f64,
    pub cpu_secs: f64,
    pub rss_mib: f64,
}

/// `sluice-bench measure LOG -- CMD...`: runs CMD with its output in LOG and prints whether it
/// succeeded, its wall seconds, CPU seconds and peak RSS in KiB. CMD is this process's only
/// child, so the children's resource usage is CMD's alone (threads and its own children
/// included).
pub fn child_measure(args: &[String]) -> Result<()> {
    let (Some(log), Some(cmd)) = (args.first(), args.get(2..).filter(|c| !c.is_empty())) else {
        bail!("usage: sluice-bench measure LOG -- CMD...");
    };
    let out = std::fs::File::create(log).with_context(|| format!("creating {log}"))?;
    let t0 = Instant::now();
    let status = Command::new(&cmd[0])
        .args(&cmd[1..])
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .status()
        .with_context(|| format!("starting {}", cmd[0]))?;
    let secs = t0.elapsed().as_secs_f64();
    let usage = getrusage(UsageWho::RUSAGE_CHILDREN)?;
    let s = |t: TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    println!(
        "{} {secs} {} {}",
        status.success(),
        s(usage.user_time()) + s(usage.system_time()),
        usage.max_rss()
    );
    Ok(())
}

/// Runs `cmd` under `sluice-bench measure`; its output goes to `.local/bench/logs/NAME.log`.
fn measure(name: &str, cmd: &[String], envs: &[(&str, String)]) -> Result<Measured> {
    let logs = PathBuf::from(".local/bench/logs");
    std::fs::create_dir_all(&logs)?;
    let log = logs.join(format!("{name}.log"));
    let out = Command::new(std::env::current_exe()?)
        .arg("measure")
        .arg(&log)
        .arg("--")
        .args(cmd)
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let f: Vec<&str> = text.split_whitespace().collect();
    if !out.status.success() || f.len() != 4 || f[0] != "true" {
        let tail = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = tail.lines().rev().take(5).collect();
        bail!(
            "{name} failed ({}); its output is in {}: {}",
            String::from_utf8_lossy(&out.stderr).trim(),
            log.display(),
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        );
    }
    Ok(Measured {
        secs: f[1].parse()?,
        cpu_secs: f[2].parse()?,
        rss_mib: f[3].parse::<f64>()? / 1024.0,
    })
}

/// The release binaries next to this one (scripts/bench.sh builds them).
fn sibling(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe.with_file_name(name);
    if !path.exists() {
        bail!("{} is missing: run through `make bench`", path.display());
    }
    Ok(path)
}

/// The pipeline pg-copy runs with: one source, the bench tables in full mode, a local lake.
fn write_pipeline() -> Result<PathBuf> {
    let path = PathBuf::from(".local/bench/pipeline.yaml");
    std::fs::create_dir_all(".local/bench")?;
    let tables: Vec<String> = [BIG.0, HUGE.0]
        .iter()
        .map(|t| format!("      {t}: {{ mode: full }}\n"))
        .collect();
    std::fs::write(
        &path,
        format!(
            "name: bench\nbigquery: {{ project: sluice-bench }}\nlake: {{ bucket: sluice-bench }}\n\
             sources:\n  bench:\n    dsn: {{ env: SLUICE_BENCH_DSN }}\n    tables:\n{}\
             targets:\n  local: {{ lake: .local/lake, lake_bucket: sluice-bench, no_auth: true }}\n",
            tables.concat()
        ),
    )?;
    Ok(path)
}

/// How one tool is run.
#[derive(Clone)]
enum Tool {
    /// `pg-copy --lake-only`, with `--parallel N` or (None) its default.
    PgCopy(Option<usize>),
    /// DuckDB with this Parquet compression.
    DuckDb(&'static str),
}

impl Tool {
    fn name(&self) -> String {
        match self {
            Tool::PgCopy(Some(n)) => format!("pg_copy_parallel{n}"),
            Tool::PgCopy(None) => "pg_copy_default".into(),
            Tool::DuckDb(c) => format!("duckdb_{c}"),
        }
    }
}

struct Runner {
    pg_copy: PathBuf,
    pipeline: PathBuf,
    python: String,
    script: PathBuf,
    extension: String,
    libpq_dsn: String,
    envs: Vec<(&'static str, String)>,
    lake: PathBuf,
    out: PathBuf,
}

impl Runner {
    fn new() -> Result<Runner> {
        let (host, port) = (env("SLUICE_PG_HOST")?, env("SLUICE_PG_PORT")?);
        let out = PathBuf::from(".local/bench/duckdb");
        std::fs::create_dir_all(&out)?;
        Ok(Runner {
            pg_copy: sibling("pg-copy")?,
            pipeline: write_pipeline()?,
            python: env("SLUICE_BENCH_PYTHON")?,
            script: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bench/duckdb_copy.py"),
            extension: env("SLUICE_BENCH_DUCKDB_EXTENSION")?,
            libpq_dsn: format!("host={host} port={port} user=postgres dbname=sluice_bench"),
            envs: vec![
                ("SLUICE_BENCH_DSN", dsn()?),
                ("SLUICE_TARGET", "local".into()),
            ],
            lake: PathBuf::from(env("SLUICE_LAKE_DIR")?),
            out,
        })
    }

    /// Where a tool's files of `table` land.
    fn files(&self, tool: &Tool, table: &str) -> Result<Vec<PathBuf>> {
        Ok(match tool {
            Tool::PgCopy(_) => {
                let dir = self
                    .lake
                    .join(format!("sluice-bench/raw/bench/{table}/dt=2024-01-01"));
                let mut files = vec![];
                for entry in std::fs::read_dir(&dir)? {
                    let path = entry?.path();
                    if path.extension().and_then(|e| e.to_str()) == Some("parquet") {
                        files.push(path);
                    }
                }
                files
            }
            Tool::DuckDb(c) => vec![self.out.join(format!("{table}-{c}.parquet"))],
        })
    }

    fn run(&self, tool: &Tool, table: &str) -> Result<Measured> {
        let cmd: Vec<String> = match tool {
            Tool::PgCopy(parallel) => {
                let mut cmd: Vec<String> = [
                    self.pg_copy.to_str().unwrap_or_default(),
                    "--config",
                    self.pipeline.to_str().unwrap_or_default(),
                    "--lake-only",
                    "--ds",
                    "2024-01-01",
                    "--table",
                    table,
                    "--log-format",
                    "json",
                ]
                .map(String::from)
                .to_vec();
                if let Some(n) = parallel {
                    cmd.extend(["--parallel".into(), n.to_string()]);
                }
                cmd
            }
            Tool::DuckDb(compression) => {
                let out = &self.files(tool, table)?[0];
                let _ = std::fs::remove_file(out);
                vec![
                    self.python.clone(),
                    self.script.display().to_string(),
                    self.extension.clone(),
                    self.libpq_dsn.clone(),
                    table.into(),
                    out.display().to_string(),
                    compression.to_string(),
                ]
            }
        };
        measure(&format!("{}-{table}", tool.name()), &cmd, &self.envs)
    }
}

/// Rows and the sum of ids of Parquet files, read back.
fn read_back(files: &[PathBuf]) -> Result<(u64, i128, u64)> {
    let (mut rows, mut sum, mut bytes) = (0u64, 0i128, 0u64);
    for path in files {
        bytes += std::fs::metadata(path)?.len();
        let file = std::fs::File::open(path).with_context(|| path.display().to_string())?;
        for batch in ParquetRecordBatchReaderBuilder::try_new(file)?.build()? {
            let batch = batch?;
            let ids: &Int64Array = batch.column(0).as_primitive::<Int64Type>();
            rows += ids.len() as u64;
            sum += ids.values().iter().map(|v| *v as i128).sum::<i128>();
        }
    }
    Ok((rows, sum, bytes))
}

/// Checks a tool's files against Postgres; returns their bytes.
async fn verify(runner: &Runner, tool: &Tool, table: &str) -> Result<u64> {
    let files = runner.files(tool, table)?;
    let (rows, sum, bytes) = read_back(&files)?;
    let c = pg(&dsn()?).await?;
    let row = c
        .query_one(&format!("SELECT count(*), sum(id)::text FROM {table}"), &[])
        .await?;
    let (pg_rows, pg_sum): (i64, String) = (row.get(0), row.get(1));
    if rows != pg_rows as u64 || sum.to_string() != pg_sum {
        bail!(
            "{}'s files of {table} disagree with Postgres: {rows} rows / id sum {sum} vs {pg_rows} / {pg_sum}",
            tool.name()
        );
    }
    Ok(bytes)
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

fn path_str(p: &Path) -> String {
    p.display().to_string()
}

/// The figures: rates, CPU per million rows, peak memory and output size of each tool on 5M
/// rows (medians of `RUNS` interleaved runs), memory of the best settings on 10M rows.
pub async fn measure_all(figures: &mut BTreeMap<String, f64>) -> Result<()> {
    ensure_table(BIG.0, BIG.1 as i64).await?;
    ensure_doubled(BIG.0, HUGE.0, HUGE.1 as i64).await?;
    let runner = Runner::new()?;
    eprintln!(
        "bench: pg-copy is {}; DuckDB runs in {}",
        path_str(&runner.pg_copy),
        runner.python
    );
    let tools = [
        Tool::PgCopy(Some(1)),
        Tool::PgCopy(Some(2)),
        Tool::PgCopy(None),
        Tool::DuckDb("snappy"),
        Tool::DuckDb("zstd"),
    ];
    let (table, rows) = BIG;
    let mut ceiling_rates = vec![];
    let mut runs: BTreeMap<String, Vec<Measured>> = BTreeMap::new();
    let mut bytes: BTreeMap<String, u64> = BTreeMap::new();
    for run in 1..=RUNS {
        let (_, secs) = ceiling(table).await?;
        ceiling_rates.push(rows as f64 / secs);
        let mut line = format!("ceiling {:.0}", rows as f64 / secs);
        for tool in &tools {
            let m = runner.run(tool, table)?;
            if run == 1 {
                bytes.insert(tool.name(), verify(&runner, tool, table).await?);
            }
            line.push_str(&format!(
                ", {} {:.0} rows/s {:.2} CPU s {:.0} MiB",
                tool.name(),
                rows as f64 / m.secs,
                m.cpu_secs,
                m.rss_mib
            ));
            runs.entry(tool.name()).or_default().push(m);
        }
        eprintln!("bench: run {run}/{RUNS} on {rows} rows: {line}");
    }
    let ceiling = median(ceiling_rates);
    figures.insert("pg_copy_ceiling_rows_per_s".into(), ceiling.round());
    let mut rates = BTreeMap::new();
    for (name, ms) in &runs {
        let rate = median(ms.iter().map(|m| rows as f64 / m.secs).collect());
        let cpu = median(ms.iter().map(|m| m.cpu_secs).collect()) / (rows as f64 / 1e6);
        let rss = median(ms.iter().map(|m| m.rss_mib).collect());
        figures.insert(format!("{name}_rows_per_s"), rate.round());
        figures.insert(format!("{name}_cpu_s_per_million_rows"), round2(cpu));
        figures.insert(format!("{name}_peak_rss_mib"), rss.round());
        figures.insert(
            format!("{name}_output_mb"),
            (bytes[name] as f64 / 1e6).round(),
        );
        rates.insert(name.clone(), (rate, cpu, rss));
    }
    let best = |prefix: &str| {
        rates
            .iter()
            .filter(|(n, _)| n.starts_with(prefix))
            .max_by(|a, b| a.1 .0.total_cmp(&b.1 .0))
            .map(|(n, v)| (n.clone(), *v))
            .expect("each tool ran")
    };
    let (pg_best, (pg_rate, pg_cpu, pg_rss)) = best("pg_copy");
    let (duck_best, (duck_rate, duck_cpu, duck_rss)) = best("duckdb");
    eprintln!("bench: best settings: {pg_best} and {duck_best}");
    figures.insert(
        "pg_copy_ratio_to_duckdb".into(),
        round2(pg_rate / duck_rate),
    );
    figures.insert("pg_copy_ratio_to_ceiling".into(), round2(pg_rate / ceiling));
    figures.insert(
        "pg_copy_cpu_ratio_to_duckdb".into(),
        round2(pg_cpu / duck_cpu),
    );
    figures.insert(
        "pg_copy_rss_ratio_to_duckdb".into(),
        round2(pg_rss / duck_rss),
    );

    // Twice the rows: memory must not grow (best settings of each, one run).
    let (huge, huge_rows) = HUGE;
    let setting = |name: &str| tools.iter().find(|t| t.name() == name).cloned();
    let pg_tool = setting(&pg_best).expect("a pg-copy setting");
    let duck_tool = setting(&duck_best).expect("a DuckDB setting");
    let pg = runner.run(&pg_tool, huge)?;
    verify(&runner, &pg_tool, huge).await?;
    let duck = runner.run(&duck_tool, huge)?;
    verify(&runner, &duck_tool, huge).await?;
    eprintln!(
        "bench: {huge_rows} rows: {pg_best} {:.0} rows/s {:.0} MiB, {duck_best} {:.0} rows/s {:.0} MiB",
        huge_rows as f64 / pg.secs,
        pg.rss_mib,
        huge_rows as f64 / duck.secs,
        duck.rss_mib
    );
    figures.insert("pg_copy_peak_rss_mib_10m_rows".into(), pg.rss_mib.round());
    figures.insert("duckdb_peak_rss_mib_10m_rows".into(), duck.rss_mib.round());
    figures.insert(
        "pg_copy_rss_ratio_to_duckdb_10m_rows".into(),
        round2(pg.rss_mib / duck.rss_mib),
    );
    Ok(())
}

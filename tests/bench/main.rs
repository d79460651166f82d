//! `make bench`: pg-copy's Postgres → Parquet-in-lake rate against the ceiling of a plain
//! single-connection binary COPY, and pg-copy's peak memory, on generated tables; then
//! cdc-sync's decode-and-stage rate against a raw peek of the slot, its end-to-end rate into
//! the emulator and its peak memory (`cdc.rs`). `--only pg-copy` or `--only cdc` runs one part.
//!
//! Prints `name: value` lines and writes them to `.local/bench/results.json`. Each rate is the
//! median of three runs measured in this one invocation; every Parquet file is checked (row
//! count and sum of ids equal Postgres's).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use arrow::array::{AsArray, Int64Array};
use arrow::datatypes::Int64Type;
use futures::StreamExt;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use pg_copy::plan::Unit;
use pg_copy::{Counters, ExtractOptions};
use sluice::config::{LakeLocation, Pipeline};
use sluice::lake::Lake;
use sluice::secret::Secret;
use tokio_postgres::NoTls;

mod cdc;

const RUNS: usize = 3;

fn env(name: &str) -> Result<String> {
    std::env::var(name).with_context(|| format!("{name} not set: run through `make bench`"))
}

fn dsn() -> Result<String> {
    Ok(format!(
        "postgres://postgres@{}:{}/sluice_bench",
        env("SLUICE_PG_HOST")?,
        env("SLUICE_PG_PORT")?
    ))
}

async fn pg(dsn: &str) -> Result<tokio_postgres::Client> {
    let (c, conn) = tokio_postgres::connect(dsn, NoTls)
        .await
        .with_context(|| format!("connecting to {dsn}"))?;
    tokio::spawn(conn);
    Ok(c)
}

/// Creates `sluice_bench.<table>` with `rows` rows unless it is already there.
async fn ensure_table(table: &str, rows: i64) -> Result<()> {
    let admin = pg(&dsn()?.replace("/sluice_bench", "/postgres")).await?;
    let exists = admin
        .query_opt(
            "SELECT 1 FROM pg_database WHERE datname = 'sluice_bench'",
            &[],
        )
        .await?
        .is_some();
    if !exists {
        admin.batch_execute("CREATE DATABASE sluice_bench").await?;
    }
    let c = pg(&dsn()?).await?;
    let have: Option<i64> = c
        .query_opt(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .ok()
        .flatten()
        .map(|r| r.get(0));
    if have == Some(rows) {
        return Ok(());
    }
    eprintln!("bench: generating {table} ({rows} rows; once, kept in .local/pg)");
    let t0 = Instant::now();
    c.batch_execute(&format!(
        "DROP TABLE IF EXISTS {table};
         CREATE TABLE {table} (
           id bigint PRIMARY KEY, account_id bigint NOT NULL, status text NOT NULL,
           amount numeric(12,2) NOT NULL, currency char(3) NOT NULL,
           created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL,
           note text, active boolean NOT NULL, meta jsonb NOT NULL, tags text[] NOT NULL);
         INSERT INTO {table}
         SELECT g, g * 7919 % 1000003,
                (ARRAY['new','paid','shipped','refunded'])[1 + g % 4],
                ((g * 37) % 10000000) / 100.0,
                (ARRAY['USD','EUR','JPY'])[1 + g % 3],
                timestamptz '2024-01-01' + g * interval '1 second',
                timestamptz '2024-01-01' + g * interval '1 second' + (g % 3600) * interval '1 second',
                CASE WHEN g % 3 = 0 THEN NULL ELSE left(repeat(md5(g::text), 7), (g % 200)::int) END,
                g % 5 <> 0,
                jsonb_build_object('src', 'web', 'v', g % 10),
                ARRAY['t' || (g % 7), 't' || (g % 11)]
         FROM generate_series(1::bigint, {rows}) g;"
    ))
    .await?;
    // VACUUM cannot run inside the implicit transaction of a multi-statement batch.
    c.batch_execute(&format!("VACUUM ANALYZE {table}")).await?;
    eprintln!(
        "bench: generated {table} in {:.0}s",
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Creates `huge` as two copies of `from` (ids shifted), unless it is already there: a table
/// twice the size shows whether peak memory has stopped growing.
async fn ensure_doubled(from: &str, huge: &str, rows: i64) -> Result<()> {
    let c = pg(&dsn()?).await?;
    let have: Option<i64> = c
        .query_opt(&format!("SELECT count(*) FROM {huge}"), &[])
        .await
        .ok()
        .flatten()
        .map(|r| r.get(0));
    if have == Some(rows) {
        return Ok(());
    }
    eprintln!("bench: generating {huge} ({rows} rows; once, kept in .local/pg)");
    c.batch_execute(&format!(
        "DROP TABLE IF EXISTS {huge};
         CREATE TABLE {huge} AS
           SELECT * FROM {from}
           UNION ALL
           SELECT id + {half}, account_id, status, amount, currency, created_at, updated_at, note, active, meta, tags FROM {from};
         ALTER TABLE {huge} ADD PRIMARY KEY (id);",
        half = rows / 2
    ))
    .await?;
    c.batch_execute(&format!("VACUUM ANALYZE {huge}")).await?;
    Ok(())
}

/// The ceiling: one connection, `COPY … TO STDOUT (FORMAT binary)`, bytes read and dropped.
async fn ceiling(table: &str) -> Result<(u64, f64)> {
    let c = pg(&dsn()?).await?;
    let t0 = Instant::now();
    let stream = c
        .copy_out(format!("COPY (SELECT * FROM {table}) TO STDOUT (FORMAT binary)").as_str())
        .await?;
    futures::pin_mut!(stream);
    let mut bytes = 0u64;
    while let Some(chunk) = stream.next().await {
        bytes += chunk?.len() as u64;
    }
    Ok((bytes, t0.elapsed().as_secs_f64()))
}

fn lake_dir() -> Result<PathBuf> {
    Ok(PathBuf::from(env("SLUICE_LAKE_DIR")?))
}

fn unit(table: &str) -> Result<Unit> {
    let p = Pipeline::parse(
        &format!(
            "name: bench\nbigquery: {{ project: p }}\nlake: {{ bucket: b }}\nsources:\n  bench:\n    dsn: {{ env: X }}\n    tables:\n      {table}: {{ mode: full }}\n"
        ),
        "bench",
    )?;
    Ok(Unit {
        source: "bench".into(),
        table: table.into(),
        config: p.sources["bench"].tables[table].clone(),
        ds: chrono::NaiveDate::from_ymd_opt(2024, 1, 1).expect("a date"),
    })
}

/// In a child process: pg-copy's extract of one table; prints rows, seconds and peak RSS.
async fn child_extract(table: &str, parallel: usize) -> Result<()> {
    let lake = Lake::open(&LakeLocation::Local {
        dir: lake_dir()?,
        bucket: "sluice-bench".into(),
    })?;
    let opts = ExtractOptions {
        parallel,
        ..ExtractOptions::default()
    };
    let t0 = Instant::now();
    let m = pg_copy::extract::extract(
        &lake,
        &Secret::new(dsn()?),
        &unit(table)?,
        "bench",
        opts,
        Arc::new(Counters::default()),
    )
    .await?;
    let secs = t0.elapsed().as_secs_f64();
    println!("{} {} {}", m.rows, secs, peak_rss_kib());
    Ok(())
}

/// This process's peak resident memory (VmHWM), in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

struct Extract {
    rows: u64,
    secs: f64,
    rss_mib: f64,
}

fn run_child(table: &str, parallel: usize) -> Result<Extract> {
    let out = std::process::Command::new(std::env::current_exe()?)
        .args(["extract", table, &parallel.to_string()])
        .output()?;
    if !out.status.success() {
        bail!(
            "extract of {table} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let f: Vec<&str> = text.split_whitespace().collect();
    Ok(Extract {
        rows: f[0].parse()?,
        secs: f[1].parse()?,
        rss_mib: f[2].parse::<f64>()? / 1024.0,
    })
}

/// Reads every Parquet file of the table's partition: total rows and sum of ids.
fn verify_files(table: &str) -> Result<(usize, u64, i128)> {
    let dir = lake_dir()?.join(format!("sluice-bench/raw/bench/{table}/dt=2024-01-01"));
    let (mut files, mut rows, mut sum) = (0, 0u64, 0i128);
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("parquet") {
            continue;
        }
        files += 1;
        let reader =
            ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&path)?)?.build()?;
        for batch in reader {
            let batch = batch?;
            let ids: &Int64Array = batch.column(0).as_primitive::<Int64Type>();
            rows += ids.len() as u64;
            sum += ids.values().iter().map(|v| *v as i128).sum::<i128>();
        }
    }
    Ok((files, rows, sum))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// pg-copy against the COPY ceiling on 5M rows, and its peak memory at 1M, 5M and 10M rows.
async fn measure_pg_copy(figures: &mut BTreeMap<String, f64>) -> Result<()> {
    let (big, small, huge) = ("bench_5m", "bench_1m", "bench_10m");
    ensure_table(big, 5_000_000).await?;
    ensure_table(small, 1_000_000).await?;
    ensure_doubled(big, huge, 10_000_000).await?;

    let mut ceiling_rates = vec![];
    let mut p1_rates = vec![];
    let mut p2_rates = vec![];
    let mut p2_rss = vec![];
    for run in 1..=RUNS {
        let (bytes, secs) = ceiling(big).await?;
        ceiling_rates.push(5_000_000.0 / secs);
        let p1 = run_child(big, 1)?;
        p1_rates.push(p1.rows as f64 / p1.secs);
        let p2 = run_child(big, 2)?;
        p2_rates.push(p2.rows as f64 / p2.secs);
        p2_rss.push(p2.rss_mib);
        eprintln!(
            "bench: run {run}/{RUNS}: ceiling {:.0} rows/s ({:.0} MB), pg-copy --parallel 1 {:.0} rows/s, --parallel 2 {:.0} rows/s, {:.0} MiB",
            5_000_000.0 / secs,
            bytes as f64 / 1e6,
            p1.rows as f64 / p1.secs,
            p2.rows as f64 / p2.secs,
            p2.rss_mib
        );
    }
    let (files, rows, sum) = verify_files(big)?;
    let c = pg(&dsn()?).await?;
    let row = c
        .query_one(&format!("SELECT count(*), sum(id)::text FROM {big}"), &[])
        .await?;
    let (pg_rows, pg_sum): (i64, String) = (row.get(0), row.get(1));
    if rows != pg_rows as u64 || sum.to_string() != pg_sum {
        bail!("Parquet files disagree with Postgres: {rows} rows / id sum {sum} vs {pg_rows} / {pg_sum}");
    }
    let small_run = run_child(small, 2)?;
    let huge_run = run_child(huge, 2)?;

    let ceiling = median(ceiling_rates);
    let p2 = median(p2_rates);
    figures.insert("pg_copy_ceiling_rows_per_s".into(), ceiling.round());
    figures.insert("pg_copy_rows_per_s".into(), p2.round());
    figures.insert(
        "pg_copy_parallel1_rows_per_s".into(),
        median(p1_rates).round(),
    );
    figures.insert(
        "pg_copy_ratio_to_ceiling".into(),
        (p2 / ceiling * 100.0).round() / 100.0,
    );
    figures.insert("pg_copy_peak_rss_mib".into(), median(p2_rss).round());
    figures.insert(
        "pg_copy_peak_rss_mib_1m_rows".into(),
        small_run.rss_mib.round(),
    );
    figures.insert(
        "pg_copy_peak_rss_mib_10m_rows".into(),
        huge_run.rss_mib.round(),
    );
    figures.insert("pg_copy_files_verified".into(), files as f64);

    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("extract") {
        return child_extract(&args[2], args[3].parse()?).await;
    }
    if args.get(1).map(String::as_str) == Some("cdc-run") {
        return cdc::child_run(&args[2]).await;
    }
    if args.get(1).map(String::as_str) == Some("cdc-prepare") {
        return cdc::child_prepare(&args[2]).await;
    }
    if args.get(1).map(String::as_str) == Some("cdc-stage") {
        return cdc::child_stage(&args[2]).await;
    }
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("sluice-bench: pg-copy and cdc-sync throughput and memory; run through `make bench` (`--only cdc` or `--only pg-copy` for one part)");
        return Ok(());
    }
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .map(String::as_str);
    let mut figures: BTreeMap<String, f64> = BTreeMap::new();
    if only != Some("cdc") {
        measure_pg_copy(&mut figures).await?;
    }
    if only != Some("pg-copy") {
        cdc::measure(&mut figures).await?;
    }
    let out_dir = PathBuf::from(".local/bench");
    std::fs::create_dir_all(&out_dir)?;
    std::fs::write(
        out_dir.join("results.json"),
        serde_json::to_string_pretty(&figures)?,
    )?;
    for (k, v) in &figures {
        println!("{k}: {v}");
    }
    Ok(())
}

//! The cdc-sync part of `make bench`: changes waiting in a slot, read raw (the ceiling), decoded
//! and staged by cdc-sync, and applied end to end into the emulator, with peak memory.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use futures::TryStreamExt;
use sluice::config::Pipeline;

use crate::{env, median, peak_rss_kib, pg, RUNS};

/// A database `sluice_cdc_<label>` whose slot holds `changes` changes over three tables:
/// 60% inserts, 30% updates, 10% deletes, in transactions of 3,000 changes (1,000 per table).
pub struct Scenario {
    pub label: &'static str,
    pub changes: u64,
}

impl Scenario {
    fn db(&self) -> String {
        format!("sluice_cdc_{}", self.label)
    }

    fn dsn(&self) -> Result<String> {
        Ok(format!(
            "postgres://postgres@{}:{}/{}",
            env("SLUICE_PG_HOST")?,
            env("SLUICE_PG_PORT")?,
            self.db()
        ))
    }

    fn slot(&self) -> String {
        format!("sluice_cdcbench_{}", self.label)
    }

    /// Each database has a lake bucket of its own: the lake remembers which database a
    /// source's stream comes from, and two databases under one source are a stop.
    pub fn pipeline(&self) -> Result<Pipeline> {
        std::env::set_var("SLUICE_CDC_BENCH_DSN", self.dsn()?);
        let yaml = format!(
            "name: bench\nbigquery: {{ project: {project} }}\nlake: {{ bucket: sluice-bench }}\n\
             sources:\n  cdcbench:\n    dsn: {{ env: SLUICE_CDC_BENCH_DSN }}\n    cdc:\n      tables: [c1, c2, c3]\n      slot: {slot}\n      publication: {slot}\n      dataset: cdcbench_{label}\n      deletes: hard\n\
             targets:\n  local: {{ project: {project}, lake_bucket: sluice-bench-{label}, no_auth: true }}\n",
            project = env("SLUICE_BQ_PROJECT")?,
            slot = self.slot(),
            label = self.label,
        );
        Ok(Pipeline::parse(&yaml, "cdc bench pipeline")?)
    }

    /// Recreates the database, snapshots its empty tables, then writes the changes.
    pub async fn prepare(&self) -> Result<()> {
        let admin = pg(&self.dsn()?.replace(&self.db(), "postgres")).await?;
        admin
            .execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1",
                &[&self.db()],
            )
            .await?;
        // One statement each: DROP DATABASE cannot run in the implicit transaction of a batch.
        admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.db()
            ))
            .await?;
        admin
            .batch_execute(&format!("CREATE DATABASE {}", self.db()))
            .await?;
        let c = pg(&self.dsn()?).await?;
        c.batch_execute(
            "CREATE TABLE c1 (id bigint PRIMARY KEY, account_id bigint NOT NULL, status text NOT NULL,
                              amount numeric(12,2), created_at timestamptz NOT NULL, note text);
             CREATE TABLE c2 (id bigint PRIMARY KEY, payload jsonb, tags text[], updated_at timestamptz);
             CREATE TABLE c3 (id bigint PRIMARY KEY, score double precision, flag boolean, label text);",
        )
        .await?;
        let p = self.pipeline()?;
        cdc_sync::init(&p, "local", None).await?;
        cdc_sync::run(&p, &cdc_sync::Options::new("local")).await?;
        eprintln!("bench: writing {} changes into {}", self.changes, self.db());
        let t0 = Instant::now();
        // Per table: 2n inserts, n updates, n/3 deletes; over three tables that is 10n changes.
        let n = (self.changes / 10) as i64;
        let mut sql = String::new();
        let chunks = |from: i64, to: i64| {
            (from..=to)
                .step_by(1000)
                .map(move |a| (a, (a + 999).min(to)))
        };
        for (a, b) in chunks(1, 2 * n) {
            sql.push_str(&format!(
                "BEGIN; INSERT INTO c1 SELECT g, g % 9973, 'new', (g % 100000) / 100.0, timestamptz '2024-01-01' + g * interval '1 s', CASE WHEN g % 3 = 0 THEN NULL ELSE md5(g::text) END FROM generate_series({a}, {b}) g;
                 INSERT INTO c2 SELECT g, jsonb_build_object('k', g, 'src', 'app'), ARRAY['t' || g % 7, 'u'], now() FROM generate_series({a}, {b}) g;
                 INSERT INTO c3 SELECT g, g * 0.5, g % 2 = 0, 'label ' || g FROM generate_series({a}, {b}) g; COMMIT;\n"
            ));
        }
        for (a, b) in chunks(1, n) {
            sql.push_str(&format!(
                "BEGIN; UPDATE c1 SET status = 'paid', amount = amount + 1 WHERE id BETWEEN {a} AND {b};
                 UPDATE c2 SET tags = tags || 'v2'::text, updated_at = now() WHERE id BETWEEN {a} AND {b};
                 UPDATE c3 SET score = -score, flag = NOT flag WHERE id BETWEEN {a} AND {b}; COMMIT;\n"
            ));
        }
        for (a, b) in chunks(2 * n - n / 3 + 1, 2 * n) {
            sql.push_str(&format!(
                "BEGIN; DELETE FROM c1 WHERE id BETWEEN {a} AND {b}; DELETE FROM c2 WHERE id BETWEEN {a} AND {b}; DELETE FROM c3 WHERE id BETWEEN {a} AND {b}; COMMIT;\n"
            ));
        }
        c.batch_execute(&sql).await?;
        wait_flushed(&c).await?;
        eprintln!("bench: wrote them in {:.0}s", t0.elapsed().as_secs_f64());
        Ok(())
    }

    /// The ceiling: one peek of every waiting change, rows streamed to the client and dropped.
    async fn peek_raw(&self) -> Result<(u64, f64)> {
        let c = pg(&self.dsn()?).await?;
        let t0 = Instant::now();
        let slot = self.slot();
        let rows = c
            .query_raw(
                "SELECT data FROM pg_logical_slot_peek_binary_changes($1, NULL, NULL, 'proto_version', '1', 'publication_names', $2, 'binary', 'true')",
                [&slot, &slot],
            )
            .await?;
        futures::pin_mut!(rows);
        let mut changes = 0u64;
        while let Some(r) = rows.try_next().await? {
            let data: &[u8] = r.get(0);
            if matches!(data.first(), Some(b'I' | b'U' | b'D' | b'T')) {
                changes += 1;
            }
        }
        Ok((changes, t0.elapsed().as_secs_f64()))
    }

    /// cdc-sync's decode + Parquet staging on a copy of the slot.
    async fn stage(&self, run: usize) -> Result<(u64, f64)> {
        let c = pg(&self.dsn()?).await?;
        let copy = format!("{}_copy{run}", self.slot());
        c.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1",
            &[&copy],
        )
        .await?;
        c.execute(
            "SELECT pg_copy_logical_replication_slot($1, $2)",
            &[&self.slot(), &copy],
        )
        .await?;
        let t0 = Instant::now();
        let (changes, _bytes) =
            cdc_sync::decode_and_stage(&self.pipeline()?, "local", "cdcbench", &copy, 50_000)
                .await?;
        let secs = t0.elapsed().as_secs_f64();
        c.execute("SELECT pg_drop_replication_slot($1)", &[&copy])
            .await?;
        Ok((changes, secs))
    }
}

async fn wait_flushed(c: &tokio_postgres::Client) -> Result<()> {
    let lsn: String = c
        .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
        .await?
        .get(0);
    for _ in 0..3000 {
        let done: bool = c
            .query_one(
                "SELECT pg_current_wal_flush_lsn() >= $1::text::pg_lsn",
                &[&lsn],
            )
            .await?
            .get(0);
        if done {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    bail!("WAL not flushed past {lsn}")
}

/// In a child process: cdc-sync run end to end; prints changes, seconds and peak RSS (KiB).
pub async fn child_run(label: &str) -> Result<()> {
    let s = scenario(label)?;
    let t0 = Instant::now();
    let summary = cdc_sync::run(&s.pipeline()?, &cdc_sync::Options::new("local")).await?;
    let secs = t0.elapsed().as_secs_f64();
    println!("{} {} {}", summary.changes, secs, peak_rss_kib());
    Ok(())
}

/// In a child process: prepares a scenario and stops (to profile `cdc-run` by hand).
pub async fn child_prepare(label: &str) -> Result<()> {
    scenario(label)?.prepare().await
}

/// In a child process: decode and stage a prepared scenario once (to profile it by hand).
pub async fn child_stage(label: &str) -> Result<()> {
    let (n, secs) = scenario(label)?.stage(0).await?;
    println!(
        "{n} changes in {secs:.2}s: {:.0} changes/s",
        n as f64 / secs
    );
    Ok(())
}

fn scenario(label: &str) -> Result<Scenario> {
    match label {
        "100k" => Ok(Scenario {
            label: "100k",
            changes: 100_000,
        }),
        "1m" => Ok(Scenario {
            label: "1m",
            changes: 1_000_000,
        }),
        other => bail!("no cdc scenario {other}"),
    }
}

fn run_child(label: &str) -> Result<(u64, f64, f64)> {
    let out = std::process::Command::new(std::env::current_exe()?)
        .args(["cdc-run", label])
        .output()?;
    if !out.status.success() {
        bail!(
            "cdc-sync run of {label} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let f: Vec<&str> = text.split_whitespace().collect();
    Ok((f[0].parse()?, f[1].parse()?, f[2].parse::<f64>()? / 1024.0))
}

/// Every replica must have exactly its table's rows after the run.
async fn verify(s: &Scenario) -> Result<()> {
    for (_, _, tables) in cdc_sync::status(&s.pipeline()?, "local", None).await? {
        for t in tables {
            if t.replica_rows != Some(t.postgres_rows as u64) {
                bail!(
                    "{}: {} rows in Postgres, {:?} in the replica",
                    t.table,
                    t.postgres_rows,
                    t.replica_rows
                );
            }
        }
    }
    Ok(())
}

/// Runs the cdc-sync measurements and adds their figures.
pub async fn measure(figures: &mut BTreeMap<String, f64>) -> Result<()> {
    let small = scenario("100k")?;
    let big = scenario("1m")?;
    small.prepare().await.context("preparing 100k changes")?;
    big.prepare().await.context("preparing 1M changes")?;
    let (mut peek, mut stage) = (vec![], vec![]);
    for run in 1..=RUNS {
        let (n, secs) = big.peek_raw().await?;
        peek.push(n as f64 / secs);
        let (m, ssecs) = big.stage(run).await?;
        if m != n {
            bail!("staged {m} changes but the slot holds {n}");
        }
        stage.push(m as f64 / ssecs);
        eprintln!(
            "bench: cdc run {run}/{RUNS}: peek {:.0} changes/s, decode+stage {:.0} changes/s ({n} changes)",
            n as f64 / secs,
            m as f64 / ssecs
        );
    }
    let (n_small, _, rss_small) = run_child("100k")?;
    verify(&small).await?;
    let (n_big, secs_big, rss_big) = run_child("1m")?;
    verify(&big).await?;
    eprintln!(
        "bench: cdc end to end: {n_big} changes in {secs_big:.0}s ({rss_big:.0} MiB); {n_small} changes ({rss_small:.0} MiB)"
    );
    let (peek, stage) = (median(peek), median(stage));
    figures.insert("cdc_peek_changes_per_s".into(), peek.round());
    figures.insert("cdc_stage_changes_per_s".into(), stage.round());
    figures.insert(
        "cdc_stage_ratio_to_peek".into(),
        (stage / peek * 100.0).round() / 100.0,
    );
    figures.insert(
        "cdc_end_to_end_changes_per_s".into(),
        (n_big as f64 / secs_big).round(),
    );
    figures.insert("cdc_peak_rss_mib".into(), rss_big.round());
    figures.insert("cdc_peak_rss_mib_100k_changes".into(), rss_small.round());
    Ok(())
}

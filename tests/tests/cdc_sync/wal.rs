//! The slot's retained WAL stays bounded while the published tables are idle and others
//! churn: the slot moves on without changes to read, and the idle table's changes still arrive.

use sluice_tests::cdc::{init, sync};
use sluice_tests::{write_flushed as write, TestEnv};

use super::continuity::{replica_rows, source_rows, table_t};

/// The slot's retained WAL as Postgres keeps it: from restart_lsn to the flushed end.
async fn retained(env: &TestEnv) -> i64 {
    env.pg_i64(&format!(
        "SELECT pg_wal_lsn_diff(pg_current_wal_flush_lsn(), restart_lsn)::int8 FROM pg_replication_slots WHERE slot_name = '{}'",
        env.slot()
    ))
    .await
}

#[tokio::test]
async fn wal_stays_bounded_while_published_tables_idle_and_others_churn() {
    let env = TestEnv::new().await;
    env.sql(&format!(
        "{} CREATE TABLE churn (id int PRIMARY KEY, pad text);",
        table_t()
    ))
    .await;
    let p = env.pipeline_with_cdc("t: { mode: full }", Some("tables: [t]"));
    init(&p).await;
    sync(&p).await;
    // 1 GB of WAL on a table outside the publication; the published table is untouched.
    let before = env
        .pg_i64("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::int8")
        .await;
    write(
        &env,
        "INSERT INTO churn SELECT g, repeat(md5(g::text), 28) FROM generate_series(1, 1000000) g",
    )
    .await;
    write(&env, "UPDATE churn SET pad = reverse(pad)").await;
    let churned = env
        .pg_i64("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::int8")
        .await
        - before;
    assert!(churned > 1 << 30, "churned {churned} bytes of WAL");
    let held = retained(&env).await;
    assert!(
        held > 1 << 30,
        "before the runs the slot holds the churn: {held}"
    );
    let first = sync(&p).await;
    assert_eq!(first.changes, 0);
    let second = sync(&p).await;
    let held = retained(&env).await;
    eprintln!(
        "churned {:.1} MiB; retained after run 1 {:.1} MiB, after run 2 {:.1} MiB (postgres: {:.1} MiB)",
        churned as f64 / 1048576.0,
        first.retained_wal_bytes as f64 / 1048576.0,
        second.retained_wal_bytes as f64 / 1048576.0,
        held as f64 / 1048576.0
    );
    assert!(held < 64 << 20, "retained {held} bytes after two runs");
    assert!(second.retained_wal_bytes < 64 << 20);
    // The run's health row says so too (the monitor's threshold reads it).
    let recorded: f64 = env
        .bq_scalar(&format!(
            "SELECT JSON_VALUE(details, '$.retained_wal_bytes') AS b FROM {} WHERE JSON_VALUE(details, '$.kind') = 'run' ORDER BY finished_at DESC LIMIT 1",
            env.bq_table("ops", "runs")
        ))
        .await
        .unwrap()
        .parse()
        .unwrap();
    assert!(recorded < (64 << 20) as f64, "ledger: {recorded}");
    // The idle table's changes still arrive after the slot moved on without them.
    write(&env, "UPDATE t SET v = 'after' WHERE id = 3").await;
    sync(&p).await;
    assert_eq!(replica_rows(&env).await, source_rows(&env.pg).await);
}

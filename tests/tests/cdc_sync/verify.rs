//! `cdc-sync status` proves replicas by content: per table, bucket checksums on both sides as
//! of one consistent point, narrowed down to the keys that differ. Replicas are made by
//! `cdc-sync run` (snapshot, then stream), then changed behind its back in BigQuery. Every
//! type is compared in `verify_types`.

use std::time::Instant;

use cdc_sync::{Difference, SourceStatus, TableStatus, Verdict};
use sluice::config::Pipeline;
use sluice_tests::cdc::{init, sync};
use sluice_tests::{write_flushed as write, TestEnv};

/// `cdc-sync status` of the test's one source (only `tables`, when given).
pub(super) async fn status(p: &Pipeline, tables: &[&str]) -> SourceStatus {
    let tables: Vec<String> = tables.iter().map(|t| t.to_string()).collect();
    let mut s = cdc_sync::check(p, "local", None, &tables)
        .await
        .expect("cdc-sync status");
    assert_eq!(s.len(), 1);
    let s = s.remove(0);
    for l in s.lines() {
        println!("{l}");
    }
    s
}

/// The report of table `name` (like `public.t`), asserted to be there.
pub(super) fn table<'a>(s: &'a SourceStatus, name: &str) -> &'a TableStatus {
    s.tables
        .iter()
        .find(|t| t.table == name)
        .unwrap_or_else(|| panic!("{name} is not in the report: {:?}", s.tables))
}

/// The differing keys of a table, as (key, difference).
pub(super) fn differing(s: &SourceStatus, name: &str) -> Vec<(String, Difference)> {
    match &table(s, name).verdict {
        Verdict::Differs(f) => {
            assert!(f.exact, "{f:?}");
            assert_eq!(f.differing as usize, f.first.len(), "{f:?}");
            f.first.clone()
        }
        v => panic!("{name}: expected a difference, got {v:?}"),
    }
}

/// The latest `verify` ledger row of a table's replica: (status, error, details).
pub(super) async fn ledger_row(
    env: &TestEnv,
    replica: &str,
) -> (String, Option<String>, serde_json::Value) {
    let r = env
        .bq_query(&format!(
            "SELECT status, error, TO_JSON_STRING(details) AS d FROM {} \
             WHERE worker = 'cdc-sync' AND JSON_VALUE(details, '$.kind') = 'verify' AND table_name = '{replica}' \
             ORDER BY finished_at DESC LIMIT 1",
            env.bq_table("ops", "runs")
        ))
        .await;
    (
        r.get(0, "status").expect("a verify row").to_string(),
        r.get(0, "error").map(String::from),
        serde_json::from_str(r.get(0, "d").expect("details")).expect("JSON details"),
    )
}

/// A million rows: equal in one query per side; one changed cell and one deleted row are found
/// with a few more.
#[tokio::test]
async fn a_million_rows_compare_in_a_few_queries() {
    let env = TestEnv::new().await;
    env.sql(
        "CREATE TABLE big (id bigint PRIMARY KEY, name text, amount numeric(12,2), at timestamptz, tags text[]);
         INSERT INTO big SELECT g, 'name ' || g, g * 0.25, '2024-01-01'::timestamptz + g * interval '1 second', ARRAY['t' || (g % 7)]
         FROM generate_series(1, 1000000) g;",
    )
    .await;
    write(&env, "ANALYZE big").await;
    let p = env.pipeline_with_cdc("", Some("tables: [big]"));
    init(&p).await;
    let started = Instant::now();
    sync(&p).await;
    println!(
        "replicated 1,000,000 rows in {:.1}s",
        started.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let s = status(&p, &[]).await;
    let t = table(&s, "public.big");
    println!(
        "equal check of 1,000,000 rows: {} + {} queries, {:.1}s (status {:.1}s)",
        t.queries.postgres,
        t.queries.bigquery,
        t.seconds,
        started.elapsed().as_secs_f64()
    );
    assert_eq!(t.verdict, Verdict::Equal);
    assert_eq!(
        (t.postgres_rows, t.replica_rows),
        (1_000_000, Some(1_000_000))
    );
    assert_eq!((t.queries.postgres, t.queries.bigquery), (1, 1));

    let replica = env.bq_table("src_replica", "big");
    env.bq_query(&format!(
        "UPDATE {replica} SET name = 'renamed' WHERE id = 123457"
    ))
    .await;
    let s = status(&p, &[]).await;
    let t = table(&s, "public.big");
    println!(
        "one changed cell: {} + {} queries, {:.1}s",
        t.queries.postgres, t.queries.bigquery, t.seconds
    );
    assert_eq!(
        differing(&s, "public.big"),
        [("123457".to_string(), Difference::Different)]
    );
    assert!(
        t.queries.postgres <= 3 && t.queries.bigquery <= 3,
        "{:?}",
        t.queries
    );

    env.bq_query(&format!("DELETE FROM {replica} WHERE id = 777"))
        .await;
    let s = status(&p, &[]).await;
    let t = table(&s, "public.big");
    println!(
        "one changed cell and one missing row: {} + {} queries, {:.1}s",
        t.queries.postgres, t.queries.bigquery, t.seconds
    );
    assert_eq!(
        differing(&s, "public.big"),
        [
            ("777".to_string(), Difference::Missing),
            ("123457".to_string(), Difference::Different)
        ]
    );
    assert_eq!(
        (t.postgres_rows, t.replica_rows),
        (1_000_000, Some(999_999))
    );
    assert!(
        t.queries.postgres <= 3 && t.queries.bigquery <= 3,
        "{:?}",
        t.queries
    );
}

/// Changes committed but not yet merged make their table pending, not different; the other
/// tables are still compared. Once a run merged them, all are equal.
#[tokio::test]
async fn tables_with_changes_in_flight_are_pending() {
    let env = TestEnv::new().await;
    env.sql(
        "CREATE TABLE a (id int PRIMARY KEY, v text);
         CREATE TABLE b (id int PRIMARY KEY, v text);
         INSERT INTO a SELECT g, 'a' || g FROM generate_series(1, 100) g;
         INSERT INTO b SELECT g, 'b' || g FROM generate_series(1, 100) g;",
    )
    .await;
    let p = env.pipeline_with_cdc("", Some("tables: [a, b]"));
    init(&p).await;
    sync(&p).await;
    write(
        &env,
        "UPDATE a SET v = 'changed' WHERE id <= 3; DELETE FROM a WHERE id = 50; INSERT INTO a VALUES (101, 'new');",
    )
    .await;
    let s = status(&p, &[]).await;
    let a = table(&s, "public.a");
    assert_eq!(a.verdict, Verdict::Pending(Some(5)));
    assert_eq!((a.postgres_rows, a.replica_rows), (100, Some(100)));
    assert_eq!(table(&s, "public.b").verdict, Verdict::Equal);
    assert!(s.differing().is_empty());
    let (st, _, details) = ledger_row(&env, "a").await;
    assert_eq!(st, "skipped");
    assert_eq!(details["verdict"], "pending");
    assert_eq!(details["pending_changes"], 5);
    assert_eq!(ledger_row(&env, "b").await.0, "success");

    sync(&p).await;
    let s = status(&p, &[]).await;
    assert_eq!(table(&s, "public.a").verdict, Verdict::Equal);
    assert_eq!(table(&s, "public.b").verdict, Verdict::Equal);
}

/// `--table` checks only the tables named; a table without a primary key is reported, not
/// compared; the command exits non-zero on a difference and says which table.
#[tokio::test]
async fn table_filter_keyless_tables_and_the_command_line() {
    let env = TestEnv::new().await;
    env.sql(
        "CREATE TABLE keyed (id int PRIMARY KEY, v text);
         CREATE TABLE events (at timestamptz, what text);
         INSERT INTO keyed SELECT g, 'v' || g FROM generate_series(1, 50) g;
         INSERT INTO events SELECT now(), 'e' || g FROM generate_series(1, 7) g;",
    )
    .await;
    let cdc = "tables: [keyed, events]";
    let p = env.pipeline_with_cdc("", Some(cdc));
    init(&p).await;
    sync(&p).await;

    let s = status(&p, &["events"]).await;
    assert_eq!(s.tables.len(), 1);
    let e = table(&s, "public.events");
    assert_eq!(e.verdict, Verdict::NoKey);
    assert_eq!((e.postgres_rows, e.replica_rows), (7, Some(7)));
    assert_eq!(e.queries.postgres + e.queries.bigquery, 0);
    let s = status(&p, &["public.keyed"]).await;
    assert_eq!(s.tables.len(), 1);
    assert_eq!(table(&s, "public.keyed").verdict, Verdict::Equal);
    let e = cdc_sync::check(&p, "local", None, &["nope".to_string()])
        .await
        .expect_err("a table not in the publication");
    assert!(
        e.to_string()
            .contains("public.nope is not in the publication of any CDC source"),
        "{e}"
    );

    // The command line: exit status and output.
    env.bq_query(&format!(
        "UPDATE {} SET v = 'x' WHERE id = 3",
        env.bq_table("src_replica", "keyed")
    ))
    .await;
    let config = env.scratch_dir().join("pipeline.yaml");
    std::fs::write(&config, env.pipeline_yaml("", Some(cdc), "")).unwrap();
    let exe = sluice_tests::binary("cdc-sync");
    let cli = |tables: &[&str]| {
        let mut c = std::process::Command::new(&exe);
        c.args([
            "status",
            "--target",
            "local",
            "--log-format",
            "json",
            "--config",
        ])
        .arg(&config)
        .env(env.dsn_var(), env.stack.dsn(&env.db));
        for t in tables {
            c.args(["--table", t]);
        }
        c.output().expect("cdc-sync status")
    };
    let out = cli(&["events"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("public.events: no primary key"), "{stdout}");
    let out = cli(&[]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.contains("public.keyed: key 3: values differ"),
        "{stdout}"
    );
    assert!(
        stderr.contains("public.keyed (1 differing key)"),
        "{stderr}"
    );
}

/// While another session streams from the slot (here `pg_recvlogical`, as a running
/// `cdc-sync run` would), in-flight changes cannot be told from differences: after a few tries
/// the tables are reported as not compared, and the ledger row says why.
#[tokio::test]
async fn a_slot_held_by_another_session_is_reported() {
    let env = TestEnv::new().await;
    env.sql(
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 10) g;",
    )
    .await;
    let p = env.pipeline_with_cdc("", Some("tables: [t]"));
    init(&p).await;
    sync(&p).await;
    let bin = std::path::PathBuf::from(std::env::var("SLUICE_PG_BIN").expect(
        "SLUICE_PG_BIN is not set: eval \"$(scripts/local-stack.sh env)\" (make test does)",
    ));
    let mut holder = tokio::process::Command::new(bin.join("pg_recvlogical"))
        .args(["--dbname", &env.stack.dsn(&env.db), "--slot", &env.slot()])
        .args(["--start", "--file", "/dev/null", "--no-loop"])
        .args(["--option", "proto_version=1", "--option"])
        .arg(format!("publication_names={}", env.slot()))
        .kill_on_drop(true)
        .spawn()
        .expect("pg_recvlogical");
    let mut active = false;
    for _ in 0..100 {
        active = env
            .pg
            .query_one(
                "SELECT active FROM pg_replication_slots WHERE slot_name = $1",
                &[&env.slot()],
            )
            .await
            .unwrap()
            .get(0);
        if active {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(active, "pg_recvlogical holds the slot");
    let started = Instant::now();
    let s = status(&p, &[]).await;
    holder.start_kill().unwrap();
    let _ = holder.wait().await;
    let t = table(&s, "public.t");
    assert_eq!(t.verdict, Verdict::SlotBusy);
    assert!(started.elapsed().as_secs() >= 8, "tried a few times");
    assert!(s
        .lines()
        .iter()
        .any(|l| l.contains("public.t: slot in use by another session")));
    let (st, err, _) = ledger_row(&env, "t").await;
    assert_eq!(st, "skipped");
    assert_eq!(
        err.as_deref(),
        Some("not compared: the slot was in use by another session throughout")
    );

    // Released, the slot is read again.
    let s = status(&p, &[]).await;
    assert_eq!(table(&s, "public.t").verdict, Verdict::Equal);
}

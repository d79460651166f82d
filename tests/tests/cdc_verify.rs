//! `cdc-sync status` proves replicas by content: per table, bucket checksums on both sides as
//! of one consistent point, narrowed down to the keys that differ. Replicas are made by
//! `cdc-sync run` (snapshot, then stream), then changed behind its back in BigQuery.

use std::time::Instant;

use cdc_sync::{Difference, SourceStatus, TableStatus, Verdict};
use sluice::config::Pipeline;
use sluice_tests::cdc::{init, sync};
use sluice_tests::{write_flushed as write, TestEnv};

/// `cdc-sync status` of the test's one source (only `tables`, when given).
async fn status(p: &Pipeline, tables: &[&str]) -> SourceStatus {
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

fn table<'a>(s: &'a SourceStatus, name: &str) -> &'a TableStatus {
    s.tables
        .iter()
        .find(|t| t.table == name)
        .unwrap_or_else(|| panic!("{name} is not in the report: {:?}", s.tables))
}

/// The differing keys of a table, as (key, difference).
fn differing(s: &SourceStatus, name: &str) -> Vec<(String, Difference)> {
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
async fn ledger_row(env: &TestEnv, replica: &str) -> (String, Option<String>, serde_json::Value) {
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

const TYPES_TABLE: &str = r#"
CREATE TYPE mood AS ENUM ('sad', 'happy');
CREATE TABLE typed (
  id int PRIMARY KEY,
  i2 smallint, i8 bigint, o oid,
  n numeric(12,2), nb numeric(30,10), nw numeric, ns numeric(80,3),
  f8 double precision, f4 real,
  txt text, vc varchar(20), ch char(5), en mood,
  b boolean,
  d date, ts timestamp, tstz timestamptz, tm time,
  iv interval, u uuid, ip inet, net cidr,
  jb jsonb, js json, by bytea,
  arr integer[], tarr text[], narr numeric(10,2)[], tsarr timestamptz[], jarr jsonb[],
  body text
);
ALTER TABLE typed ALTER COLUMN body SET STORAGE EXTERNAL;"#;

/// A row with every mapped type; `id` picks the edge cases.
fn typed_row(id: i32) -> String {
    let pick = |i: i32, v: &[&str]| v[(i as usize) % v.len()].to_string();
    format!(
        "({id}, {i2}, {i8}, {id}, {n}, {nb}, {nw}, {ns}, {f8}, {f4}, {txt}, {vc}, {ch}, {en}, {b},
          {d}, {ts}, {tstz}, {tm}, {iv}, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a{id:02}', {ip}, '10.{id}.0.0/16',
          {jb}, {js}, {by}, {arr}, {tarr}, {narr}, {tsarr}, {jarr}, repeat(md5('{id}'), 300))",
        i2 = -32768 + id,
        i8 = i64::MIN + id as i64,
        n = pick(id, &["NULL", "1.20", "-0.50", "100.00", "0.00"]),
        nb = pick(id, &["12345678901234567890.1234567890", "-0.0000000100", "NULL"]),
        // The emulator loads BIGNUMERIC(76, 38) through a float: values it keeps exactly.
        nw = pick(id, &["0.500000", "-1e-15", "NULL", "-2"]),
        ns = pick(id, &["1.500", "NULL", "-99999999999999999999999999999999999999999999.001"]),
        f8 = pick(id, &["'NaN'", "'Infinity'", "'-Infinity'", "0.1", "-1.5e300", "NULL", "5e-324", "0", "123456789.123456789"]),
        f4 = pick(id, &["0.1", "'NaN'", "NULL", "'-Infinity'", "3.4e38", "1.17549435e-38"]),
        txt = pick(id, &["'Zoë 山田 ✓'", "''", "NULL", r"'a|b,c\d \N'", "'\\N'"]),
        vc = pick(id, &["'x'", "NULL", "''"]),
        ch = pick(id, &["'ab'", "NULL", "'abcde'", "''"]),
        en = pick(id, &["'happy'", "NULL", "'sad'"]),
        b = pick(id, &["true", "false", "NULL"]),
        d = pick(id, &["'2024-02-29'", "'infinity'", "'-infinity'", "NULL", "'0001-01-01'"]),
        ts = pick(id, &["'2024-01-02 03:04:05.678901'", "'infinity'", "'-infinity'", "NULL", "'1969-12-31 23:59:59.999999'"]),
        tstz = pick(id, &["'2024-01-02 03:04:05.678901+05'", "'-infinity'", "NULL", "'infinity'", "'1999-12-31 23:59:59.999999-11'"]),
        tm = pick(id, &["'23:59:59.999999'", "'24:00'", "NULL", "'00:00'"]),
        iv = pick(id, &["'1 year 2 mons 3 days 04:05:06.5'", "'-1 day +02:00'", "NULL", "'0'", "'-14 mons -00:00:00.000001'"]),
        ip = pick(id, &["'192.168.0.1'", "'10.0.0.0/8'", "'2001:db8::1'", "NULL", "'::1.2.3.4'", "'::ffff:10.0.0.1/120'"]),
        jb = pick(id, &[
            r#"'{"k": "Zoë", "n": null, "id": 7, "nested": {"b": [1.10, 2, 1e2, 100.0, 12345678901234567890123, -2.5e-7, true], "a": "x"}}'"#,
            r#"'[1, {"x": [true, null]}, "s", -0]'"#,
            "NULL",
            r#"'{"aa": 1, "b": {"dd": {}, "c": []}, "q": "say \"hi\" \\ / |,"}'"#,
            "'3.25'",
            r#"'"just a string"'"#,
        ]),
        js = pick(id, &[r#"'{"b": 1, "a": [1E2, 2.50]}'"#, "NULL", r#"'{ "z" : "Zoë" , "y":null }'"#]),
        by = pick(id, &[r"'\x00ff10'", "NULL", r"'\x'"]),
        arr = pick(id, &["'{1,NULL,3}'", "'{}'", "NULL", "'{NULL}'"]),
        tarr = pick(id, &[r#"'{"a b",NULL,"c|d","e,f",""}'"#, "NULL", "'{}'"]),
        narr = pick(id, &["'{1.50,NULL,-2.00}'", "NULL"]),
        tsarr = pick(id, &["'{2024-01-01 00:00:00+00,infinity}'", "NULL"]),
        jarr = pick(id, &[r#"ARRAY['{"b": 1, "a": 2.0}'::jsonb, NULL, '[]']"#, "NULL"]),
    )
}

/// Every mapped type, through a snapshot and then the stream, compares equal; a cell changed
/// in BigQuery behind cdc-sync's back is found for each of a few types, and named by its key.
#[tokio::test]
async fn every_type_compares_equal_and_changed_cells_are_named() {
    let env = TestEnv::new().await;
    env.sql(TYPES_TABLE).await;
    let rows: Vec<String> = (1..=12).map(typed_row).collect();
    write(
        &env,
        &format!("INSERT INTO typed VALUES {}", rows.join(",")),
    )
    .await;
    let p = env.pipeline_with_cdc("", Some("tables: [typed]"));
    init(&p).await;
    sync(&p).await;
    let s = status(&p, &[]).await;
    assert_eq!(table(&s, "public.typed").verdict, Verdict::Equal);

    // Then through the stream: inserts, updates that leave the TOASTed body unchanged, NULL ↔
    // value flips, deletes (soft: the replica keeps them, flagged).
    let more: Vec<String> = (13..=24).map(typed_row).collect();
    write(&env, &format!(
        "INSERT INTO typed VALUES {};
         UPDATE typed SET n = 99999999.90, nb = NULL, f8 = '-Infinity', jb = '{{\"z\": [{{\"y\": 1.50}}], \"a\": 1}}' WHERE id = 1;
         UPDATE typed SET txt = NULL, tarr = '{{x,NULL}}', tstz = '-infinity', ch = 'a' WHERE id = 2;
         UPDATE typed SET arr = NULL, js = '{{\"dup\": 1, \"dup\": 2}}', d = '-infinity', iv = '3 days' WHERE id = 3;
         DELETE FROM typed WHERE id IN (4, 14);",
        more.join(",")
    ))
    .await;
    let summary = sync(&p).await;
    assert!(summary.changes >= 16, "{summary:?}");
    let s = status(&p, &[]).await;
    let t = table(&s, "public.typed");
    assert_eq!(t.verdict, Verdict::Equal, "after the stream");
    assert_eq!((t.postgres_rows, t.replica_rows), (22, Some(22)));
    assert_eq!((t.queries.postgres, t.queries.bigquery), (1, 1));
    let (st, err, details) = ledger_row(&env, "typed").await;
    assert_eq!((st.as_str(), err), ("success", None));
    assert_eq!(details["verdict"], "equal");

    // Cells changed in BigQuery, one type each; a row hidden by a soft delete; a deleted row
    // brought back to life.
    let replica = env.bq_table("src_replica", "typed");
    for (id, set) in [
        (5, "`by` = b'\\x01'"),
        (6, "jb = PARSE_JSON('{\"k\": \"changed\"}')"),
        (7, "ch = 'ab'"),
        // (The emulator refuses an array literal in SET.)
        (8, "arr = ARRAY_CONCAT(arr, [2])"),
        (9, "tstz = TIMESTAMP_ADD(tstz, INTERVAL 1 MICROSECOND)"),
        (10, "n = 0.01"),
        (12, "f8 = f8 * 1.0000000001"),
        (15, "_sluice_deleted = TRUE"),
        (17, "txt = ''"),
        (4, "_sluice_deleted = FALSE"),
    ] {
        env.bq_query(&format!("UPDATE {replica} SET {set} WHERE id = {id}"))
            .await;
    }
    let s = status(&p, &[]).await;
    let expected: Vec<(String, Difference)> = [
        (4, Difference::Extra),
        (5, Difference::Different),
        (6, Difference::Different),
        (7, Difference::Different),
        (8, Difference::Different),
        (9, Difference::Different),
        (10, Difference::Different),
        (12, Difference::Different),
        (15, Difference::Missing),
        (17, Difference::Different),
    ]
    .into_iter()
    .map(|(k, d)| (k.to_string(), d))
    .collect();
    assert_eq!(differing(&s, "public.typed"), expected);
    // One failed row for the table's replica, which the monitor alerts on until a later
    // check finds it equal or a resync replaces it.
    let (st, err, details) = ledger_row(&env, "typed").await;
    assert_eq!(st, "failed");
    let err = err.unwrap_or_default();
    assert!(
        err.starts_with("the replica of public.typed differs from Postgres: 10 keys, first 4 (")
            && err.ends_with("run `cdc-sync resync --table public.typed`"),
        "{err}"
    );
    assert_eq!(details["differing"], 10);
    assert_eq!(details["first_keys"][0]["key"], "4");
    assert_eq!(details["first_keys"][0]["difference"], "extra");
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
    let config = env.lake_bucket_dir().with_extension("yaml");
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
    let _ = std::fs::remove_file(config);
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

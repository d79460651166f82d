//! A run that crashes between any two steps, or is killed during a snapshot, then runs again:
//! the replica is the same as if it never stopped.

use cdc_sync::CrashPoint;
use rand::{Rng, SeedableRng};
use sluice_tests::cdc::{init, sync, sync_with};
use sluice_tests::{write_flushed as write, TestEnv};

use super::assert_replica_matches;

/// Aggregates (SQL both Postgres and BigQuery take, over the table's columns) of a source table
/// and of its replica (every row: for hard deletes) are equal.
async fn assert_same_totals(env: &TestEnv, table: &str, aggregates: &[&str]) {
    for agg in aggregates {
        let pg = env
            .pg_i64(&format!("SELECT coalesce({agg}, 0)::int8 FROM {table}"))
            .await
            .to_string();
        let bq = env
            .bq_scalar(&format!(
                "SELECT CAST(IFNULL({agg}, 0) AS STRING) AS v FROM {}",
                env.bq_table("src_replica", table)
            ))
            .await;
        assert_eq!(bq.as_deref(), Some(pg.as_str()), "{agg} of {table}");
    }
}

#[tokio::test]
async fn crash_between_any_two_steps_then_rerun_gives_the_same_replica() {
    let env = TestEnv::new().await;
    env.sql(
        "CREATE TABLE a (id int PRIMARY KEY, v int, s text, m numeric(12,2), t timestamptz, ok bool);
         CREATE TABLE b (k1 int, k2 text, v int, PRIMARY KEY (k1, k2));
         CREATE TABLE c (id bigint PRIMARY KEY, tags text[], doc jsonb);
         CREATE SEQUENCE cseq START 100000;
         -- d: TOASTed text (stored out of line) under keys that flip sign, alone or with other
         -- columns, once or twice in a transaction, while the big columns stay unchanged.
         CREATE TABLE d (id bigint PRIMARY KEY, n int, body text, note text);
         ALTER TABLE d ALTER COLUMN body SET STORAGE EXTERNAL;
         ALTER TABLE d ALTER COLUMN note SET STORAGE EXTERNAL;
         CREATE SEQUENCE dseq;
         INSERT INTO d SELECT nextval('dseq'), 0, repeat(md5(g::text), 300), repeat(md5((-g)::text), 250) FROM generate_series(1, 40) g;",
    )
    .await;
    let p = env.pipeline_with_cdc(
        "a: { mode: full }\nb: { mode: full }\nc: { mode: full }\nd: { mode: full }",
        Some("tables: [a, b, c, d]\ndeletes: hard\nbatch_changes: 1500"),
    );
    init(&p).await;
    sync(&p).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(20261123);
    let crashes = [
        Some(CrashPoint::AfterLoad),
        None,
        Some(CrashPoint::AfterMerge),
        Some(CrashPoint::PositionRecorded),
        None,
    ];
    for round in 0..8 {
        // A few transactions of varying size over the three tables.
        let mut sql = String::new();
        for _ in 0..rng.random_range(3..12) {
            sql.push_str("BEGIN;");
            for _ in 0..rng.random_range(1..80) {
                let id = rng.random_range(1..120);
                let v: i32 = rng.random_range(-1000..1000);
                sql.push_str(&match rng.random_range(0..10) {
                    0..=5 => format!(
                        "INSERT INTO a VALUES ({id}, {v}, 's{v}', {v}.{c:02}, now() - interval '{v} min', {b}) ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v, s = NULL;
                         INSERT INTO b VALUES ({k}, 'k{v}', {v}) ON CONFLICT DO NOTHING;
                         INSERT INTO c VALUES ({id}, ARRAY['x{v}', NULL], '{{\"v\": {v}}}') ON CONFLICT (id) DO UPDATE SET tags = ARRAY[]::text[];
                         {d}",
                        c = v.rem_euclid(100),
                        b = v % 2 == 0,
                        k = id % 7,
                        d = if id % 4 == 0 {
                            format!("INSERT INTO d VALUES (nextval('dseq'), {v}, repeat(md5('{v}'), 300), repeat(md5('n{v}'), 250));")
                        } else {
                            String::new()
                        },
                    ),
                    6..=8 => format!(
                        "UPDATE a SET v = v + 1, m = -m, ok = NOT ok WHERE id % 10 = {d};
                         UPDATE b SET v = {v} WHERE k1 = {k};
                         UPDATE c SET id = nextval('cseq') WHERE id = {id};
                         UPDATE d SET id = -id WHERE abs(id) % 5 = {d5};
                         UPDATE d SET n = n + 1 WHERE abs(id) % 7 = {d7};
                         UPDATE d SET id = -id, n = {v} WHERE abs(id) % 9 = {d9};
                         {body}",
                        d = id % 10,
                        k = id % 7,
                        d5 = id % 5,
                        d7 = id % 7,
                        d9 = id % 9,
                        body = if v % 5 == 0 {
                            format!("UPDATE d SET body = 'short {v}' WHERE abs(id) % 11 = {};", id % 11)
                        } else {
                            String::new()
                        },
                    ),
                    _ => format!(
                        "DELETE FROM a WHERE id = {id}; DELETE FROM b WHERE k1 = {k} AND v < 0; DELETE FROM c WHERE id % 13 = {d};
                         DELETE FROM d WHERE abs(id) % 23 = {d23};",
                        k = id % 7,
                        d = id % 13,
                        d23 = id % 23,
                    ),
                });
            }
            sql.push_str("COMMIT;");
        }
        write(&env, &sql).await;
        let crash = crashes[round % crashes.len()];
        if let Some(point) = crash {
            let e = sync_with(&p, |o| {
                o.crash = Some(point);
                o.once = true;
            })
            .await
            .expect_err("the injected crash");
            assert!(e.to_string().contains("injected crash"), "{e}");
        }
        sync(&p).await;
        // Cheap checks after every round, so a batch lost and later overwritten still shows.
        assert_same_totals(&env, "a", &["count(*)", "sum(v)", "sum(length(s))"]).await;
        assert_same_totals(
            &env,
            "d",
            &[
                "count(*)",
                "sum(n)",
                "sum(length(body))",
                "sum(length(note))",
            ],
        )
        .await;
    }
    for (t, key) in [("a", "id"), ("c", "id"), ("d", "id")] {
        assert_replica_matches(&env, &p, t, key).await;
    }
    // b has a two-column key: compare through a text key.
    let n = env.pg_i64("SELECT count(*) FROM b").await as u64;
    assert_eq!(env.bq_count("src_replica", "b", "").await, n);
    let pg_sum = env
        .pg_i64("SELECT coalesce(sum(v * k1), 0)::int8 FROM b")
        .await;
    let bq = env
        .bq_scalar(&format!(
            "SELECT CAST(IFNULL(SUM(v * k1), 0) AS STRING) AS s FROM {}",
            env.bq_table("src_replica", "b")
        ))
        .await;
    assert_eq!(bq.as_deref(), Some(pg_sum.to_string().as_str()));
    // And `status` proves every replica equal by content.
    let checked = cdc_sync::check(&p, "local", None, &[])
        .await
        .expect("status");
    for t in &checked[0].tables {
        assert_eq!(t.verdict, cdc_sync::Verdict::Equal, "{}", t.table);
    }
    assert_eq!(checked[0].tables.len(), 4);
}

/// A table of 20,000 rows, `name`, with a few types.
async fn big_table(env: &TestEnv, name: &str) {
    env.sql(&format!(
        "CREATE TABLE {name} (id int PRIMARY KEY, v text, n numeric(12,2), at timestamptz, tags text[]);
         INSERT INTO {name} SELECT g, md5(g::text), g * 1.25, '2024-01-01'::timestamptz + g * interval '1 min', ARRAY[g::text]
         FROM generate_series(1, 20000) g;"
    ))
    .await;
}

#[tokio::test]
async fn a_snapshot_stopped_at_any_step_is_taken_again_in_full() {
    let env = TestEnv::new().await;
    for i in 0..CrashPoint::SNAPSHOT.len() {
        big_table(&env, &format!("big{i}")).await;
    }
    let tables: Vec<String> = (0..CrashPoint::SNAPSHOT.len())
        .map(|i| format!("big{i}: {{ mode: full }}"))
        .collect();
    let p = env.pipeline_with_cdc(&tables.join("\n"), Some("tables: [big0]"));
    init(&p).await;
    for (i, point) in CrashPoint::SNAPSHOT.into_iter().enumerate() {
        let t = format!("big{i}");
        if i > 0 {
            // Each boundary on a table new to the publication, as a team adds one.
            write(
                &env,
                &format!("ALTER PUBLICATION {} ADD TABLE {t}", env.slot()),
            )
            .await;
        }
        let e = sync_with(&p, |o| o.crash = Some(point))
            .await
            .expect_err("the injected crash");
        assert!(e.to_string().contains("injected crash"), "{point:?}: {e}");
        // Rows change while the table waits for its snapshot.
        write(
            &env,
            &format!(
                "UPDATE {t} SET v = 'changed' WHERE id <= 10; DELETE FROM {t} WHERE id = 20000"
            ),
        )
        .await;
        let s = sync(&p).await;
        assert_eq!(
            s.snapshots,
            vec![(format!("public.{t}"), 19_999)],
            "{point:?}: the rerun snapshots the table again"
        );
        assert_replica_matches(&env, &p, &t, "id").await;
        // And the next run leaves it alone.
        assert!(sync(&p).await.snapshots.is_empty());
    }
}

/// `cdc-sync run` killed (SIGKILL) at moments around a snapshot's load, as the issue found it:
/// the next run must snapshot the table again, and land every row.
#[tokio::test]
async fn a_run_killed_during_a_snapshot_then_rerun_lands_every_row() {
    use tokio::io::AsyncBufReadExt;
    let env = TestEnv::new().await;
    let delays_ms = [0u64, 150, 300, 600];
    for i in 0..delays_ms.len() {
        big_table(&env, &format!("big{i}")).await;
    }
    let tables: Vec<String> = (0..delays_ms.len())
        .map(|i| format!("big{i}: {{ mode: full }}"))
        .collect();
    let tables = tables.join("\n");
    let config = env.scratch_dir().join("pipeline.yaml");
    std::fs::write(
        &config,
        env.pipeline_yaml(&tables, Some("tables: [big0]"), ""),
    )
    .unwrap();
    let exe = sluice_tests::binary("cdc-sync");
    let cli = |cmd: &str| {
        let mut c = tokio::process::Command::new(&exe);
        c.args([cmd, "--target", "local", "--log-format", "json", "--config"])
            .arg(&config)
            .env(env.dsn_var(), env.stack.dsn(&env.db))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        c
    };
    let p = env.pipeline_with_cdc(&tables, Some("tables: [big0]"));
    init(&p).await;
    for (i, delay) in delays_ms.into_iter().enumerate() {
        let t = format!("big{i}");
        if i > 0 {
            write(
                &env,
                &format!("ALTER PUBLICATION {} ADD TABLE {t}", env.slot()),
            )
            .await;
        }
        let mut child = cli("run").spawn().expect("cdc-sync run");
        let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let created = tokio::time::timeout(std::time::Duration::from_secs(60), async {
            while let Some(l) = lines.next_line().await.unwrap() {
                if l.contains("replica table created") {
                    return true;
                }
            }
            false
        })
        .await
        .expect("cdc-sync logs `replica table created` within 60 s");
        assert!(created, "cdc-sync ended before creating the replica of {t}");
        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
        child.start_kill().unwrap();
        child.wait().await.unwrap();
        let out = cli("run").output().await.unwrap();
        assert!(
            out.status.success(),
            "rerun after a kill {delay} ms into the snapshot: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_replica_matches(&env, &p, &t, "id").await;
    }
}

//! cdc-sync end to end: Postgres slot → lake → staging → MERGE into replicas in the emulator.
//!
//! Replicas are checked against the source row for row and column by column: pg-copy (whose
//! values are checked against Postgres in its own tests) copies the source tables next to the
//! replicas, and every column of every row is compared in BigQuery.

use cdc_sync::CrashPoint;
use rand::{Rng, SeedableRng};
use sluice::config::Pipeline;
use sluice_tests::cdc::{init, sync, sync_with};
use sluice_tests::{write_flushed as write, TestEnv};

/// Copies `table` with pg-copy into `src` and compares it with its replica: every column of
/// every live row (`_sluice_deleted` rows do not count as live).
async fn assert_replica_matches(env: &TestEnv, p: &Pipeline, table: &str, key: &str) {
    let mut o = pg_copy::Options::new("local");
    o.tables = vec![table.to_string()];
    let s = pg_copy::run(p, &o).await.expect("pg-copy");
    assert_eq!(s.failed(), 0, "pg-copy of {table}: {:?}", s.units[0].error);
    // (column, comparable expression over alias `x`): the emulator's TO_JSON_STRING renders
    // BYTES from a subquery differently, so BYTES compare through base64.
    let cols: Vec<(String, String)> = env
        .pg
        .query(
            "SELECT attname::text, atttypid = 'bytea'::regtype FROM pg_attribute WHERE attrelid = $1::text::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            &[&table],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let c: String = r.get(0);
            let bytes: bool = r.get(1);
            let e = if bytes {
                format!("TO_JSON_STRING(TO_BASE64(x.`{c}`))")
            } else {
                format!("TO_JSON_STRING(x.`{c}`)")
            };
            (c, e)
        })
        .collect();
    let same = |c: &str, e: &str| {
        format!(
            "{} = {} AS `same_{c}`",
            e.replace("x.", "a."),
            e.replace("x.", "b.")
        )
    };
    let all: Vec<String> = cols
        .iter()
        .map(|(c, e)| {
            same(c, e)
                .split(" AS ")
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    let src = env.bq_table("src", table);
    let rep = env.bq_table("src_replica", table);
    let live = format!("(SELECT * FROM {rep} WHERE NOT IFNULL(_sluice_deleted, FALSE))");
    let sql = format!(
        "SELECT CAST(COALESCE(a.`{key}`, b.`{key}`) AS STRING) AS k, a.`{key}` IS NULL AS missing_in_source, b.`{key}` IS NULL AS missing_in_replica, {cols}
         FROM {src} a FULL OUTER JOIN {live} b ON a.`{key}` = b.`{key}`
         WHERE a.`{key}` IS NULL OR b.`{key}` IS NULL OR NOT ({all})
         ORDER BY 1 LIMIT 20",
        cols = cols
            .iter()
            .map(|(c, e)| same(c, e))
            .collect::<Vec<_>>()
            .join(", "),
        all = all.join(" AND "),
    );
    let diff = env.bq_query(&sql).await;
    assert!(
        diff.rows.is_empty(),
        "replica of {table} differs from the source:\ncolumns {:?}\n{:#?}",
        diff.columns,
        diff.rows
    );
    let n_src = env.pg_i64(&format!("SELECT count(*) FROM {table}")).await as u64;
    let n_rep = env
        .bq_count(
            "src_replica",
            table,
            "WHERE NOT IFNULL(_sluice_deleted, FALSE)",
        )
        .await;
    assert_eq!(n_src, n_rep, "live rows of {table}");
}

/// Aggregates (SQL both Postgres and BigQuery take, over the table's columns) of a source table
/// and of its replica (every row: for hard deletes) are equal.
async fn assert_same_totals(env: &TestEnv, table: &str, aggregates: &[&str]) {
    for agg in aggregates {
        let pg = env
            .pg_i64(&format!("SELECT coalesce({agg}, 0)::int8 FROM {table}"))
            .await
            .to_string();
        let bq = env
            .bq_query(&format!(
                "SELECT CAST(IFNULL({agg}, 0) AS STRING) AS v FROM {}",
                env.bq_table("src_replica", table)
            ))
            .await;
        assert_eq!(bq.get(0, "v"), Some(pg.as_str()), "{agg} of {table}");
    }
}

const TYPES_TABLE: &str = r#"
CREATE TYPE mood AS ENUM ('sad', 'happy');
CREATE TABLE typed (
  id int PRIMARY KEY,
  i2 smallint, i8 bigint,
  n numeric(12,2), nb numeric(30,10), nw numeric,
  f8 double precision,
  txt text, ch char(5),
  b boolean,
  d date, ts timestamp, tstz timestamptz, tm time,
  iv interval, u uuid,
  jb jsonb, by bytea, ip inet,
  arr integer[], tarr text[],
  en mood
);"#;

fn typed_row(id: i32) -> String {
    format!(
        "({id}, {i2}, {i8}, {n}, 12345678901234567890.1234567891, {nw}, {f8}, 'Zoë 山田 ✓ {id}', 'ab', {b},
          '2024-02-29', '2024-01-02 03:04:05.678901', '2024-01-02 03:04:05.678901+0{tz}', '23:59:59.999999',
          '1 year 2 mons 3 days 04:05:06.5', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
          '{{\"k\": \"Zoë\", \"n\": null, \"id\": {id}}}', '\\x00ff10', '192.168.0.1',
          '{{1,NULL,3}}', '{{\"a b\",\"c\"}}', 'happy')",
        i2 = -32768 + id,
        i8 = i64::MIN + id as i64,
        n = if id % 2 == 0 { "NULL".to_string() } else { format!("{id}.25") },
        nw = if id % 3 == 0 { "-1e-30".to_string() } else { format!("0.{id}") },
        f8 = if id % 4 == 0 { "'-Infinity'".to_string() } else { format!("{id}.5e10") },
        b = id % 2 == 0,
        tz = id % 9,
    )
}

#[tokio::test]
async fn snapshot_then_stream_every_type() {
    let env = TestEnv::new().await;
    env.sql(TYPES_TABLE).await;
    let rows: Vec<String> = (1..=5).map(typed_row).collect();
    write(
        &env,
        &format!("INSERT INTO typed VALUES {}", rows.join(",")),
    )
    .await;
    let p = env.pipeline_with_cdc("typed: { mode: full }", Some("tables: [typed]"));
    init(&p).await;
    // The first run snapshots the existing rows.
    let s = sync(&p).await;
    assert_eq!(s.snapshots, vec![("public.typed".to_string(), 5)]);
    assert_replica_matches(&env, &p, "typed", "id").await;

    // Then every kind of change streams: inserts, NULL ↔ value flips, array and JSON edits,
    // timestamps in other zones, numeric edges, deletes.
    let rows: Vec<String> = (6..=9).map(typed_row).collect();
    write(&env, &format!(
        "INSERT INTO typed VALUES {};
         UPDATE typed SET n = 99999999.99, nb = -0.0000000001, nw = NULL, txt = NULL, arr = '{{}}', tarr = NULL WHERE id = 1;
         UPDATE typed SET n = NULL, txt = 'back', jb = '[1, {{\"x\": [true, null]}}]', tstz = '1999-12-31 23:59:59.999999-11' WHERE id = 2;
         UPDATE typed SET tstz = 'infinity', d = '-infinity', f8 = 'NaN', en = 'sad', by = NULL WHERE id = 3;
         DELETE FROM typed WHERE id IN (4, 7);
         BEGIN; INSERT INTO typed VALUES {}; UPDATE typed SET i2 = 7 WHERE id = 10; DELETE FROM typed WHERE id = 10; COMMIT;",
        rows.join(","),
        typed_row(10)
    ))
    .await;
    let s = sync(&p).await;
    assert!(s.changes >= 10, "{s:?}");
    assert_replica_matches(&env, &p, "typed", "id").await;
    // Deletes are soft by default: the rows stay, flagged.
    let deleted = env
        .bq_count(
            "src_replica",
            "typed",
            "WHERE _sluice_deleted AND _sluice_deleted_at IS NOT NULL",
        )
        .await;
    assert_eq!(
        deleted, 1,
        "id 4; ids 7 and 10 were inserted and deleted within one batch, so never replicated"
    );

    // Every batch and every run is in the ledger, with the slot's health.
    let batches = env
        .bq_count(
            "ops",
            "runs",
            "WHERE worker = 'cdc-sync' AND status = 'success' AND REGEXP_CONTAINS(lsn_range, r'^[0-9A-F]{16}-[0-9A-F]{16}$')",
        )
        .await;
    assert!(batches >= 1, "batch rows in the ledger: {batches}");
    let runs = env
        .bq_count(
            "ops",
            "runs",
            "WHERE worker = 'cdc-sync' AND JSON_VALUE(details, '$.kind') = 'run' AND JSON_VALUE(details, '$.retained_wal_bytes') IS NOT NULL",
        )
        .await;
    assert_eq!(runs, 2, "one health row per run");

    // A rerun with nothing new changes nothing.
    let s = sync(&p).await;
    assert_eq!((s.batches, s.changes), (0, 0));
    assert_replica_matches(&env, &p, "typed", "id").await;
}

#[tokio::test]
async fn unchanged_toast_values_keep_their_value() {
    let env = TestEnv::new().await;
    env.sql(
        "CREATE TABLE docs (id int PRIMARY KEY, n int, body text);
         ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL;
         INSERT INTO docs SELECT g, 0, repeat(md5(g::text), 200) FROM generate_series(1, 3) g;",
    )
    .await;
    let p = env.pipeline_with_cdc(
        "docs: { mode: full }",
        Some("tables: [docs]\ndeletes: hard"),
    );
    init(&p).await;
    sync(&p).await;
    // Row 1: an UPDATE that does not touch body (body is not sent).
    // Row 4: inserted and updated in one batch: body comes from the insert in the batch.
    write(
        &env,
        "UPDATE docs SET n = 1 WHERE id = 1;
         INSERT INTO docs VALUES (4, 0, repeat('xyz', 3000));
         UPDATE docs SET n = 4 WHERE id = 4;
         UPDATE docs SET body = 'short now', n = 2 WHERE id = 2;",
    )
    .await;
    sync(&p).await;
    assert_replica_matches(&env, &p, "docs", "id").await;
    let len = env
        .bq_query(&format!(
            "SELECT LENGTH(body) AS l FROM {} WHERE id = 1",
            env.bq_table("src_replica", "docs")
        ))
        .await;
    assert_eq!(len.get(0, "l"), Some("6400"));
}

/// Rows whose key changes while a TOASTed column is left alone: Postgres sends that column as
/// "unchanged", and the replica must keep the value it holds under the old key.
#[tokio::test]
async fn key_changes_keep_unchanged_toast_values() {
    let env = TestEnv::new().await;
    env.sql(
        "CREATE TABLE docs (id int PRIMARY KEY, n int, body text, note text);
         ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL;
         ALTER TABLE docs ALTER COLUMN note SET STORAGE EXTERNAL;
         CREATE TABLE full_docs (id int PRIMARY KEY, n int, body text);
         ALTER TABLE full_docs ALTER COLUMN body SET STORAGE EXTERNAL;
         ALTER TABLE full_docs REPLICA IDENTITY FULL;
         INSERT INTO docs SELECT g, 0, repeat(md5(g::text), 300), repeat(md5((-g)::text), 300) FROM generate_series(1, 8) g;
         INSERT INTO full_docs SELECT g, 0, repeat(md5(g::text), 300) FROM generate_series(1, 3) g;",
    )
    .await;
    let p = env.pipeline_with_cdc(
        "docs: { mode: full }\nfull_docs: { mode: full }",
        Some("tables: [docs, full_docs]"),
    );
    init(&p).await;
    sync(&p).await;
    let check = || async {
        assert_replica_matches(&env, &p, "docs", "id").await;
        assert_replica_matches(&env, &p, "full_docs", "id").await;
    };

    // One batch: a key change; a chain of key changes; a key change then an update that
    // again leaves body alone; a key change that also rewrites one of the two big columns;
    // and with replica identity full, where the old row carries the value.
    write(
        &env,
        "UPDATE docs SET id = id + 1000 WHERE id = 1;
         UPDATE docs SET id = 102 WHERE id = 2; UPDATE docs SET id = 202 WHERE id = 102; UPDATE docs SET id = 302 WHERE id = 202;
         UPDATE docs SET id = 103 WHERE id = 3; UPDATE docs SET n = 3 WHERE id = 103;
         UPDATE docs SET id = 104, note = 'short' WHERE id = 4;
         UPDATE docs SET id = 5, n = 5 WHERE id = 5;
         UPDATE full_docs SET id = id + 100 WHERE id = 1;",
    )
    .await;
    let s = sync(&p).await;
    assert_eq!(s.batches, 1, "{s:?}");
    check().await;

    // The same over batches of one transaction each, with a crash after one MERGE: a key
    // change, then an update in the next batch, then a swap back to the first key.
    for sql in [
        "UPDATE docs SET id = 106 WHERE id = 6",
        "UPDATE docs SET n = 6 WHERE id = 106",
        "UPDATE docs SET id = 6 WHERE id = 106",
        "UPDATE docs SET id = 107 WHERE id = 7",
        "UPDATE full_docs SET id = 102 WHERE id = 2",
    ] {
        // Each its own transaction, so each its own batch.
        write(&env, sql).await;
    }
    let e = sync_with(&p, |o| {
        o.batch_changes = Some(1);
        o.crash = Some(CrashPoint::AfterMerge);
        o.once = true;
    })
    .await
    .expect_err("the injected crash");
    assert!(e.to_string().contains("injected crash"), "{e}");
    let s = sync_with(&p, |o| o.batch_changes = Some(1))
        .await
        .expect("rerun");
    assert!(s.batches >= 5, "{s:?}");
    check().await;
    // Every moved value is the full text, not NULL.
    let nulls = env
        .bq_count(
            "src_replica",
            "docs",
            "WHERE NOT _sluice_deleted AND (body IS NULL OR note IS NULL)",
        )
        .await;
    assert_eq!(nulls, 0);
}

#[tokio::test]
async fn schema_changes_mid_stream() {
    let env = TestEnv::new().await;
    env.sql(
        "CREATE TABLE items (id int PRIMARY KEY, name text, price numeric(10,2));
         CREATE TABLE later (id int PRIMARY KEY, v text);
         INSERT INTO items VALUES (1, 'a', 1.00), (2, 'b', 2.00);
         INSERT INTO later VALUES (1, 'before the publication had it');",
    )
    .await;
    let p = env.pipeline_with_cdc(
        "items: { mode: full }\nlater: { mode: full }",
        Some("tables: [items]"),
    );
    init(&p).await;
    sync(&p).await;

    // A new column, then a dropped column, in the same batch as row changes.
    write(
        &env,
        "INSERT INTO items VALUES (3, 'c', 3.00);
         ALTER TABLE items ADD COLUMN qty int;
         UPDATE items SET qty = 5 WHERE id = 1;
         INSERT INTO items VALUES (4, 'd', 4.00, 7);
         ALTER TABLE items DROP COLUMN name;
         UPDATE items SET price = 1.50 WHERE id = 1;
         INSERT INTO items VALUES (5, 5.00, 9);",
    )
    .await;
    sync(&p).await;
    let r = env
        .bq_query(&format!(
            "SELECT id, name, qty, CAST(price AS STRING) AS price FROM {} ORDER BY id",
            env.bq_table("src_replica", "items")
        ))
        .await;
    let got: Vec<(Option<&str>, Option<&str>)> = (0..r.rows.len())
        .map(|i| (r.get(i, "name"), r.get(i, "qty")))
        .collect();
    assert_eq!(
        got,
        vec![
            (None, Some("5")),      // changed after the drop: name NULL from then on
            (Some("b"), None),      // untouched
            (Some("c"), None),      // before the new column
            (Some("d"), Some("7")), // with it
            (None, Some("9")),      // after the drop
        ]
    );

    // A table added to the publication is snapshotted, then streams.
    write(
        &env,
        &format!(
            "ALTER PUBLICATION {s} ADD TABLE later; INSERT INTO later VALUES (2, 'after');",
            s = env.slot()
        ),
    )
    .await;
    let s = sync(&p).await;
    assert_eq!(s.snapshots.len(), 1, "{s:?}");
    assert_replica_matches(&env, &p, "later", "id").await;

    // A type BigQuery can widen in place (INT64 → NUMERIC) is widened; one it cannot
    // (NUMERIC → STRING) stops the run, naming the column, the types and the fix. (The
    // emulator refuses NUMERIC → BIGNUMERIC, which BigQuery allows: its BIGNUMERIC is
    // DECIMAL(38,18), narrower in integer digits.)
    write(
        &env,
        "ALTER TABLE items ALTER COLUMN qty TYPE numeric(12,2); UPDATE items SET qty = 5.25 WHERE id = 1;",
    )
    .await;
    sync(&p).await;
    assert_replica_matches(&env, &p, "items", "id").await;
    write(
        &env,
        "ALTER TABLE items ALTER COLUMN price TYPE text; UPDATE items SET price = 'call us' WHERE id = 4;",
    )
    .await;
    let e = sync_with(&p, |_| {}).await.unwrap_err().to_string();
    assert!(
        e.contains("column price changed type from NUMERIC to STRING")
            && e.contains("cdc-sync resync --table public.items"),
        "{e}"
    );
    cdc_sync::resync(&p, "local", None, &["items".into()], false)
        .await
        .expect("resync");
    sync(&p).await;
    assert_replica_matches(&env, &p, "items", "id").await;

    // Truncate: soft by default, then new rows stream in after it.
    write(
        &env,
        "TRUNCATE later; INSERT INTO later VALUES (9, 'after truncate');",
    )
    .await;
    sync(&p).await;
    assert_replica_matches(&env, &p, "later", "id").await;
    assert_eq!(
        env.bq_count("src_replica", "later", "WHERE _sluice_deleted")
            .await,
        2
    );
}

#[tokio::test]
async fn tables_without_a_key_and_history_are_append_only() {
    let env = TestEnv::new().await;
    env.sql(
        "CREATE TABLE events (at int, what text);
         ALTER TABLE events REPLICA IDENTITY FULL;
         CREATE TABLE acct (id int PRIMARY KEY, bal int);
         INSERT INTO events VALUES (1, 'a');
         INSERT INTO acct VALUES (1, 10);",
    )
    .await;
    let p = env.pipeline_with_cdc("", Some("tables: [events, acct]\nhistory: [acct]"));
    init(&p).await;
    sync(&p).await;
    write(
        &env,
        "INSERT INTO events VALUES (2, 'b'); UPDATE events SET what = 'B' WHERE at = 2; DELETE FROM events WHERE at = 1;
         UPDATE acct SET bal = 20 WHERE id = 1; UPDATE acct SET bal = 30 WHERE id = 1;",
    )
    .await;
    sync(&p).await;
    // Rerun the same range: nothing doubles.
    sync(&p).await;
    let ops = env
        .bq_query(&format!(
            "SELECT STRING_AGG(_op, '' ORDER BY _lsn, _ord) AS ops FROM {}",
            env.bq_table("src_replica", "events")
        ))
        .await;
    assert_eq!(ops.get(0, "ops"), Some("SIUD"));
    let hist = env
        .bq_query(&format!(
            "SELECT STRING_AGG(CAST(bal AS STRING), ',' ORDER BY _lsn, _ord) AS b FROM {}",
            env.bq_table("src_replica", "acct_history")
        ))
        .await;
    assert_eq!(hist.get(0, "b"), Some("20,30"));
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
        .bq_query(&format!(
            "SELECT CAST(IFNULL(SUM(v * k1), 0) AS STRING) AS s FROM {}",
            env.bq_table("src_replica", "b")
        ))
        .await;
    assert_eq!(bq.get(0, "s"), Some(pg_sum.to_string().as_str()));
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
    let config = env.lake_bucket_dir().with_extension("yaml");
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
    let _ = std::fs::remove_file(config);
}

#[tokio::test]
async fn bad_input_is_a_clear_error() {
    let env = TestEnv::new().await;
    env.sql("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'x');")
        .await;
    let p = env.pipeline_with_cdc("", Some("tables: [t]"));

    // Before init: no publication, then (with a publication made by hand) no slot.
    let e = sync_with(&p, |_| {}).await.unwrap_err().to_string();
    assert!(
        e.contains(&format!("publication {} does not exist", env.slot()))
            && e.contains("cdc-sync init"),
        "{e}"
    );
    write(
        &env,
        &format!("CREATE PUBLICATION {} FOR TABLE t", env.slot()),
    )
    .await;
    let e = sync_with(&p, |_| {}).await.unwrap_err().to_string();
    assert!(
        e.contains(&format!("replication slot {} does not exist", env.slot())),
        "{e}"
    );
    init(&p).await;
    init(&p).await; // idempotent
    sync(&p).await;

    // The primary key changes: the run stops and names the fix.
    write(&env, "ALTER TABLE t DROP CONSTRAINT t_pkey; ALTER TABLE t ADD PRIMARY KEY (id, v); INSERT INTO t VALUES (2, 'y');")
        .await;
    let e = sync_with(&p, |_| {}).await.unwrap_err().to_string();
    assert!(
        e.contains("primary key of public.t changed from (id) to (id, v)") && e.contains("resync"),
        "{e}"
    );
    let r = cdc_sync::resync(&p, "local", None, &["t".into()], false)
        .await
        .expect("resync");
    assert_eq!(r, vec![("public.t".to_string(), 2)]);

    // An unsupported type in a new table of the publication.
    write(&env, &format!(
        "CREATE TABLE geo (id int PRIMARY KEY, p point); ALTER PUBLICATION {} ADD TABLE geo; INSERT INTO geo VALUES (1, '(1,2)');",
        env.slot()
    ))
    .await;
    let e = sync_with(&p, |_| {}).await.unwrap_err().to_string();
    assert!(e.contains("column public.geo.p has type point"), "{e}");
}

#[tokio::test]
async fn columns_named_like_sluices_own_are_refused_by_name() {
    let env = TestEnv::new().await;
    env.sql(
        "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'x');
         CREATE TABLE flags (id int PRIMARY KEY, \"_sluice_deleted\" bool); INSERT INTO flags VALUES (1, true);",
    )
    .await;
    // In a table the first run snapshots.
    let p = env.pipeline_with_cdc("", Some("tables: [flags]"));
    init(&p).await;
    let e = sync_with(&p, |_| {}).await.unwrap_err().to_string();
    assert!(
        e.contains(
            "public.flags: column _sluice_deleted has a name cdc-sync keeps for its own columns"
        ),
        "{e}"
    );
    // In a replicated table, through the stream.
    let p = env.pipeline_with_cdc("", Some("tables: [t]"));
    write(
        &env,
        &format!(
            "ALTER PUBLICATION {0} DROP TABLE flags; ALTER PUBLICATION {0} ADD TABLE t",
            env.slot()
        ),
    )
    .await;
    sync(&p).await;
    write(
        &env,
        "ALTER TABLE t ADD COLUMN _OP text; UPDATE t SET _op = 'x';",
    )
    .await;
    let e = sync_with(&p, |_| {}).await.unwrap_err().to_string();
    assert!(
        e.contains("public.t: column _op has a name cdc-sync keeps"),
        "{e}"
    );
}

#[tokio::test]
async fn an_invalidated_slot_names_the_recovery_and_a_new_slot_snapshots_again() {
    let env = TestEnv::new().await;
    env.sql(
        "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a'), (2, 'b');",
    )
    .await;
    let p = env.pipeline_with_cdc("t: { mode: full }", Some("tables: [t]"));
    init(&p).await;
    sync(&p).await;
    // The slot is lost (as when max_slot_wal_keep_size removes its WAL) while rows change.
    env.sql(&format!(
        "SELECT pg_drop_replication_slot('{}')",
        env.slot()
    ))
    .await;
    write(
        &env,
        "DELETE FROM t WHERE id = 1; INSERT INTO t VALUES (3, 'c');",
    )
    .await;
    let e = sync_with(&p, |_| {}).await.unwrap_err().to_string();
    assert!(
        e.contains("slot-missing") && e.contains("does not exist") && e.contains("resync --all"),
        "{e}"
    );
    // `init` makes a new slot, which means a new stream: the next run snapshots every table
    // again (`resync --all` does the same at once).
    init(&p).await;
    let s = sync(&p).await;
    assert_eq!(s.snapshots, vec![("public.t".to_string(), 2)]);
    assert_replica_matches(&env, &p, "t", "id").await;
}

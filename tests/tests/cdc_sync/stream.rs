//! The first run snapshots, then every kind of change streams: every type, TOASTed values left
//! unchanged, keys that change.

use cdc_sync::CrashPoint;
use sluice_tests::cdc::{init, sync, sync_with};
use sluice_tests::{write_flushed as write, TestEnv};

use super::assert_replica_matches;

/// A table of every type cdc-sync maps.
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

/// A row of `typed`; `id` picks NULLs and edge values.
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
        .bq_scalar(&format!(
            "SELECT LENGTH(body) AS l FROM {} WHERE id = 1",
            env.bq_table("src_replica", "docs")
        ))
        .await;
    assert_eq!(len.as_deref(), Some("6400"));
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

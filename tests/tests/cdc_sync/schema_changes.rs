//! Schema changes mid-stream (columns added, dropped, widened; tables added; truncate), and
//! tables without a key or with history, which are append-only.

use sluice_tests::cdc::{init, sync, sync_with};
use sluice_tests::{write_flushed as write, TestEnv};

use super::assert_replica_matches;

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
        .bq_scalar(&format!(
            "SELECT STRING_AGG(_op, '' ORDER BY _lsn, _ord) AS ops FROM {}",
            env.bq_table("src_replica", "events")
        ))
        .await;
    assert_eq!(ops.as_deref(), Some("SIUD"));
    let hist = env
        .bq_scalar(&format!(
            "SELECT STRING_AGG(CAST(bal AS STRING), ',' ORDER BY _lsn, _ord) AS b FROM {}",
            env.bq_table("src_replica", "acct_history")
        ))
        .await;
    assert_eq!(hist.as_deref(), Some("20,30"));
}

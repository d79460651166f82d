//! cdc-sync over a database's real life: every break in continuity (slot gone, invalidated by
//! Postgres, dropped and recreated; a database restored from a dump; a table that left the
//! publication) stops the run by name, in the ledger, with the replica untouched, until
//! `resync --all` (or `forget`) recovers it. (WAL stays bounded meanwhile: `wal`.)

use cdc_sync::Options;
use sluice::config::Pipeline;
use sluice_tests::cdc::{init, sync};
use sluice_tests::pg_tls::TlsPostgres;
use sluice_tests::{write_flushed as write, TestEnv};

/// `cdc-sync resync --all`: every replica of the source rebuilt; (table, rows) of each.
async fn resync_all(p: &Pipeline) -> Vec<(String, u64)> {
    cdc_sync::resync(p, "local", None, &[], true)
        .await
        .expect("cdc-sync resync --all")
}

/// (id, v) of the live rows of `t`'s replica, in id order.
pub(super) async fn replica_rows(env: &TestEnv) -> Vec<(i64, Option<String>)> {
    let r = env
        .bq_query(&format!(
            "SELECT id, v FROM {} WHERE NOT COALESCE(_sluice_deleted, FALSE) ORDER BY id",
            env.bq_table("src_replica", "t")
        ))
        .await;
    (0..r.rows.len())
        .map(|i| {
            (
                r.get(i, "id").unwrap().parse().unwrap(),
                r.get(i, "v").map(String::from),
            )
        })
        .collect()
}

/// (id, v) of the rows of `t` in Postgres (through `pg`), in id order.
pub(super) async fn source_rows(pg: &tokio_postgres::Client) -> Vec<(i64, Option<String>)> {
    pg.query("SELECT id::int8, v FROM t ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// The ledger's stop rows of this test: (case, error).
async fn stops(env: &TestEnv) -> Vec<(String, String)> {
    let r = env
        .bq_query(&format!(
            "SELECT JSON_VALUE(details, '$.case') AS c, error FROM {} WHERE worker = 'cdc-sync' AND status = 'failed' AND JSON_VALUE(details, '$.kind') = 'stop' ORDER BY started_at",
            env.bq_table("ops", "runs")
        ))
        .await;
    (0..r.rows.len())
        .map(|i| {
            (
                r.get(i, "c").unwrap_or_default().to_string(),
                r.get(i, "error").unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// A run that must stop: its one-line error.
async fn stopped(p: &Pipeline) -> String {
    let e = cdc_sync::run(p, &Options::new("local"))
        .await
        .expect_err("the run must stop")
        .to_string();
    assert!(!e.contains('\n'), "one line: {e}");
    e
}

/// Table `t`: 20 rows, `(id, 'v<id>')`.
pub(super) fn table_t() -> &'static str {
    "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 20) g;"
}

#[tokio::test]
async fn a_slot_dropped_and_recreated_stops_every_run_until_resync() {
    let env = TestEnv::new().await;
    env.sql(table_t()).await;
    let p = env.pipeline_with_cdc("t: { mode: full }", Some("tables: [t]"));
    init(&p).await;
    sync(&p).await;
    let replicated = replica_rows(&env).await;
    // Someone drops the slot; ten rows change; the slot is made again by hand.
    env.sql(&format!(
        "SELECT pg_drop_replication_slot('{}')",
        env.slot()
    ))
    .await;
    write(&env, "UPDATE t SET v = 'lost' WHERE id <= 10").await;
    env.sql(&format!(
        "SELECT pg_create_logical_replication_slot('{}', 'pgoutput')",
        env.slot()
    ))
    .await;
    write(&env, "UPDATE t SET v = 'later' WHERE id = 11").await;
    for _ in 0..2 {
        let e = stopped(&p).await;
        assert!(
            e.contains("source src: slot-moved: replication slot")
                && e.contains("the changes in between were never read")
                && e.contains("`cdc-sync resync --all --source src`"),
            "{e}"
        );
    }
    assert_eq!(
        replica_rows(&env).await,
        replicated,
        "the replica is untouched"
    );
    let s = stops(&env).await;
    assert_eq!(s.len(), 2, "{s:?}");
    assert!(s
        .iter()
        .all(|(c, e)| c == "slot-moved" && e.contains("slot-moved")));
    // resync --all snapshots from the new slot's position; runs continue from there.
    assert_eq!(resync_all(&p).await, vec![("public.t".to_string(), 20)]);
    write(
        &env,
        "UPDATE t SET v = 'next' WHERE id = 12; DELETE FROM t WHERE id = 20",
    )
    .await;
    sync(&p).await;
    assert_eq!(replica_rows(&env).await, source_rows(&env.pg).await);
    let r = env
        .bq_scalar(&format!(
            "SELECT JSON_VALUE(details, '$.cause') AS c FROM {} WHERE JSON_VALUE(details, '$.kind') = 'resync'",
            env.bq_table("ops", "runs")
        ))
        .await;
    assert_eq!(
        r.as_deref(),
        Some("slot-moved"),
        "the resync says why it ran"
    );
}

#[tokio::test]
async fn a_missing_slot_stops_and_resync_makes_a_new_one() {
    let env = TestEnv::new().await;
    env.sql(table_t()).await;
    let p = env.pipeline_with_cdc("t: { mode: full }", Some("tables: [t]"));
    init(&p).await;
    sync(&p).await;
    env.sql(&format!(
        "SELECT pg_drop_replication_slot('{}')",
        env.slot()
    ))
    .await;
    write(
        &env,
        "DELETE FROM t WHERE id = 1; INSERT INTO t VALUES (21, 'new')",
    )
    .await;
    let e = stopped(&p).await;
    assert!(
        e.contains("source src: slot-missing: replication slot")
            && e.contains("does not exist")
            && e.contains("resync --all"),
        "{e}"
    );
    // resync of one table is not enough after a source-wide break.
    let e = cdc_sync::resync(&p, "local", None, &["t".into()], false)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("slot-missing") && e.contains("--all"), "{e}");
    resync_all(&p).await;
    write(&env, "UPDATE t SET v = 'after' WHERE id = 2").await;
    let s = sync(&p).await;
    assert!(s.snapshots.is_empty(), "resync took the snapshot");
    assert_eq!(replica_rows(&env).await, source_rows(&env.pg).await);
}

#[tokio::test]
async fn a_database_restored_from_a_dump_is_another_source() {
    let env = TestEnv::new().await;
    env.sql(table_t()).await;
    let p = env.pipeline_with_cdc("t: { mode: full }", Some("tables: [t]"));
    init(&p).await;
    sync(&p).await;
    // The app's database is restored from last night's dump into a new database (the old
    // one, with its slot, is dropped as it must be first), and the DSN now points there.
    let restored = format!("{}_restored", env.db);
    env.sql(&format!(
        "SELECT pg_drop_replication_slot('{}')",
        env.slot()
    ))
    .await;
    let admin = env.stack.admin().await.expect("admin connection");
    admin
        .batch_execute(&format!("CREATE DATABASE {restored}"))
        .await
        .unwrap();
    std::env::set_var(env.dsn_var(), env.stack.dsn(&restored));
    let (pg2, conn) = tokio_postgres::connect(&env.stack.dsn(&restored), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    pg2.batch_execute(
        "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 15) g;",
    )
    .await
    .unwrap();
    let e = stopped(&p).await;
    assert!(
        e.contains(
            "source src: source-replaced: the database is not the one the replicas were built from"
        ) && e.contains("dropped and made again"),
        "{e}"
    );
    assert_eq!(
        replica_rows(&env).await.len(),
        20,
        "the replica is untouched"
    );
    // resync makes the publication and slot there and rebuilds every replica from it.
    resync_all(&p).await;
    sync(&p).await;
    assert_eq!(replica_rows(&env).await, source_rows(&pg2).await);
    drop(pg2);
    let _ = admin
        .execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1",
            &[&restored],
        )
        .await;
    let _ = admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {restored} WITH (FORCE)"))
        .await;
}

#[tokio::test]
async fn a_table_that_left_the_publication_stops_until_forgotten_or_resynced() {
    let env = TestEnv::new().await;
    env.sql(&format!(
        "{} CREATE TABLE u (id int PRIMARY KEY); INSERT INTO u VALUES (1);",
        table_t()
    ))
    .await;
    let p = env.pipeline_with_cdc("t: { mode: full }", Some("tables: [t, u]"));
    init(&p).await;
    sync(&p).await;
    let publication = env.slot();
    env.sql(&format!("ALTER PUBLICATION {publication} DROP TABLE u"))
        .await;
    write(
        &env,
        "INSERT INTO u VALUES (2); UPDATE t SET v = 'x' WHERE id = 1",
    )
    .await;
    let e = stopped(&p).await;
    assert!(
        e.contains(
            "source src: table-unpublished: public.u has a replica but is no longer in publication"
        ) && e.contains(&format!(
            "ALTER PUBLICATION {publication} ADD TABLE public.u"
        )) && e.contains("`cdc-sync resync --source src --table public.u`")
            && e.contains("`cdc-sync forget --source src --table public.u`"),
        "{e}"
    );
    // Back in the publication, its replica is rebuilt and runs go on.
    env.sql(&format!("ALTER PUBLICATION {publication} ADD TABLE u"))
        .await;
    cdc_sync::resync(&p, "local", None, &["u".into()], false)
        .await
        .expect("resync u");
    sync(&p).await;
    assert_eq!(env.bq_count("src_replica", "u", "").await, 2);
    // Dropped from Postgres: forgotten, the replica stays as it was.
    env.sql("DROP TABLE u").await;
    let e = stopped(&p).await;
    assert!(
        e.contains("public.u has a replica but was dropped from Postgres")
            && !e.contains("ADD TABLE"),
        "{e}"
    );
    let e = cdc_sync::forget(&p, "local", None, &["t".into()])
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("public.t is still in publication"), "{e}");
    assert_eq!(
        cdc_sync::forget(&p, "local", None, &["u".into()])
            .await
            .unwrap(),
        vec!["public.u".to_string()]
    );
    sync(&p).await;
    assert_eq!(env.bq_count("src_replica", "u", "").await, 2);
    assert_eq!(replica_rows(&env).await, source_rows(&env.pg).await);
}

/// Postgres itself invalidates a slot that holds more WAL than `max_slot_wal_keep_size`
/// (a cluster of the test's own: the setting is server-wide).
#[tokio::test]
async fn a_slot_postgres_invalidated_stops_and_resync_replaces_it() {
    let server = TlsPostgres::start_plain(
        "max_slot_wal_keep_size = 1MB\nmax_wal_size = 64MB\nmin_wal_size = 32MB\n",
    );
    server.psql("postgres", "CREATE DATABASE app");
    server.psql("app", table_t());
    let env = TestEnv::new().await;
    std::env::set_var(
        env.dsn_var(),
        server.dsn("127.0.0.1", "app", "sslmode=disable"),
    );
    let p = env.pipeline_with_cdc("t: { mode: full }", Some("tables: [t]"));
    init(&p).await;
    sync(&p).await;
    // Changes pile up behind the slot beyond the limit; a checkpoint removes their WAL.
    server.psql(
        "app",
        "CREATE TABLE pad (x text); INSERT INTO pad SELECT repeat('x', 500) FROM generate_series(1, 200000); UPDATE t SET v = 'gone'",
    );
    server.psql("app", "SELECT pg_switch_wal(); CHECKPOINT;");
    server.psql("app", "INSERT INTO pad SELECT repeat('y', 500) FROM generate_series(1, 100000); SELECT pg_switch_wal(); CHECKPOINT;");
    let e = stopped(&p).await;
    assert!(
        e.contains("source src: slot-invalidated: Postgres invalidated replication slot")
            && e.contains("wal_status lost")
            && e.contains("resync --all"),
        "{e}"
    );
    resync_all(&p).await;
    server.psql("app", "UPDATE t SET v = 'back' WHERE id = 5");
    sync(&p).await;
    let (pg, conn) = tokio_postgres::connect(
        &server.dsn("127.0.0.1", "app", "sslmode=disable"),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    assert_eq!(replica_rows(&env).await, source_rows(&pg).await);
}

//! What stops a run, by name and with the fix: no publication or slot yet, a changed primary
//! key, an unsupported type, a column named like cdc-sync's own, a lost slot.

use sluice_tests::cdc::{init, sync, sync_with};
use sluice_tests::{write_flushed as write, TestEnv};

use super::assert_replica_matches;

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

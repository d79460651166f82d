//! Failures: a failed copy leaves the previous table intact; a bad DSN, a missing table and an
//! unsupported type are clear errors.

use sluice_tests::TestEnv;

use super::{assert_ok, copy};

#[tokio::test]
async fn a_failed_copy_leaves_the_previous_table_intact() {
    let env = TestEnv::new().await;
    env.sql("CREATE TABLE t (id int PRIMARY KEY, at timestamp); INSERT INTO t SELECT g, '2024-01-01' FROM generate_series(1, 10) g")
        .await;
    let p = env.pipeline("t: { mode: full }");
    assert_ok(&copy(&p, |_| {}).await);
    // A timestamp BigQuery cannot hold fails the next copy in the middle of decoding.
    env.sql("INSERT INTO t VALUES (11, '20000-01-01')").await;
    let s = copy(&p, |_| {}).await;
    let err = s.units[0].error.clone().unwrap();
    assert!(
        err.contains("t.at") || err.contains("src.t") && err.contains("at"),
        "{err}"
    );
    assert!(err.contains("outside BigQuery's range"), "{err}");
    assert_eq!(env.bq_count("src", "t", "").await, 10);
    let ledger = env
        .bq_query(&format!(
            "SELECT status, error FROM {} WHERE status = 'failed'",
            env.bq_table("ops", "runs")
        ))
        .await;
    assert!(ledger
        .get(0, "error")
        .unwrap()
        .contains("outside BigQuery's range"));
}

#[tokio::test]
async fn bad_dsn_missing_table_and_unsupported_type_are_clear_errors() {
    let env = TestEnv::new().await;
    env.sql("CREATE TABLE shapes (id int PRIMARY KEY, area polygon, name text); INSERT INTO shapes VALUES (1, '((0,0),(1,1),(1,0))', 'tri')")
        .await;

    // Unsupported type: names table and column.
    let p = env.pipeline("shapes: { mode: full }");
    let err = copy(&p, |_| {}).await.units[0].error.clone().unwrap();
    assert!(
        err.contains("public.shapes.area") && err.contains("polygon"),
        "{err}"
    );

    // ... unless the table says to skip such columns.
    let p = env.pipeline("shapes: { mode: full, on_unsupported: skip }");
    assert_ok(&copy(&p, |_| {}).await);
    let t = env
        .bq
        .get_table(&env.dataset("src"), "shapes")
        .await
        .unwrap()
        .unwrap();
    let names: Vec<&str> = t["schema"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["id", "name"]);

    // Missing table.
    let p = env.pipeline("nope: { mode: full }");
    let err = copy(&p, |_| {}).await.units[0].error.clone().unwrap();
    assert!(err.contains("table public.nope does not exist"), "{err}");

    // Bad DSN: a database that does not exist, then a port nothing listens on.
    std::env::set_var(env.dsn_var(), env.stack.dsn("no_such_db"));
    let p = env.pipeline("shapes: { mode: full }");
    let err = copy(&p, |_| {}).await.units[0].error.clone().unwrap();
    assert!(
        err.contains("connecting to source src") && err.contains("no_such_db"),
        "{err}"
    );
    std::env::set_var(
        env.dsn_var(),
        "postgres://postgres:secret-pw@127.0.0.1:1/db",
    );
    let err = copy(&p, |_| {}).await.units[0].error.clone().unwrap();
    assert!(err.contains("127.0.0.1:1/db"), "{err}");
    assert!(!err.contains("secret-pw"), "the password leaked: {err}");
}

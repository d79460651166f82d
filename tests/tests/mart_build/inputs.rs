//! Where marts read from: dev and pull-request targets read production inputs and write their
//! own datasets; a replica outside Postgres' public schema is a known input.

use sluice::config::Pipeline;
use sluice_tests::marts::ORDERS_AND_USERS;
use sluice_tests::TestEnv;

use super::{assert_built, run_marts, Marts};

#[tokio::test]
async fn dev_and_pr_targets_read_production_inputs_and_write_their_own_datasets() {
    let env = TestEnv::new().await;
    // "Production" inputs here are the unsuffixed dataset of a source of this test only.
    let raw = format!("raw_{}", env.id);
    let yaml = env
        .pipeline_yaml(ORDERS_AND_USERS, None, "")
        .replace("    tables:\n", &format!("    dataset: {raw}\n    tables:\n"))
        .replace("targets:\n", &format!(
            "targets:\n  dev:\n    project: {p}\n    bigquery_endpoint: {bq}\n    dataset_suffix: _t{id}_dev\n    no_auth: true\n",
            p = env.stack.bq_project, bq = env.stack.bq_endpoint, id = env.id
        ));
    let p = Pipeline::parse(&yaml, "test").unwrap();
    env.bq.ensure_dataset(&raw, None).await.unwrap();
    env.bq_query(&format!(
        "CREATE TABLE `{}.{raw}.orders` AS SELECT 1 AS user_id, NUMERIC '3' AS total, TIMESTAMP '2024-05-01 01:00:00+00' AS created_at",
        env.stack.bq_project
    )).await;
    let a = format!("/* description: a */\nSELECT user_id, total FROM {raw}.orders\n");
    let b = "/* description: b */\nSELECT COUNT(*) AS n FROM m.a\n";
    let marts = Marts::new(&env, &[("m/a.sql", &a), ("m/b.sql", b)]);
    let s = run_marts(&p, &marts, "pr-7", &["2024-05-01"], |_| {}).await;
    assert_built(&s);
    let pr = format!("m_t{}_dev_pr_7", env.id);
    let n = env
        .bq_scalar(&format!("SELECT n FROM `{}.{pr}.b`", env.stack.bq_project))
        .await;
    assert_eq!(n.as_deref(), Some("1"));
    assert!(
        env.bq
            .get_table(&env.dataset("m"), "a")
            .await
            .unwrap()
            .is_none(),
        "the local datasets are untouched"
    );
    for ds in [
        pr,
        raw,
        format!("ops_t{}_dev_pr_7", env.id),
        format!("sluice_staging_t{}_dev_pr_7", env.id),
    ] {
        let _ = env.bq.delete_dataset(&ds).await;
    }
}

/// A mart reads the replica (and history) of a table outside Postgres' public schema, under the
/// name cdc-sync gives it, `<schema>__<table>`: one catalog answers both.
#[tokio::test]
async fn a_mart_reads_the_replica_of_a_table_outside_the_public_schema() {
    let env = TestEnv::new().await;
    env.sql(
        "CREATE SCHEMA billing;
         CREATE TABLE billing.invoices (id int PRIMARY KEY, amount numeric(10,2));
         INSERT INTO billing.invoices VALUES (1, 10.50), (2, 4.25);",
    )
    .await;
    let p = env.pipeline_with_cdc(
        "",
        Some("tables: [billing.invoices]\nhistory: [billing.invoices]"),
    );
    cdc_sync::init(&p, "local", None).await.expect("init");
    let sync = || async {
        cdc_sync::run(&p, &cdc_sync::Options::new("local"))
            .await
            .expect("cdc-sync run")
    };
    sync().await;
    // Committed to disk: logical decoding reads flushed WAL only.
    env.sql("SET synchronous_commit = on; UPDATE billing.invoices SET amount = 5.25 WHERE id = 2")
        .await;
    assert_eq!(sync().await.changes, 1);
    let marts = Marts::new(
        &env,
        &[(
            "m/invoiced.sql",
            "/*\ndescription: Invoiced so far, and how many changes the invoices had.\n*/\n\
             SELECT (SELECT SUM(amount) FROM src_replica.billing__invoices WHERE NOT _sluice_deleted) AS total,\n\
                    (SELECT COUNT(*) FROM src_replica.billing__invoices_history) AS changes\n",
        )],
    );
    let dag = marts.dag(&p).expect("the replica is a known input");
    assert!(matches!(
        sluice::marts::producer(
            &dag.inputs,
            &sluice::marts::TableName::parse("src_replica.billing__invoices").unwrap()
        ),
        Some(sluice::marts::Producer::Cdc { .. })
    ));
    let s = run_marts(&p, &marts, "local", &["2024-05-01"], |_| {}).await;
    assert_built(&s);
    let got = env.bq_scalar(&format!(
            // In cents: the emulator prints NUMERIC with trailing zeros.
            "SELECT CONCAT(CAST(CAST(total * 100 AS INT64) AS STRING), ' ', CAST(changes AS STRING)) AS v FROM {}",
            env.bq_table("m", "invoiced")
        ))
    .await;
    assert_eq!(got.as_deref(), Some("1575 1"));
}

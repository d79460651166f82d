//! Incremental copies: one date replaces its partition, idempotently; new source columns
//! are added to the partitioned table.

use pg_copy::Dates;
use sluice_tests::{d, TestEnv};

use super::{assert_ok, copy, ORDERS};

#[tokio::test]
async fn incremental_replaces_one_partition_and_reruns_idempotently() {
    let env = TestEnv::new().await;
    env.sql(ORDERS).await;
    let p = env.pipeline("orders: { mode: incremental, watermark_column: created_at }");
    let s = copy(&p, |o| o.dates = Dates::One(d("2024-03-02"))).await;
    assert_ok(&s);
    assert_eq!(s.units[0].rows_loaded, 1440);
    assert_eq!(env.bq_count("src", "orders", "").await, 1440);

    // The same date again: same rows, no duplicates.
    assert_ok(&copy(&p, |o| o.dates = Dates::One(d("2024-03-02"))).await);
    assert_eq!(env.bq_count("src", "orders", "").await, 1440);
    let ids = env
        .bq_query(&format!(
            "SELECT COUNT(DISTINCT id) AS n, MIN(id) AS lo, MAX(id) AS hi FROM {}",
            env.bq_table("src", "orders")
        ))
        .await;
    assert_eq!(
        (ids.get(0, "n"), ids.get(0, "lo"), ids.get(0, "hi")),
        (Some("1440"), Some("1440"), Some("2879"))
    );

    // Another date lands beside it; then the source changes and a rerun replaces only its date.
    assert_ok(&copy(&p, |o| o.dates = Dates::One(d("2024-03-01"))).await);
    env.sql("DELETE FROM orders WHERE id % 2 = 0 AND created_at < '2024-03-02'; UPDATE orders SET amount = 0 WHERE id = 1")
        .await;
    assert_ok(&copy(&p, |o| o.dates = Dates::One(d("2024-03-01"))).await);
    assert_eq!(
        env.bq_count("src", "orders", "WHERE DATE(created_at) = '2024-03-01'")
            .await,
        720
    );
    assert_eq!(
        env.bq_count("src", "orders", "WHERE DATE(created_at) = '2024-03-02'")
            .await,
        1440
    );
    assert_eq!(
        env.bq_count("src", "orders", "WHERE id = 1 AND amount = 0")
            .await,
        1
    );

    let table = env
        .bq
        .get_table(&env.dataset("src"), "orders")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(table["timePartitioning"]["field"], "created_at");
}

#[tokio::test]
async fn new_source_columns_are_added_to_the_partitioned_table() {
    let env = TestEnv::new().await;
    env.sql(ORDERS).await;
    let p = env.pipeline("orders: { mode: incremental, watermark_column: created_at }");
    assert_ok(&copy(&p, |o| o.dates = Dates::One(d("2024-03-01"))).await);
    env.sql("ALTER TABLE orders ADD COLUMN coupon text; UPDATE orders SET coupon = 'SPRING' WHERE id % 10 = 0").await;
    assert_ok(&copy(&p, |o| o.dates = Dates::One(d("2024-03-02"))).await);
    assert_eq!(
        env.bq_count("src", "orders", "WHERE coupon = 'SPRING'")
            .await,
        144
    );
    assert_eq!(
        env.bq_count(
            "src",
            "orders",
            "WHERE DATE(created_at) = '2024-03-01' AND coupon IS NULL"
        )
        .await,
        1440
    );

    // A type change cannot be applied in place: the error says what changed.
    env.sql("ALTER TABLE orders ALTER COLUMN coupon TYPE integer USING NULL")
        .await;
    let err = copy(&p, |o| o.dates = Dates::One(d("2024-03-02")))
        .await
        .units[0]
        .error
        .clone()
        .unwrap();
    assert!(
        err.contains("coupon: NULLABLE STRING → NULLABLE INTEGER"),
        "{err}"
    );
}

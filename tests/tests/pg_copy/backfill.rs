//! A range of dates: each copied, each in the ledger.

use pg_copy::Dates;
use sluice_tests::{d, TestEnv};

use super::{assert_ok, copy, ORDERS};

#[tokio::test]
async fn backfill_copies_each_date_and_records_each_in_the_ledger() {
    let env = TestEnv::new().await;
    env.sql(ORDERS).await;
    env.sql("CREATE TABLE users (id int PRIMARY KEY, name text); INSERT INTO users SELECT g, 'u' || g FROM generate_series(1, 50) g")
        .await;
    let p = env.pipeline(
        "orders: { mode: incremental, watermark_column: created_at }\nusers: { mode: full }",
    );
    let s = copy(&p, |o| {
        o.dates = Dates::Range(d("2024-02-29"), d("2024-03-03"));
        o.concurrency = 3;
    })
    .await;
    assert_ok(&s);
    let labels: Vec<String> = s
        .units
        .iter()
        .map(|u| format!("{} {}", u.unit.label(), u.rows_loaded))
        .collect();
    assert_eq!(
        labels,
        [
            "src.orders 2024-02-29 0",
            "src.orders 2024-03-01 1440",
            "src.orders 2024-03-02 1440",
            "src.orders 2024-03-03 1440",
            "src.users 2024-03-03 50"
        ]
    );
    assert_eq!(env.bq_count("src", "orders", "").await, 3 * 1440);
    let ledger = env
        .bq_query(&format!(
            "SELECT COUNT(*) AS n, COUNT(DISTINCT run_id) AS runs, SUM(rows_loaded) AS rows FROM {} WHERE status = 'success' AND worker = 'pg-copy'",
            env.bq_table("ops", "runs")
        ))
        .await;
    assert_eq!(
        (
            ledger.get(0, "n"),
            ledger.get(0, "runs"),
            ledger.get(0, "rows")
        ),
        (Some("5"), Some("1"), Some("4370"))
    );
}

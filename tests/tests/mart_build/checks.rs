//! Data-quality checks: a tripped fail condition keeps yesterday's data and skips the
//! dependents; metrics never block; the row count's change compares partitions.

use mart_build::{CheckKind, Outcome};
use sluice_tests::marts::{land_orders, Mode, ORDERS_AND_USERS, THREE_DAYS_OF_ORDERS};
use sluice_tests::TestEnv;

use super::{assert_built, daily, outcome, result, run_marts, Marts, TOTAL};

#[tokio::test]
async fn a_tripped_fail_condition_keeps_yesterdays_data_and_skips_dependents() {
    let env = TestEnv::new().await;
    land_orders(&env, Mode::Incremental, &THREE_DAYS_OF_ORDERS).await;
    let p = env.pipeline(ORDERS_AND_USERS);
    let marts = Marts::new(&env, &[("m/daily.sql", &daily()), ("m/total.sql", TOTAL)]);
    assert_built(&run_marts(&p, &marts, "local", &["2024-05-01"], |_| {}).await);
    // Bad data arrives for the 2nd: an order without a user.
    env.bq_query(&format!(
        "INSERT INTO {} (id, user_id, total, created_at) VALUES (7, NULL, NUMERIC '5.00', TIMESTAMP '2024-05-02 12:00:00+00')",
        env.bq_table("src", "orders")
    ))
    .await;
    let s = run_marts(&p, &marts, "local", &["2024-05-02"], |_| {}).await;
    assert_eq!(outcome(&s, "m.daily", "2024-05-02"), Outcome::Failed);
    assert_eq!(
        outcome(&s, "m.total", "2024-05-02"),
        Outcome::UpstreamFailed("m.daily".into())
    );
    assert_eq!(s.failed(), 2);
    let err = result(&s, "m.daily", "2024-05-02").error.clone().unwrap();
    assert!(
        err.contains("fail condition tripped: no_anonymous_orders (0/1 = 0.0000 < 1)"),
        "{err}"
    );
    // Nothing of the 2nd reached the table; the 1st and the total built from it stand.
    assert_eq!(env.bq_count("m", "daily", "").await, 1);
    assert_eq!(
        env.bq_count("m", "daily", "WHERE day = DATE '2024-05-01'")
            .await,
        1
    );
    let total = env.bq_table("m", "total");
    assert_eq!(
        env.bq_scalar(&format!("SELECT CAST(days AS STRING) AS n FROM {total}"))
            .await
            .as_deref(),
        Some("1")
    );
    // Results and the ledger say what happened.
    let dq = env.bq_table("ops", "dq_results");
    let failed = env.bq_query(&format!(
        "SELECT check_name, kind, CAST(value AS STRING) AS value, passed FROM {dq} WHERE ds = DATE '2024-05-02' AND NOT passed ORDER BY check_name"
    )).await;
    let rows: Vec<(String, String)> = (0..failed.rows.len())
        .map(|i| {
            (
                failed.get(i, "check_name").unwrap().into(),
                failed.get(i, "kind").unwrap().into(),
            )
        })
        .collect();
    // big_days is a metric that failed too: recorded, never blocking.
    assert_eq!(
        rows,
        [
            ("big_days".to_string(), "dq_metric".to_string()),
            ("no_anonymous_orders".into(), "fail_condition".into())
        ]
    );
    let runs = env.bq_table("ops", "runs");
    let statuses = env.bq_query(&format!(
        "SELECT table_name, status, error FROM {runs} WHERE logical_date = DATE '2024-05-02' ORDER BY table_name"
    )).await;
    assert_eq!(
        (statuses.get(0, "table_name"), statuses.get(0, "status")),
        (Some("daily"), Some("failed"))
    );
    assert_eq!(
        (statuses.get(1, "table_name"), statuses.get(1, "status")),
        (Some("total"), Some("skipped"))
    );
    assert!(statuses
        .get(1, "error")
        .unwrap()
        .contains("upstream_failed: m.daily"));
}

#[tokio::test]
async fn metrics_never_block_and_row_count_change_compares_partitions() {
    let env = TestEnv::new().await;
    land_orders(&env, Mode::Incremental, &THREE_DAYS_OF_ORDERS).await;
    let p = env.pipeline(ORDERS_AND_USERS);
    let gated = daily().replace(
        "dq_metrics:\n  - {name: big_days, threshold: 0.5, expression: \"COUNTIF(revenue > 100)\"}\n  - row_count_change: {max_ratio: 0.5}",
        "  - row_count_change: {max_ratio: 0.5}\ndq_metrics:\n  - {name: big_days, threshold: 0.5, expression: \"COUNTIF(revenue > 100)\"}",
    );
    // Partitions of one row each: no change; a day with 3 rows (by user) would be a change.
    let by_user = gated
        .replace("GROUP BY day", "GROUP BY day, user_id")
        .replace(
            "SELECT DATE(created_at) AS day,",
            "SELECT DATE(created_at) AS day, user_id,",
        );
    let marts = Marts::new(&env, &[("m/daily.sql", &by_user)]);
    let s = run_marts(&p, &marts, "local", &["2024-05-01", "2024-05-02"], |_| {}).await;
    assert_built(&s);
    let r = result(&s, "m.daily", "2024-05-02");
    let big = r.checks.iter().find(|c| c.name == "big_days").unwrap();
    assert!(!big.passed && big.kind == CheckKind::DqMetric, "{big:?}");
    let change = r
        .checks
        .iter()
        .find(|c| c.name == "row_count_change")
        .unwrap();
    assert!(change.passed && change.value == 2.0, "{change:?}");
    // One order more on the 3rd than the 2nd had, and two more: 4 rows against 2 is +100%.
    env.bq_query(&format!(
        "INSERT INTO {} (id, user_id, total, created_at) VALUES (8, 20, NUMERIC '1', TIMESTAMP '2024-05-03 01:00:00+00'), (9, 21, NUMERIC '1', TIMESTAMP '2024-05-03 02:00:00+00')",
        env.bq_table("src", "orders")
    )).await;
    let s = run_marts(&p, &marts, "local", &["2024-05-03"], |_| {}).await;
    let r = result(&s, "m.daily", "2024-05-03");
    assert_eq!(r.outcome, Outcome::Failed, "{}", s.table());
    assert!(
        r.error
            .as_deref()
            .unwrap()
            .contains("row_count_change (4 rows against 2 before"),
        "{:?}",
        r.error
    );
    assert_eq!(
        env.bq_count("m", "daily", "WHERE day = DATE '2024-05-03'")
            .await,
        0
    );
}

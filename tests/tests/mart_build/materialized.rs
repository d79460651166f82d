//! How a mart is written: partitions replaced idempotently and backfilled over a range,
//! merged by key, or a view.

use sluice_tests::marts::{land_orders, Mode, ORDERS_AND_USERS, THREE_DAYS_OF_ORDERS};
use sluice_tests::TestEnv;

use super::{assert_built, daily, run_marts, Marts, TOTAL};

#[tokio::test]
async fn partitions_are_replaced_idempotently_and_backfilled_over_a_range() {
    let env = TestEnv::new().await;
    land_orders(&env, Mode::Incremental, &THREE_DAYS_OF_ORDERS).await;
    let p = env.pipeline(ORDERS_AND_USERS);
    let marts = Marts::new(&env, &[("m/daily.sql", &daily()), ("m/total.sql", TOTAL)]);
    let s = run_marts(
        &p,
        &marts,
        "local",
        &["2024-05-01", "2024-05-02", "2024-05-03"],
        |_| {},
    )
    .await;
    assert_built(&s);
    assert_eq!(s.results.len(), 6);
    // Dates run in order: the total after the last date covers all three.
    assert_eq!(env.bq_count("m", "daily", "").await, 3);
    let total = env.bq_table("m", "total");
    assert_eq!(
        env.bq_scalar(&format!("SELECT CAST(revenue AS STRING) AS r FROM {total}"))
            .await
            .unwrap()
            .parse::<f64>()
            .unwrap(),
        28.0
    );

    // A rerun of one day changes nothing; a corrected input replaces just that day.
    let s = run_marts(&p, &marts, "local", &["2024-05-02"], |o| {
        o.select = vec!["daily".into()]
    })
    .await;
    assert_built(&s);
    assert_eq!(env.bq_count("m", "daily", "").await, 3);
    env.bq_query(&format!(
        "UPDATE {} SET total = NUMERIC '100.00' WHERE id = 3",
        env.bq_table("src", "orders")
    ))
    .await;
    let s = run_marts(&p, &marts, "local", &["2024-05-02"], |o| {
        o.select = vec!["daily".into()]
    })
    .await;
    assert_built(&s);
    let daily = env.bq_table("m", "daily");
    let revenue = |day: &'static str| {
        let sql =
            format!("SELECT CAST(revenue AS STRING) AS r FROM {daily} WHERE day = DATE '{day}'");
        let env = &env;
        async move { env.bq_scalar(&sql).await.unwrap().parse::<f64>().unwrap() }
    };
    assert_eq!(revenue("2024-05-02").await, 101.0);
    assert_eq!(revenue("2024-05-01").await, 15.0);
    assert_eq!(
        env.bq_count("m", "daily", "WHERE day = DATE '2024-05-02'")
            .await,
        1
    );

    // The catalog is the warehouse: descriptions are on the table and its columns.
    let t = env
        .bq
        .get_table(&env.dataset("m"), "daily")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(t["description"], "Orders and revenue per day.");
    assert_eq!(t["timePartitioning"]["field"], "day");
    let revenue_field = t["schema"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "revenue")
        .unwrap()
        .clone();
    assert_eq!(revenue_field["description"], "Sum of totals.");

    // The ledger has a row per mart and date; staging tables are gone.
    let runs = env.bq_table("ops", "runs");
    let n = env
        .bq_scalar(&format!(
            "SELECT COUNT(*) AS n FROM {runs} WHERE worker = 'mart-build' AND status = 'success'"
        ))
        .await;
    // 3 dates of 2 marts, then daily alone twice.
    assert_eq!(n.as_deref(), Some("8"));
    let staging = env
        .bq_scalar(&format!(
            "SELECT COUNT(*) AS n FROM `{}.{}`.INFORMATION_SCHEMA.TABLES",
            env.stack.bq_project,
            env.dataset("sluice_staging")
        ))
        .await;
    assert_eq!(staging.as_deref(), Some("0"));
}

#[tokio::test]
async fn merge_and_view_marts() {
    let env = TestEnv::new().await;
    land_orders(&env, Mode::Incremental, &THREE_DAYS_OF_ORDERS).await;
    let p = env.pipeline(ORDERS_AND_USERS);
    let users = "/*
description: Totals per user, merged.
materialized: merge
unique_key: user_id
*/
SELECT user_id, SUM(total) AS total, MAX(created_at) AS last_order_at
FROM src.orders WHERE created_at < @ds_end GROUP BY user_id
";
    let view = "/*
description: Users with more than 5 spent.
materialized: view
*/
SELECT user_id FROM m.users WHERE total > 5
";
    let marts = Marts::new(&env, &[("m/users.sql", users), ("m/big.sql", view)]);
    assert_built(&run_marts(&p, &marts, "local", &["2024-05-01"], |_| {}).await);
    assert_eq!(env.bq_count("m", "users", "").await, 2);
    assert_eq!(env.bq_count("m", "big", "").await, 1);
    // Twice: the merge by key is idempotent.
    assert_built(&run_marts(&p, &marts, "local", &["2024-05-03"], |_| {}).await);
    assert_built(&run_marts(&p, &marts, "local", &["2024-05-03"], |_| {}).await);
    assert_eq!(env.bq_count("m", "users", "").await, 4);
    // User 10's later order updated its row rather than adding one.
    let users_t = env.bq_table("m", "users");
    let total = env
        .bq_scalar(&format!(
            "SELECT CAST(total AS STRING) AS t FROM {users_t} WHERE user_id = 10"
        ))
        .await;
    assert_eq!(total.unwrap().parse::<f64>().unwrap(), 17.5);
    assert_eq!(env.bq_count("m", "big", "").await, 2);
    let t = env
        .bq
        .get_table(&env.dataset("m"), "big")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(t["type"], "VIEW", "{t}");
}

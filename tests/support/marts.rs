//! The marts fixtures mart-build's, the monitor's and the shared tests use: `src.orders` landed
//! in BigQuery as pg-copy lands it, the daily orders mart `m.daily`, and a marts directory
//! written from files.

use std::path::Path;

use crate::TestEnv;

/// The `tables:` of source `src` that the marts read: `orders` (incremental on `created_at`,
/// so landed partitioned by day) and `users` (full).
pub const ORDERS_AND_USERS: &str =
    "orders: { mode: incremental, watermark_column: created_at }\nusers: { mode: full }";

/// How pg-copy lands a table: an incremental one partitioned by day, a full one whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Incremental,
    Full,
}

/// One order: `(id, user_id, total, created_at)`, `user_id` as SQL (`NULL` for an anonymous
/// order), `total` a NUMERIC literal's text, `created_at` a TIMESTAMP literal's.
pub type Order<'a> = (i64, &'a str, &'a str, &'a str);

/// Three days of orders, two a day (2024-05-01 to 2024-05-03; 28.00 in all).
pub const THREE_DAYS_OF_ORDERS: [Order; 6] = [
    (1, "10", "10.50", "2024-05-01 08:00:00+00"),
    (2, "11", "4.50", "2024-05-01 23:59:59+00"),
    (3, "10", "7.00", "2024-05-02 10:00:00+00"),
    (4, "12", "1.00", "2024-05-02 11:00:00+00"),
    (5, "11", "2.00", "2024-05-03 12:00:00+00"),
    (6, "13", "3.00", "2024-05-03 13:00:00+00"),
];

/// Replaces `src.orders` in BigQuery with `orders`, as pg-copy would land it in `mode`.
pub async fn land_orders(env: &TestEnv, mode: Mode, orders: &[Order<'_>]) {
    env.bq
        .ensure_dataset(&env.dataset("src"), None)
        .await
        .unwrap();
    let rows: Vec<String> = orders
        .iter()
        .enumerate()
        .map(|(i, (id, user, total, at))| {
            if i == 0 {
                format!("SELECT {id} AS id, {user} AS user_id, NUMERIC '{total}' AS total, TIMESTAMP '{at}' AS created_at")
            } else {
                format!("UNION ALL SELECT {id}, {user}, NUMERIC '{total}', TIMESTAMP '{at}'")
            }
        })
        .collect();
    let partition = match mode {
        Mode::Incremental => " PARTITION BY DATE(created_at)",
        Mode::Full => "",
    };
    env.bq_query(&format!(
        "CREATE OR REPLACE TABLE {}{partition} AS\n{}",
        env.bq_table("src", "orders"),
        rows.join("\n")
    ))
    .await;
}

/// `m.daily`: orders, revenue and anonymous orders per day of `src.orders`, one partition per
/// day, with `checks` (YAML lines of its header: `fail_conditions:`, `dq_metrics:`, an
/// `owner:`) in its header.
pub fn daily_mart(checks: &str) -> String {
    format!(
        "/*
description: Orders and revenue per day.
materialized: partition
partition_by: day
columns:
  day: The day.
  revenue: Sum of totals.
{checks}*/
SELECT DATE(created_at) AS day, COUNT(*) AS orders, SUM(total) AS revenue,
       COUNTIF(user_id IS NULL) AS anonymous
FROM src.orders
WHERE created_at >= @ds_start AND created_at < @ds_end
GROUP BY day
"
    )
}

/// The checks mart-build's tests give `m.daily`: two fail conditions (no NULL day, no
/// anonymous order) and two metrics (days over 100, the row count's change).
pub const DAILY_CHECKS: &str = "fail_conditions:
  - not_null: day
  - {name: no_anonymous_orders, threshold: 1.0, expression: \"COUNTIF(anonymous = 0)\"}
dq_metrics:
  - {name: big_days, threshold: 0.5, expression: \"COUNTIF(revenue > 100)\"}
  - row_count_change: {max_ratio: 0.5}
";

/// Writes a marts directory afresh (what was in `dir` goes) from `(path, text)` pairs like
/// `("m/daily.sql", …)`.
pub fn write_marts(dir: &Path, files: &[(&str, &str)]) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    for (path, text) in files {
        let file = dir.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, text).unwrap();
    }
}

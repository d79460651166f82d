//! mart-build end to end: marts built in the BigQuery emulator from tables the pipeline lands.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mart_build::{CheckKind, MartResult, Options, Outcome, Summary};
use sluice::config::Pipeline;
use sluice::ledger::{Ledger, RunRecord, Status, Worker};
use sluice::marts::{Dag, Landed};
use sluice_tests::{binary, d, TestEnv};

/// The pipeline of these tests: source `src` lands `orders` (incremental) and `users` (full).
const TABLES: &str =
    "orders: { mode: incremental, watermark_column: created_at }\nusers: { mode: full }";

/// A marts directory of the test, written from `(path, text)` pairs like `("m/a.sql", ...)`.
struct Marts {
    dir: PathBuf,
}

impl Marts {
    fn new(env: &TestEnv, files: &[(&str, &str)]) -> Marts {
        let dir = std::env::temp_dir().join(format!("marts_{}", env.id));
        let _ = std::fs::remove_dir_all(&dir);
        for (path, text) in files {
            let file = dir.join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, text).unwrap();
        }
        Marts { dir }
    }

    fn dag(&self, p: &Pipeline) -> sluice::Result<Dag> {
        Dag::build(
            sluice::marts::load_dir(&self.dir)?,
            &Landed::of(p, &self.dir),
        )
    }
}

impl Drop for Marts {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn run_marts(
    p: &Pipeline,
    marts: &Marts,
    target: &str,
    dates: &[&str],
    f: impl FnOnce(&mut Options),
) -> Summary {
    let mut o = Options::new(target, dates.iter().map(|s| d(s)).collect());
    o.check_freshness = false;
    o.progress = false;
    f(&mut o);
    let dag = marts.dag(p).unwrap_or_else(|e| panic!("{e}"));
    mart_build::run(p, dag, o).await.expect("the run starts")
}

/// One mart's result for one date; the summary's table if it did not run.
fn result<'a>(s: &'a Summary, mart: &str, ds: &str) -> &'a MartResult {
    s.get(mart, d(ds))
        .unwrap_or_else(|| panic!("{mart} {ds} did not run:\n{}", s.table()))
}

fn outcome(s: &Summary, mart: &str, ds: &str) -> Outcome {
    result(s, mart, ds).outcome.clone()
}

fn assert_built(s: &Summary) {
    assert_eq!(s.failed(), 0, "{}", s.table());
}

/// `src.orders` in BigQuery, as pg-copy would land it: three days, two orders a day.
async fn land_orders(env: &TestEnv) {
    env.bq
        .ensure_dataset(&env.dataset("src"), None)
        .await
        .unwrap();
    env.bq_query(&format!(
        "CREATE OR REPLACE TABLE {} PARTITION BY DATE(created_at) AS
         SELECT 1 AS id, 10 AS user_id, NUMERIC '10.50' AS total, TIMESTAMP '2024-05-01 08:00:00+00' AS created_at
         UNION ALL SELECT 2, 11, NUMERIC '4.50', TIMESTAMP '2024-05-01 23:59:59+00'
         UNION ALL SELECT 3, 10, NUMERIC '7.00', TIMESTAMP '2024-05-02 10:00:00+00'
         UNION ALL SELECT 4, 12, NUMERIC '1.00', TIMESTAMP '2024-05-02 11:00:00+00'
         UNION ALL SELECT 5, 11, NUMERIC '2.00', TIMESTAMP '2024-05-03 12:00:00+00'
         UNION ALL SELECT 6, 13, NUMERIC '3.00', TIMESTAMP '2024-05-03 13:00:00+00'",
        env.bq_table("src", "orders")
    ))
    .await;
}

const DAILY: &str = "/*
description: Orders and revenue per day.
materialized: partition
partition_by: day
columns:
  day: The day.
  revenue: Sum of totals.
fail_conditions:
  - not_null: day
  - {name: no_anonymous_orders, threshold: 1.0, expression: \"COUNTIF(anonymous = 0)\"}
dq_metrics:
  - {name: big_days, threshold: 0.5, expression: \"COUNTIF(revenue > 100)\"}
  - row_count_change: {max_ratio: 0.5}
*/
SELECT DATE(created_at) AS day, COUNT(*) AS orders, SUM(total) AS revenue,
       COUNTIF(user_id IS NULL) AS anonymous
FROM src.orders
WHERE created_at >= @ds_start AND created_at < @ds_end
GROUP BY day
";

const TOTAL: &str = "/*
description: Revenue over every day built so far.
fail_conditions:
  - not_empty: true
*/
SELECT SUM(revenue) AS revenue, COUNT(*) AS days FROM m.daily
";

async fn text(env: &TestEnv, sql: &str, column: &str) -> Option<String> {
    env.bq_query(sql).await.get(0, column).map(String::from)
}

#[tokio::test]
async fn partitions_are_replaced_idempotently_and_backfilled_over_a_range() {
    let env = TestEnv::new().await;
    land_orders(&env).await;
    let p = env.pipeline(TABLES);
    let marts = Marts::new(&env, &[("m/daily.sql", DAILY), ("m/total.sql", TOTAL)]);
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
        text(
            &env,
            &format!("SELECT CAST(revenue AS STRING) AS r FROM {total}"),
            "r"
        )
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
        async move { text(env, &sql, "r").await.unwrap().parse::<f64>().unwrap() }
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
    let n = text(
        &env,
        &format!(
            "SELECT COUNT(*) AS n FROM {runs} WHERE worker = 'mart-build' AND status = 'success'"
        ),
        "n",
    )
    .await;
    // 3 dates of 2 marts, then daily alone twice.
    assert_eq!(n.as_deref(), Some("8"));
    let staging = env
        .bq_query(&format!(
            "SELECT COUNT(*) AS n FROM `{}.{}`.INFORMATION_SCHEMA.TABLES",
            env.stack.bq_project,
            env.dataset("sluice_staging")
        ))
        .await;
    assert_eq!(staging.get(0, "n"), Some("0"));
}

#[tokio::test]
async fn a_tripped_fail_condition_keeps_yesterdays_data_and_skips_dependents() {
    let env = TestEnv::new().await;
    land_orders(&env).await;
    let p = env.pipeline(TABLES);
    let marts = Marts::new(&env, &[("m/daily.sql", DAILY), ("m/total.sql", TOTAL)]);
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
        text(
            &env,
            &format!("SELECT CAST(days AS STRING) AS n FROM {total}"),
            "n"
        )
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
    land_orders(&env).await;
    let p = env.pipeline(TABLES);
    let gated = DAILY.replace(
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

#[tokio::test]
async fn independent_marts_run_in_parallel_and_dependents_after_them() {
    let env = TestEnv::new().await;
    land_orders(&env).await;
    let p = env.pipeline(TABLES);
    let leaf = |n: &str| {
        format!("/* description: {n} */\nSELECT user_id, SUM(total) AS total FROM src.orders GROUP BY user_id\n")
    };
    let (a, b, c) = (
        leaf("a"),
        "/* description: b */\nSELECT * FROM m.a\n",
        "/* description: c */\nSELECT * FROM m.a WHERE total > 5\n",
    );
    let dd = "/* description: d */\nSELECT b.user_id FROM m.b AS b JOIN m.c AS c USING (user_id)\n";
    let marts = Marts::new(
        &env,
        &[
            ("m/a.sql", &a),
            ("m/b.sql", b),
            ("m/c.sql", c),
            ("m/d.sql", dd),
        ],
    );
    let s = run_marts(&p, &marts, "local", &["2024-05-01"], |o| o.parallel = 2).await;
    assert_built(&s);
    let r = |m: &str| result(&s, m, "2024-05-01").clone();
    let end =
        |m: &str| r(m).started + chrono::Duration::milliseconds((r(m).seconds * 1000.0) as i64);
    let (ra, rb, rc, rd) = (r("m.a"), r("m.b"), r("m.c"), r("m.d"));
    assert!(
        rb.started >= end("m.a") - chrono::Duration::milliseconds(5)
            && rc.started >= end("m.a") - chrono::Duration::milliseconds(5)
    );
    // b and c overlap.
    assert!(
        rb.started < end("m.c") && rc.started < end("m.b"),
        "b {:?}+{} c {:?}+{}",
        rb.started,
        rb.seconds,
        rc.started,
        rc.seconds
    );
    assert!(rd.started >= end("m.b").max(end("m.c")) - chrono::Duration::milliseconds(5));
    let _ = ra;
    // With parallel 1 nothing overlaps.
    let s = run_marts(&p, &marts, "local", &["2024-05-01"], |o| o.parallel = 1).await;
    assert_built(&s);
    let mut spans: Vec<(chrono::DateTime<chrono::Utc>, f64)> =
        s.results.iter().map(|r| (r.started, r.seconds)).collect();
    spans.sort_by_key(|s| s.0);
    for w in spans.windows(2) {
        let end = w[0].0 + chrono::Duration::milliseconds((w[0].1 * 1000.0) as i64);
        assert!(
            w[1].0 >= end - chrono::Duration::milliseconds(5),
            "{spans:?}"
        );
    }
}

#[tokio::test]
async fn merge_and_view_marts() {
    let env = TestEnv::new().await;
    land_orders(&env).await;
    let p = env.pipeline(TABLES);
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
    let total = text(
        &env,
        &format!("SELECT CAST(total AS STRING) AS t FROM {users_t} WHERE user_id = 10"),
        "t",
    )
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

#[tokio::test]
async fn dev_and_pr_targets_read_production_inputs_and_write_their_own_datasets() {
    let env = TestEnv::new().await;
    // "Production" inputs here are the unsuffixed dataset of a source of this test only.
    let raw = format!("raw_{}", env.id);
    let yaml = env
        .pipeline_yaml(TABLES, None, "")
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
        .bq_query(&format!("SELECT n FROM `{}.{pr}.b`", env.stack.bq_project))
        .await;
    assert_eq!(n.get(0, "n"), Some("1"));
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

fn pg_copy_ledger_row(env: &TestEnv, ds: &str) -> RunRecord {
    let now = chrono::Utc::now();
    RunRecord {
        run_id: format!("test-{}", env.id),
        worker: Worker::PgCopy,
        target: "local".into(),
        source: Some("src".into()),
        table_name: Some("orders".into()),
        logical_date: Some(d(ds)),
        lsn_range: None,
        started_at: now,
        finished_at: now,
        status: Status::Success,
        rows_in: 2,
        rows_loaded: 2,
        rows_dead_lettered: 0,
        bytes: 0,
        error: None,
        details: serde_json::json!({}),
    }
}

#[tokio::test]
async fn marts_wait_for_fresh_inputs_then_fail_naming_the_late_one() {
    let env = TestEnv::new().await;
    land_orders(&env).await;
    let p = env.pipeline(TABLES);
    let marts = Marts::new(&env, &[("m/daily.sql", DAILY), ("m/total.sql", TOTAL)]);
    let fresh = |o: &mut Options| {
        o.check_freshness = true;
        o.wait = Duration::from_millis(1500);
        o.poll = Duration::from_millis(300);
    };
    let s = run_marts(&p, &marts, "local", &["2024-05-01"], fresh).await;
    let r = result(&s, "m.daily", "2024-05-01");
    assert_eq!(r.outcome, Outcome::Failed);
    let err = r.error.as_deref().unwrap();
    assert!(
        err.contains("src.orders: pg-copy has not copied 2024-05-01"),
        "{err}"
    );
    assert!(r.seconds >= 1.4, "it waited: {}", r.seconds);
    assert_eq!(
        outcome(&s, "m.total", "2024-05-01"),
        Outcome::UpstreamFailed("m.daily".into())
    );

    // pg-copy finishes the day while the mart waits.
    let ledger = Ledger::open(env.bq.clone(), &env.dataset("ops"))
        .await
        .unwrap();
    let row = pg_copy_ledger_row(&env, "2024-05-01");
    let late = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1200)).await;
        ledger.record(&row).await.unwrap();
    });
    let s = run_marts(&p, &marts, "local", &["2024-05-01"], |o| {
        fresh(o);
        o.wait = Duration::from_secs(60);
    })
    .await;
    late.await.unwrap();
    assert_built(&s);
    assert!(result(&s, "m.daily", "2024-05-01").seconds >= 1.0);

    // Alone, `total` waits for daily's success on that date in the ledger: there is one now.
    let s = run_marts(&p, &marts, "local", &["2024-05-01"], |o| {
        fresh(o);
        o.select = vec!["total".into()];
    })
    .await;
    assert_built(&s);
    // ...and none for the 2nd.
    let s = run_marts(&p, &marts, "local", &["2024-05-02"], |o| {
        fresh(o);
        o.select = vec!["total".into()];
    })
    .await;
    let err = result(&s, "m.total", "2024-05-02").error.clone().unwrap();
    assert!(
        err.contains("mart m.daily has not built 2024-05-02"),
        "{err}"
    );
}

/// Runs the mart-build binary; its exit status and stderr.
fn cli(env: &TestEnv, marts: &Marts, args: &[&str]) -> (bool, String, String) {
    let config = marts.dir.join("pipeline.yaml");
    std::fs::write(&config, env.pipeline_yaml(TABLES, None, "")).unwrap();
    let out = std::process::Command::new(binary("mart-build"))
        .arg("--config")
        .arg(&config)
        .arg("--marts")
        .arg(&marts.dir)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[tokio::test]
async fn bad_marts_are_reported_before_anything_runs() {
    let env = TestEnv::new().await;
    let path = |p: &str| -> String {
        std::env::temp_dir()
            .join(format!("marts_{}", env.id))
            .join(p)
            .display()
            .to_string()
    };
    let cases: [(&[(&str, &str)], String); 4] = [
        (
            &[(
                "m/a.sql",
                "/* description: a */\nSELECT id\nFROM src.orders\nWHERE (id > 1\n",
            )],
            format!("{}:4: SQL: Expected: ), found: EOF", path("m/a.sql")),
        ),
        (
            &[
                ("m/a.sql", "/* description: a */\nSELECT * FROM m.b\n"),
                ("m/b.sql", "/* description: b */\nSELECT * FROM m.a\n"),
            ],
            "marts depend on each other in a cycle: m.".to_string(),
        ),
        (
            &[(
                "m/a.sql",
                "/* description: a */\nSELECT *\nFROM src.ordres\n",
            )],
            format!("{}:3: unknown table `src.ordres`", path("m/a.sql")),
        ),
        (
            &[(
                "m/a.sql",
                "/*\ndescription: a\nmaterialised: table\n*/\nSELECT 1 AS x FROM src.orders\n",
            )],
            format!(
                "{}:3: header: unknown field `materialised`",
                path("m/a.sql")
            ),
        ),
    ];
    for (files, want) in cases {
        let marts = Marts::new(&env, files);
        let (ok, _, stderr) = cli(
            &env,
            &marts,
            &["run", "--target", "local", "--ds", "2024-05-01"],
        );
        assert!(!ok, "{stderr}");
        assert!(stderr.contains(&want), "want {want}\ngot {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    }
    // Nothing was created.
    assert!(env
        .bq
        .get_table(&env.dataset("ops"), "runs")
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn the_cli_plans_renders_runs_and_exits_non_zero_on_failure() {
    let env = TestEnv::new().await;
    land_orders(&env).await;
    let bad_total = TOTAL.replace(
        "not_empty: true",
        "{name: never, threshold: 1.0, expression: \"COUNTIF(FALSE)\"}",
    );
    let marts = Marts::new(&env, &[("m/daily.sql", DAILY), ("m/total.sql", &bad_total)]);
    let (ok, plan, err) = cli(&env, &marts, &["plan"]);
    assert!(ok, "{err}");
    assert!(
        plan.contains("  1  m.daily  (partition, 4 checks)  reads src.orders")
            && plan.contains("  2  m.total  (table, 1 checks)  after m.daily"),
        "{plan}"
    );
    assert!(plan.contains("```mermaid\nflowchart LR\n"), "{plan}");
    let (ok, sql, err) = cli(
        &env,
        &marts,
        &[
            "render",
            "m.total",
            "--ds",
            "2024-05-01",
            "--target",
            "local",
        ],
    );
    assert!(ok, "{err}");
    assert!(
        sql.contains(&format!("`{}.m_t{}.daily`", env.stack.bq_project, env.id)),
        "{sql}"
    );
    let (ok, table, err) = cli(
        &env,
        &marts,
        &[
            "run",
            "--target",
            "local",
            "--ds",
            "2024-05-01",
            "--no-freshness",
        ],
    );
    assert!(!ok, "{table}\n{err}");
    assert!(
        table.contains("m.daily")
            && table.contains("FAILED")
            && table.contains("1 built, 1 failed or skipped"),
        "{table}"
    );
    assert!(err.contains("[2/2] FAILED"), "{err}");
}

#[tokio::test]
async fn mart_unit_tests_run_in_the_emulator() {
    let env = TestEnv::new().await;
    let fixture = "- name: sums per day
  ds: 2024-05-01
  given:
    src.orders:
      columns: {total: NUMERIC, created_at: TIMESTAMP}
      rows:
        - {id: 1, user_id: 1, total: '2.50', created_at: '2024-05-01 10:00:00'}
        - {id: 2, user_id: 2, total: '1.50', created_at: '2024-05-01 11:00:00'}
        - {id: 3, user_id: 2, total: '9.00', created_at: '2024-05-02 11:00:00'}
  expect:
    - {day: 2024-05-01, orders: 2, revenue: 4, anonymous: 0}
- name: a wrong expectation fails
  ds: 2024-05-01
  given:
    src.orders:
      columns: {id: INT64, user_id: INT64, total: NUMERIC, created_at: TIMESTAMP}
      rows: []
  expect:
    - {day: 2024-05-01, orders: 1}
";
    let marts = Marts::new(
        &env,
        &[
            ("m/daily.sql", DAILY),
            ("m/daily.test.yaml", fixture),
            ("m/total.sql", TOTAL),
        ],
    );
    let (ok, out, err) = cli(&env, &marts, &["test", "--target", "local"]);
    assert!(!ok, "{out}{err}");
    assert!(out.contains("ok    m.daily: sums per day"), "{out}");
    assert!(out.contains("FAIL  m.daily: a wrong expectation fails\nexpected 1 rows, got 0\n  missing  {\"day\":\"2024-05-01\",\"orders\":1}"), "{out}");
    assert!(out.contains("--    m.total: no unit tests"), "{out}");
    assert!(
        out.contains("1 passed, 1 failed, 1 marts without tests"),
        "{out}"
    );
}

/// The shop's own marts pass their unit tests (the files in `marts/`).
#[tokio::test]
async fn the_shop_marts_pass_their_unit_tests() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = std::process::Command::new(binary("mart-build"))
        .arg("--config")
        .arg(root.join("pipeline.yaml"))
        .args(["test", "--target", "local"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(" 0 failed, 0 marts without tests"),
        "{stdout}"
    );
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
    let got = text(
        &env,
        &format!(
            // In cents: the emulator prints NUMERIC with trailing zeros.
            "SELECT CONCAT(CAST(CAST(total * 100 AS INT64) AS STRING), ' ', CAST(changes AS STRING)) AS v FROM {}",
            env.bq_table("m", "invoiced")
        ),
        "v",
    )
    .await;
    assert_eq!(got.as_deref(), Some("1575 1"));
}

/// One rule for `--target` in all four workers: a command that touches a target needs one, and
/// says so in the same words; `--help` pages list the same shared flags.
#[tokio::test]
async fn every_worker_asks_for_a_target_the_same_way() {
    let env = TestEnv::new().await;
    let marts = Marts::new(&env, &[("m/daily.sql", DAILY)]);
    let config = marts.dir.join("pipeline.yaml");
    std::fs::write(
        &config,
        env.pipeline_yaml(TABLES, Some("tables: [orders]"), ""),
    )
    .unwrap();
    for (worker, args) in [
        ("pg-copy", &[][..]),
        ("cdc-sync", &["run"][..]),
        ("log-ingest", &["replay"][..]),
        ("mart-build", &["run", "--ds", "2024-05-01"][..]),
    ] {
        let mut cmd = std::process::Command::new(binary(worker));
        cmd.args(args).arg("--config").arg(&config);
        if worker == "mart-build" {
            cmd.arg("--marts").arg(&marts.dir);
        }
        let out = cmd.env_remove("SLUICE_TARGET").output().unwrap();
        assert!(!out.status.success(), "{worker} ran without a target");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.trim_end().ends_with(&format!(
                "{worker}: config: --target is required (local, dev, prod or pr-N; or set SLUICE_TARGET)"
            )),
            "{worker}: {stderr}"
        );
        let help = std::process::Command::new(binary(worker))
            .args(args.iter().take(1).filter(|a| !a.starts_with('-')))
            .arg("--help")
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&help.stdout);
        for flag in [
            "--config <CONFIG>",
            "--target <TARGET>",
            "--log-format <LOG_FORMAT>",
        ] {
            assert!(help.contains(flag), "{worker} --help lacks {flag}:\n{help}");
        }
    }
}

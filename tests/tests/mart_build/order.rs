//! The order marts run in: independent marts in parallel, dependents after them, and each
//! waiting for its inputs to be fresh.

use std::time::Duration;

use mart_build::{Options, Outcome};
use sluice::ledger::Status;
use sluice_tests::ledger::pg_copy_run;
use sluice_tests::marts::{land_orders, Mode, ORDERS_AND_USERS, THREE_DAYS_OF_ORDERS};
use sluice_tests::TestEnv;

use super::{assert_built, daily, outcome, result, run_marts, Marts, TOTAL};

#[tokio::test]
async fn independent_marts_run_in_parallel_and_dependents_after_them() {
    let env = TestEnv::new().await;
    land_orders(&env, Mode::Incremental, &THREE_DAYS_OF_ORDERS).await;
    let p = env.pipeline(ORDERS_AND_USERS);
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
async fn marts_wait_for_fresh_inputs_then_fail_naming_the_late_one() {
    let env = TestEnv::new().await;
    land_orders(&env, Mode::Incremental, &THREE_DAYS_OF_ORDERS).await;
    let p = env.pipeline(ORDERS_AND_USERS);
    let marts = Marts::new(&env, &[("m/daily.sql", &daily()), ("m/total.sql", TOTAL)]);
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
    let ledger = env.ledger().await;
    let row = pg_copy_run(
        &format!("test-{}", env.id),
        "orders",
        "2024-05-01",
        &chrono::Utc::now().to_rfc3339(),
        Status::Success,
        None,
    );
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

//! Data-quality checks of a real mart-build run: a tripped fail condition and a failing metric
//! alert (naming the mart's owner) and clear after the fix; the digest lists them.

use serde_json::json;
use sluice_tests::d;
use sluice_tests::marts::{daily_mart, land_orders, write_marts, Mode, Order};

use super::Setup;

/// The checks of `m.daily` here, owned by ana: a fail condition that trips on anonymous
/// orders, and a DQ metric that fails on a day of 100 or more.
const CHECKS: &str = "owner: \"@ana\"
fail_conditions:
  - {name: no_anonymous_orders, threshold: 1.0, expression: \"COUNTIF(anonymous = 0)\"}
dq_metrics:
  - {name: big_days, threshold: 1.0, expression: \"COUNTIF(revenue < 100)\"}
";

/// Two orders on 2024-05-01 (410.50 in all), the second by `user` (SQL: `NULL` for none).
fn orders(user: &str) -> [Order<'_>; 2] {
    [
        (1, "10", "10.50", "2024-05-01 08:00:00+00"),
        (2, user, "400.00", "2024-05-01 09:00:00+00"),
    ]
}

/// Builds the test's marts for 2024-05-01 with mart-build's library, as a run would.
async fn build_daily(s: &Setup) -> mart_build::Summary {
    let p = sluice::config::Pipeline::load(&s.dir.join("pipeline.yaml")).unwrap();
    let marts = s.dir.join("marts");
    let dag = sluice::marts::Dag::build(
        sluice::marts::load_dir(&marts).unwrap(),
        &sluice::marts::Landed::of(&p, &s.dir),
    )
    .unwrap();
    let mut o = mart_build::Options::new("local", vec![d("2024-05-01")]);
    o.check_freshness = false;
    o.progress = false;
    mart_build::run(&p, dag, o).await.expect("the run starts")
}

#[tokio::test]
async fn a_tripped_fail_condition_and_a_failing_metric_alert_and_clear_after_the_fix() {
    let s = Setup::new(
        "orders: { mode: full }",
        &[("slack", "slack", "/slack")],
        &[],
    )
    .await;
    write_marts(
        &s.dir.join("marts"),
        &[("m/daily.sql", &daily_mart(CHECKS))],
    );
    land_orders(&s.env, Mode::Full, &orders("NULL")).await;
    let built = build_daily(&s).await;
    assert_eq!(built.failed(), 1, "{}", built.table());

    let (ok, out, err) = s
        .monitor(&["check", "--no-page", "--fail-on-findings"])
        .await;
    assert!(!ok, "--fail-on-findings exits non-zero:\n{out}\n{err}");
    for key in [
        "fail_condition:m.daily:no_anonymous_orders:2024-05-01",
        "dq_metric:m.daily:big_days:2024-05-01",
    ] {
        assert!(out.contains(&format!("opened    {key}")), "{key}:\n{out}");
    }
    // The build failed because of the check: one incident, carrying the run's error.
    assert!(!out.contains("failed:mart-build"), "{out}");
    let tripped = s
        .sink
        .taken("/slack")
        .into_iter()
        .find(|b| b["text"].as_str().unwrap().contains("fail condition"))
        .unwrap();
    let error = tripped["blocks"][3]["text"]["text"].as_str().unwrap();
    assert!(
        error.starts_with("```fail condition tripped: no_anonymous_orders"),
        "{tripped:#}"
    );
    assert!(
        tripped["blocks"][2]["fields"]
            .as_array()
            .unwrap()
            .contains(&json!({"type": "mrkdwn", "text": "*Value*\n0 of 1 rows (0.0000)"})),
        "what the check counted: {tripped:#}"
    );
    let titles: Vec<String> = s
        .sink
        .taken("/slack")
        .iter()
        .map(|b| b["blocks"][0]["text"]["text"].as_str().unwrap().to_string())
        .collect();
    assert!(titles.contains(&"🔴 fail condition no_anonymous_orders failed on m.daily for 2024-05-01 (the mart and its dependents were not updated)".to_string()), "{titles:#?}");
    assert!(
        titles.contains(&"🟠 DQ metric big_days failed on m.daily for 2024-05-01".to_string()),
        "{titles:#?}"
    );
    for b in s.sink.taken("/slack") {
        assert!(
            b["text"].as_str().unwrap().ends_with("(<@U024BE7LH>)"),
            "the mart's owner is mentioned: {b:#}"
        );
    }

    // The digest lists the failure and the checks; a dry run sends nothing.
    let before = s.sink.taken("/slack").len();
    let now = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339();
    let (ok, out, err) = s.monitor(&["digest", "--dry-run", "--now", &now]).await;
    assert!(ok, "{out}\n{err}");
    assert!(
        out.contains("sluice monitor is alive: test on local."),
        "{out}"
    );
    assert!(
        out.contains("mart-build: 0 ok, 1 failed, 0 skipped"),
        "{out}"
    );
    assert!(
        out.contains("• m.daily for 2024-05-01: 0 passed, failed: no_anonymous_orders, big_days"),
        "{out}"
    );
    // The digest of today (as of tomorrow) expects the marts built for yesterday, which never
    // were: their checks are listed as not computed.
    let yesterday = chrono::Utc::now().date_naive() - chrono::Duration::days(1);
    assert!(
        out.contains(&format!(
            "• m.daily for {yesterday}: 0 passed, not computed: no_anonymous_orders, big_days"
        )),
        "{out}"
    );
    assert!(
        out.contains("Query cost: unavailable (the BigQuery emulator records no bytes billed)."),
        "{out}"
    );
    assert_eq!(s.sink.taken("/slack").len(), before);

    land_orders(&s.env, Mode::Full, &orders("11")).await;
    let built = build_daily(&s).await;
    assert_eq!(built.failed(), 0, "{}", built.table());
    let out = s.check(&chrono::Utc::now().to_rfc3339()).await;
    assert!(
        out.contains("resolved  fail_condition:m.daily:no_anonymous_orders:2024-05-01"),
        "{out}"
    );
    // The metric still fails (a 400 day): it stays open, and is not posted again.
    assert!(
        out.contains("seen      dq_metric:m.daily:big_days:2024-05-01\n"),
        "{out}"
    );

    // A digest is sent to the default channel.
    let (ok, out, err) = s.monitor(&["digest", "--now", &now]).await;
    assert!(ok && out.contains("digest sent to slack"), "{out}\n{err}");
    let digest = s.sink.taken("/slack").pop().unwrap();
    assert!(
        digest["blocks"][0]["text"]["text"]
            .as_str()
            .unwrap()
            .starts_with("📋 sluice daily digest for "),
        "{digest:#}"
    );
}

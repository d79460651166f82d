//! The ops views: their unit tests pass, and they answer over the ops tables.

use sluice::ledger::Status;

use super::Setup;

#[tokio::test]
async fn the_ops_views_pass_their_unit_tests_and_answer_over_the_ops_tables() {
    let s = Setup::new(
        "orders: { mode: full, description: The orders., freshness: { warn_after: 1h, error_after: 2h } }",
        &[],
        &[],
    )
    .await;
    let (ok, out, err) = s.monitor(&["test-views"]).await;
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("9 cases, 0 failed"), "{out}");

    let now = chrono::Utc::now();
    s.copy_run(
        "r-1",
        "orders",
        "2026-12-02",
        &(now - chrono::Duration::minutes(90)).to_rfc3339(),
        Status::Success,
        None,
    )
    .await;
    let (ok, out, err) = s.monitor(&["views"]).await;
    assert!(ok, "{out}\n{err}");
    let ops = s.env.dataset("ops");
    for v in [
        "catalog_tables",
        "catalog_columns",
        "freshness",
        "run_heatmap",
        "dq_daily",
        "dead_letter_daily",
        "storage_cost",
    ] {
        assert!(out.contains(&format!("view {ops}.{v}")), "{v}:\n{out}");
    }
    assert!(out.contains(&format!("skipped {ops}.cost_daily")), "{out}");
    // The declaration is written by check; the views read it.
    s.check(&now.to_rfc3339()).await;
    let q = s
        .env
        .bq_query(&format!(
            "SELECT table_name, owner, status FROM {} WHERE dataset = '{}'",
            s.env.bq_table("ops", "freshness"),
            s.env.dataset("src")
        ))
        .await;
    assert_eq!(
        (
            q.get(0, "table_name"),
            q.get(0, "owner"),
            q.get(0, "status")
        ),
        (Some("orders"), Some("ana"), Some("warn"))
    );
    let q = s
        .env
        .bq_scalar(&format!(
            "SELECT runs FROM {} WHERE worker = 'pg-copy'",
            s.env.bq_table("ops", "run_heatmap")
        ))
        .await;
    assert_eq!(q.as_deref(), Some("1"));
}

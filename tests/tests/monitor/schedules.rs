//! Schedules: a schedule that fired without a run is a missed run, until one starts.

use sluice::ledger::Status;

use super::Setup;

#[tokio::test]
async fn a_schedule_that_fired_without_a_run_is_a_missed_run_until_one_starts() {
    let s = Setup::new(
        "orders: { mode: full, schedule: daily }",
        &[("slack", "slack", "/slack")],
        &[],
    )
    .await;
    // A pipeline without marts has no marts/ directory: that is no marts, not an error.
    std::fs::remove_dir_all(s.dir.join("marts")).unwrap();
    // The first check declares the table: yesterday's 06:00 was before it existed.
    let out = s.check("2026-12-01T05:00:00Z").await;
    assert!(out.contains("0 findings"), "{out}");
    s.copy_run(
        "r-1",
        "orders",
        "2026-12-01",
        "2026-12-01T06:00:05Z",
        Status::Success,
        None,
    )
    .await;
    for now in ["2026-12-01T07:00:00Z", "2026-12-02T06:20:00Z"] {
        let out = s.check(now).await;
        assert!(out.contains("0 findings"), "{now}: {out}");
    }
    // 06:00 on the 2nd came and went, and 30 minutes (missed_after) later no run had started.
    let out = s.check("2026-12-02T06:31:00Z").await;
    assert!(out.contains("opened    missed:pg-copy src.orders"), "{out}");
    let slack = s.sink.taken("/slack");
    assert_eq!(slack.len(), 1);
    assert_eq!(
        slack[0]["blocks"][0]["text"]["text"],
        "🔴 missed run: pg-copy src.orders was due at 2026-12-02 06:00 UTC (0 6 * * *) and has not started"
    );
    assert_eq!(slack[0]["text"], "🔴 missed run: pg-copy src.orders was due at 2026-12-02 06:00 UTC (0 6 * * *) and has not started (<@U024BE7LH>)");
    assert!(
        slack[0]["blocks"][3]["text"]["text"]
            .as_str()
            .unwrap()
            .contains("last started 24 h ago"),
        "{:#}",
        slack[0]
    );
    // It starts late: the incident clears.
    s.copy_run(
        "r-2",
        "orders",
        "2026-12-02",
        "2026-12-02T06:45:00Z",
        Status::Success,
        None,
    )
    .await;
    let out = s.check("2026-12-02T06:50:00Z").await;
    assert!(out.contains("resolved  missed:pg-copy src.orders"), "{out}");
    assert_eq!(s.sink.taken("/slack").len(), 2);
}

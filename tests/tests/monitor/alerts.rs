//! Alerts: a failed run is posted once, naming its owner, repeated after a while, then its
//! recovery; webhooks that answer 429 and 500 are retried, and a channel that keeps failing
//! (or has no URL) is recorded without keeping the alert from the others.

use serde_json::json;
use sluice::ledger::Status;

use super::Setup;

#[tokio::test]
async fn a_failed_run_is_posted_once_naming_the_owner_then_its_recovery() {
    let s = Setup::new(
        "orders: { mode: full }",
        &[("slack", "slack", "/slack"), ("teams", "teams", "/teams")],
        &[("/teams", &[202])],
    )
    .await;
    let project = s.env.stack.bq_project.clone();
    s.copy_run(
        "r-fail-1",
        "orders",
        "2026-12-02",
        "2026-12-03T06:00:05Z",
        Status::Failed,
        Some("relation \"orders\" does not exist"),
    )
    .await;

    let out = s.check("2026-12-03T06:30:00Z").await;
    assert!(out.contains("opened    failed:pg-copy:src.orders:2026-12-02  [alert → slack: delivered, teams: delivered]"), "{out}");
    let logs = "https://console.cloud.google.com/logs/query;query=jsonPayload.run_id%3D%22r-fail-1%22?project=".to_string() + &project;
    let slack = s.sink.taken("/slack");
    assert_eq!(slack.len(), 1, "{slack:#?}");
    assert_eq!(
        slack[0],
        json!({
            "text": "🔴 pg-copy failed: src.orders for 2026-12-02 (<@U024BE7LH>)",
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": "🔴 pg-copy failed: src.orders for 2026-12-02", "emoji": true}},
                {"type": "section", "text": {"type": "mrkdwn", "text": format!("Owner: <@U024BE7LH>\nTarget local · project {project} · run r-fail-1")}},
                {"type": "section", "fields": [
                    {"type": "mrkdwn", "text": "*Worker*\npg-copy"},
                    {"type": "mrkdwn", "text": "*Table / unit*\nsrc.orders"},
                    {"type": "mrkdwn", "text": "*Date*\n2026-12-02"},
                    {"type": "mrkdwn", "text": "*Rows in*\n0"},
                    {"type": "mrkdwn", "text": "*Loaded*\n0"},
                    {"type": "mrkdwn", "text": "*Dead-lettered*\n0"}
                ]},
                {"type": "section", "text": {"type": "mrkdwn", "text": "```relation \"orders\" does not exist```"}},
                {"type": "context", "elements": [{"type": "mrkdwn", "text": format!("<{logs}|Logs of the run> · <https://status.example/|Status page>")}]}
            ]
        })
    );
    let teams = s.sink.taken("/teams");
    assert_eq!(teams.len(), 1, "{teams:#?}");
    let card = &teams[0]["attachments"][0]["content"];
    assert_eq!(teams[0]["type"], "message");
    assert_eq!(card["type"], "AdaptiveCard");
    assert_eq!(
        card["body"][0]["text"],
        "🔴 pg-copy failed: src.orders for 2026-12-02"
    );
    assert_eq!(
        card["body"][1]["text"],
        format!("Owner: <at>Ana</at>\n\nTarget local · project {project} · run r-fail-1")
    );
    assert_eq!(
        card["msteams"]["entities"],
        json!([{"type": "mention", "text": "<at>Ana</at>", "mentioned": {"id": "ana@acme.example", "name": "Ana"}}])
    );
    assert_eq!(
        card["body"][2]["facts"][2],
        json!({"title": "Date", "value": "2026-12-02"})
    );
    assert_eq!(
        card["body"][3]["text"],
        "relation \"orders\" does not exist"
    );
    assert_eq!(
        card["actions"][0],
        json!({"type": "Action.OpenUrl", "title": "Logs of the run", "url": logs})
    );

    // However often check runs, an open incident is not posted again before repeat_after (4 h).
    for now in ["2026-12-03T06:40:00Z", "2026-12-03T08:00:00Z"] {
        let out = s.check(now).await;
        assert!(
            out.contains("seen      failed:pg-copy:src.orders:2026-12-02\n"),
            "{out}"
        );
        assert!(out.contains("1 findings, 0 messages delivered"), "{out}");
    }
    assert_eq!(
        (s.sink.taken("/slack").len(), s.sink.taken("/teams").len()),
        (1, 1)
    );
    // After it, a reminder.
    let out = s.check("2026-12-03T10:31:00Z").await;
    assert!(
        out.contains("[repeat → slack: delivered, teams: delivered]"),
        "{out}"
    );
    let slack = s.sink.taken("/slack");
    assert_eq!(
        slack[1]["blocks"][0]["text"]["text"],
        "🔴 Still open: pg-copy failed: src.orders for 2026-12-02"
    );

    // The rerun succeeds: one recovery notice, then silence.
    s.copy_run(
        "r-ok-2",
        "orders",
        "2026-12-02",
        "2026-12-03T10:40:00Z",
        Status::Success,
        None,
    )
    .await;
    let out = s.check("2026-12-03T10:50:00Z").await;
    assert!(out.contains("resolved  failed:pg-copy:src.orders:2026-12-02  [recovery → slack: delivered, teams: delivered]"), "{out}");
    let slack = s.sink.taken("/slack");
    assert_eq!(slack.len(), 3);
    assert_eq!(
        slack[2]["blocks"][0]["text"]["text"],
        "✅ Resolved: pg-copy failed: src.orders for 2026-12-02"
    );
    assert!(
        slack[2]["blocks"][1]["text"]["text"]
            .as_str()
            .unwrap()
            .contains("Open since 2026-12-03 06:30 UTC."),
        "{:#}",
        slack[2]
    );
    assert_eq!(
        s.sink.taken("/teams")[2]["attachments"][0]["content"]["body"][0]["color"],
        "Good"
    );
    let out = s.check("2026-12-03T11:00:00Z").await;
    assert!(out.contains("0 findings, 0 messages delivered"), "{out}");
    assert_eq!(
        (s.sink.taken("/slack").len(), s.sink.taken("/teams").len()),
        (3, 3)
    );

    let rows = s.alert_rows().await;
    let events: Vec<(&str, &str)> = rows.iter().map(|r| (r.1.as_str(), r.2.as_str())).collect();
    assert_eq!(
        events,
        [
            ("opened", "open"),
            ("seen", "open"),
            ("seen", "open"),
            ("repeated", "open"),
            ("resolved", "resolved")
        ],
        "{rows:#?}"
    );
    assert_eq!(
        rows[0].3,
        json!({"message": "alert", "complete": true, "channels": {"slack": "delivered", "teams": "delivered"}})
    );
}

#[tokio::test]
async fn webhooks_answering_429_and_500_are_retried_and_one_that_keeps_failing_is_recorded() {
    let s = Setup::new(
        "orders: { mode: full }\nusers: { mode: full }",
        &[("flaky", "slack", "/flaky"), ("down", "teams", "/down")],
        // /down refuses the first check's five attempts, then takes the next check's.
        &[
            ("/flaky", &[429, 500, 200]),
            ("/down", &[500, 500, 500, 500, 500, 200]),
        ],
    )
    .await;
    s.copy_run(
        "r-1",
        "orders",
        "2026-12-02",
        "2026-12-03T06:00:05Z",
        Status::Failed,
        Some("boom"),
    )
    .await;

    // A second failure: the channel that failed every retry for the first is not tried again
    // in the same check.
    s.copy_run(
        "r-2",
        "users",
        "2026-12-02",
        "2026-12-03T06:00:05Z",
        Status::Failed,
        Some("boom"),
    )
    .await;

    let (ok, out, err) = s
        .monitor(&["check", "--no-page", "--now", "2026-12-03T06:30:00Z"])
        .await;
    assert!(!ok, "an undelivered alert fails the check:\n{out}");
    assert!(err.contains("monitor: alert failed:pg-copy:src.orders:2026-12-02 not delivered to channel down: HTTP 500 Internal Server Error: refused (after 5 attempts)"), "{err}");
    assert!(
        !err.contains(&s.sink.url) && !out.contains(&s.sink.url),
        "the webhook URL is a secret:\n{out}\n{err}"
    );
    assert_eq!(
        (s.sink.attempts("/flaky"), s.sink.taken("/flaky").len()),
        (4, 2)
    );
    assert_eq!(
        (s.sink.attempts("/down"), s.sink.taken("/down").len()),
        (5, 0),
        "five attempts for the first message, none for the second"
    );
    assert!(err.contains("monitor: alert failed:pg-copy:src.users:2026-12-02 not delivered to channel down: not tried: the channel failed earlier in this check"), "{err}");
    let rows = s.alert_rows().await;
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].3["channels"]["flaky"], "delivered");
    assert_eq!(rows[0].3["complete"], false);
    assert!(
        rows[0].3["channels"]["down"]
            .as_str()
            .unwrap()
            .starts_with("HTTP 500"),
        "{rows:?}"
    );
    assert_eq!(rows[0].4, 1, "one delivery failure recorded");

    // The next check tries the channel that did not take it, and only that one.
    let out = s.check("2026-12-03T06:40:00Z").await;
    for key in [
        "failed:pg-copy:src.orders:2026-12-02",
        "failed:pg-copy:src.users:2026-12-02",
    ] {
        assert!(
            out.contains(&format!("retry     {key}  [alert → down: delivered]")),
            "{out}"
        );
    }
    assert_eq!(
        (s.sink.taken("/flaky").len(), s.sink.taken("/down").len()),
        (2, 2)
    );
    let out = s.check("2026-12-03T06:50:00Z").await;
    assert!(out.contains("2 findings, 0 messages delivered"), "{out}");
    assert_eq!(s.sink.attempts("/down"), 7);
}

#[tokio::test]
async fn a_channel_without_its_url_is_named_and_the_others_still_get_the_alert() {
    let s = Setup::new(
        "orders: { mode: full }",
        &[("ghost", "slack", ""), ("teams", "teams", "/teams")],
        &[],
    )
    .await;
    s.copy_run(
        "r-1",
        "orders",
        "2026-12-02",
        "2026-12-03T06:00:05Z",
        Status::Failed,
        Some("boom"),
    )
    .await;
    let (ok, out, err) = s
        .monitor(&["check", "--no-page", "--now", "2026-12-03T06:30:00Z"])
        .await;
    assert!(!ok, "{out}");
    let var = format!("MONITOR_TEST_{}_GHOST", s.env.id.to_uppercase());
    assert!(
        err.contains(&format!("not delivered to channel ghost: alerts.channels.ghost.url: environment variable {var} is not set")),
        "{err}"
    );
    assert_eq!(s.sink.taken("/teams").len(), 1, "the other channel got it");
}

//! monitor end to end: the real binary against the BigQuery emulator, posting to a local
//! webhook receiver (answering 200, 202, 429 and 500 as scripted), with the ledger seeded or
//! written by a real mart-build run, and the status page loaded in headless chromium.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use sluice::ledger::{Ledger, RunRecord, Status, Worker};
use sluice_tests::webhooks::Sink;
use sluice_tests::{binary, d, TestEnv};

/// The owner every table of these tests has.
const OWNERS: &str = "owners:\n  ana: { name: Ana, slack: U024BE7LH, teams: ana@acme.example }\n";

/// A test's pipeline directory (pipeline.yaml, marts/) and its webhook receiver.
struct Setup {
    env: TestEnv,
    dir: PathBuf,
    sink: Sink,
}

impl Setup {
    /// `tables` under source `src` (owned by ana), `channels` as (name, kind, path) posting to
    /// the receiver, whose paths answer as `answers` says.
    async fn new(
        tables: &str,
        channels: &[(&str, &str, &str)],
        answers: &[(&str, &[u16])],
    ) -> Setup {
        let env = TestEnv::new().await;
        let answers: BTreeMap<String, Vec<u16>> = answers
            .iter()
            .map(|(p, a)| (p.to_string(), a.to_vec()))
            .collect();
        let sink = Sink::start(0, answers)
            .await
            .expect("the webhook receiver starts");
        let mut alerts =
            String::from("alerts:\n  status_page_url: https://status.example/\n  channels:\n");
        for (name, kind, path) in channels {
            let var = format!(
                "MONITOR_TEST_{}_{}",
                env.id.to_uppercase(),
                name.to_uppercase()
            );
            // An empty path: the channel's variable is left unset.
            if !path.is_empty() {
                std::env::set_var(&var, format!("{}{path}", sink.url));
            }
            alerts.push_str(&format!(
                "    {name}: {{ kind: {kind}, url: {{ env: {var} }} }}\n"
            ));
        }
        let names: Vec<&str> = channels.iter().map(|c| c.0).collect();
        alerts.push_str(&format!("  default: [{}]\n", names.join(", ")));
        let yaml = env
            .pipeline_yaml(tables, None, &format!("{OWNERS}{alerts}"))
            .replace("    dsn: {", "    owner: ana\n    dsn: {");
        let dir = std::env::temp_dir().join(format!("monitor_{}", env.id));
        std::fs::create_dir_all(dir.join("marts")).unwrap();
        std::fs::write(dir.join("pipeline.yaml"), yaml).unwrap();
        Setup { env, dir, sink }
    }

    /// Runs `monitor --target local <args>`: (exit ok, stdout, stderr).
    async fn monitor(&self, args: &[&str]) -> (bool, String, String) {
        let out = tokio::process::Command::new(binary("monitor"))
            .arg("--config")
            .arg(self.dir.join("pipeline.yaml"))
            .args(["--target", "local", "--log-format", "json"])
            .args(args)
            .output()
            .await
            .expect("monitor runs");
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        );
        (out.status.success(), stdout, stderr)
    }

    /// `monitor check --no-page --now <now>`, which must succeed; its stdout.
    async fn check(&self, now: &str) -> String {
        let (ok, out, err) = self.monitor(&["check", "--no-page", "--now", now]).await;
        assert!(ok, "monitor check at {now} failed:\n{out}\n{err}");
        out
    }

    /// Records a pg-copy run of `src.<table>` in the ledger (see `copy_run`).
    async fn copy_run(
        &self,
        run_id: &str,
        table: &str,
        ds: &str,
        started: &str,
        status: Status,
        error: Option<&str>,
    ) {
        let r = copy_run(run_id, table, ds, started, status, error);
        self.ledger().await.record(&r).await.unwrap();
    }

    async fn ledger(&self) -> Ledger {
        Ledger::open(self.env.bq.clone(), &self.env.dataset("ops"))
            .await
            .unwrap()
    }

    /// ops.alerts, oldest first: (incident, event, status, sent_to, delivery_failures).
    async fn alert_rows(&self) -> Vec<(String, String, String, Value, i64)> {
        let q = self
            .env
            .bq_query(&format!(
                "SELECT incident_key, event, status, TO_JSON_STRING(sent_to) AS sent_to, delivery_failures FROM {} ORDER BY recorded_at, incident_key",
                self.env.bq_table("ops", "alerts")
            ))
            .await;
        (0..q.rows.len())
            .map(|i| {
                let sent: Value = q
                    .get(i, "sent_to")
                    .and_then(|s| serde_json::from_str(s).ok())
                    .unwrap_or(Value::Null);
                let sent = match sent {
                    Value::String(s) => serde_json::from_str(&s).unwrap_or(Value::Null),
                    v => v,
                };
                (
                    q.get(i, "incident_key").unwrap_or_default().to_string(),
                    q.get(i, "event").unwrap_or_default().to_string(),
                    q.get(i, "status").unwrap_or_default().to_string(),
                    sent,
                    q.get(i, "delivery_failures")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0),
                )
            })
            .collect()
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn at(s: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

/// A pg-copy ledger row of `src.<table>` for `ds`, started at `started`.
fn copy_run(
    run_id: &str,
    table: &str,
    ds: &str,
    started: &str,
    status: Status,
    error: Option<&str>,
) -> RunRecord {
    RunRecord {
        run_id: run_id.into(),
        worker: Worker::PgCopy,
        target: "local".into(),
        source: Some("src".into()),
        table_name: Some(table.into()),
        logical_date: Some(d(ds)),
        lsn_range: None,
        started_at: at(started),
        finished_at: at(started) + chrono::Duration::seconds(40),
        status,
        rows_in: if status == Status::Success { 3 } else { 0 },
        rows_loaded: if status == Status::Success { 3 } else { 0 },
        rows_dead_lettered: 0,
        bytes: 0,
        error: error.map(str::to_string),
        details: json!({}),
    }
}

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

/// A mart whose fail condition trips on anonymous orders, and a DQ metric on big days.
const DAILY: &str = "/*
description: Orders and revenue per day.
owner: \"@ana\"
materialized: partition
partition_by: day
columns:
  day: The day.
  revenue: Sum of totals.
fail_conditions:
  - {name: no_anonymous_orders, threshold: 1.0, expression: \"COUNTIF(anonymous = 0)\"}
dq_metrics:
  - {name: big_days, threshold: 1.0, expression: \"COUNTIF(revenue < 100)\"}
*/
SELECT DATE(created_at) AS day, COUNT(*) AS orders, SUM(total) AS revenue,
       COUNTIF(user_id IS NULL) AS anonymous
FROM src.orders
WHERE created_at >= @ds_start AND created_at < @ds_end
GROUP BY day
";

async fn land_orders(env: &TestEnv, user: &str) {
    env.bq
        .ensure_dataset(&env.dataset("src"), None)
        .await
        .unwrap();
    env.bq_query(&format!(
        "CREATE OR REPLACE TABLE {} AS
         SELECT 1 AS id, 10 AS user_id, NUMERIC '10.50' AS total, TIMESTAMP '2024-05-01 08:00:00+00' AS created_at
         UNION ALL SELECT 2, {user}, NUMERIC '400.00', TIMESTAMP '2024-05-01 09:00:00+00'",
        env.bq_table("src", "orders")
    ))
    .await;
}

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
    std::fs::create_dir_all(s.dir.join("marts/m")).unwrap();
    std::fs::write(s.dir.join("marts/m/daily.sql"), DAILY).unwrap();
    land_orders(&s.env, "NULL").await;
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

    land_orders(&s.env, "11").await;
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
        .bq_query(&format!(
            "SELECT runs FROM {} WHERE worker = 'pg-copy'",
            s.env.bq_table("ops", "run_heatmap")
        ))
        .await;
    assert_eq!(q.get(0, "runs"), Some("1"));
}

/// Loads a page in headless chromium: the DOM after its scripts ran, and a screenshot.
fn chromium(page: &Path, screenshot: &Path) -> String {
    let exe = std::env::var("SLUICE_CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let common = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--window-size=1280,2400",
    ];
    let url = format!("file://{}", page.display());
    let dom = std::process::Command::new(&exe)
        .args(common)
        .args(["--dump-dom", &url])
        .output()
        .unwrap_or_else(|e| panic!("{exe}: {e} (scripts/local-stack.sh up installs chromium)"));
    assert!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let shot = std::process::Command::new(&exe)
        .args(common)
        .arg(format!("--screenshot={}", screenshot.display()))
        .arg(&url)
        .output()
        .unwrap();
    assert!(
        shot.status.success(),
        "{}",
        String::from_utf8_lossy(&shot.stderr)
    );
    String::from_utf8_lossy(&dom.stdout).to_string()
}

#[tokio::test]
async fn the_status_page_shows_every_section_in_a_headless_browser() {
    let s = Setup::new(
        "orders: { mode: full, freshness: { warn_after: 1h, error_after: 2h } }\nusers: { mode: full }",
        &[("slack", "slack", "/slack")],
        &[],
    )
    .await;
    let now = chrono::Utc::now();
    let hours_ago = |h: i64| (now - chrono::Duration::hours(h)).to_rfc3339();
    s.copy_run(
        "r-1",
        "orders",
        "2026-12-02",
        &hours_ago(5),
        Status::Success,
        None,
    )
    .await;
    s.copy_run(
        "r-2",
        "users",
        "2026-12-02",
        &hours_ago(1),
        Status::Failed,
        Some("permission denied for table users"),
    )
    .await;

    let (ok, out, err) = s.monitor(&["check"]).await;
    assert!(ok, "{out}\n{err}");
    let path = s.env.lake_bucket_dir().join("status/index.html");
    assert!(
        out.contains(&format!("status page: {}", path.display())),
        "{out}"
    );
    let html = std::fs::read_to_string(&path).unwrap();
    assert!(
        !html.contains("<script src") && !html.contains("<link") && !html.contains("@import"),
        "self-contained"
    );

    let shot = std::env::temp_dir().join(format!("status_{}.png", s.env.id));
    let dom = chromium(&path, &shot);
    for id in monitor::SECTION_IDS {
        assert!(
            dom.contains(&format!("<section id=\"{id}\">")),
            "section {id} missing"
        );
    }
    assert!(
        dom.contains("<span class=\"muted\" id=\"alerts-count\">2</span>"),
        "two open alerts (failed users, stale orders)"
    );
    assert!(
        dom.contains("pg-copy failed: src.users for 2026-12-02"),
        "the failure is listed"
    );
    assert!(
        dom.contains(&format!(
            "<tr data-table=\"{}.orders\">",
            s.env.dataset("src")
        )),
        "orders has a freshness row"
    );
    assert!(dom.contains("<svg"), "the lineage is drawn");
    assert!(
        dom.contains("postgres:src"),
        "the lineage starts at the source"
    );
    // The search box filters the catalog (here from the address: #q=users).
    let filtered = chromium(Path::new(&format!("{}#q=users", path.display())), &shot);
    assert!(
        filtered.contains("<span id=\"catalog-count\">1</span>"),
        "the search ran"
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "a screenshot was taken ({} bytes)",
        png.len()
    );
    let _ = std::fs::remove_file(shot);
}

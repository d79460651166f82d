//! monitor end to end: the real binary against the BigQuery emulator, posting to a local
//! webhook receiver (answering 200, 202, 429 and 500 as scripted), with the ledger seeded or
//! written by a real mart-build run, and the status page loaded in headless chromium.
//!
//! One file per feature: alerts and their delivery (`alerts`), missed runs (`schedules`),
//! failed checks and the digest (`checks`), the ops views (`views`), the status page (`page`),
//! and `monitor doctor` on the local stack (`doctor`) and on a cloud target (`doctor_cloud`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;
use sluice::ledger::Status;
use sluice_tests::ledger::pg_copy_run;
use sluice_tests::webhooks::Sink;
use sluice_tests::{binary, TestEnv};

mod alerts;
mod checks;
mod doctor;
mod doctor_cloud;
mod page;
mod schedules;
mod views;

/// The owner every table of these tests has.
const OWNERS: &str = "owners:\n  ana: { name: Ana, slack: U024BE7LH, teams: ana@acme.example }\n";

/// A test's pipeline directory (pipeline.yaml, marts/, in its scratch directory) and its
/// webhook receiver.
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
        let dir = env.scratch_dir();
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

    /// Records a pg-copy run of `src.<table>` in the ledger (see `pg_copy_run`).
    async fn copy_run(
        &self,
        run_id: &str,
        table: &str,
        ds: &str,
        started: &str,
        status: Status,
        error: Option<&str>,
    ) {
        let r = pg_copy_run(run_id, table, ds, started, status, error);
        self.env.ledger().await.record(&r).await.unwrap();
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

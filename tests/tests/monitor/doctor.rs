//! `monitor doctor` on the local stack: one line per need, ✓ or ✗ with the fix, and a non-zero
//! exit on any ✗ — a missing secret, a missing slot, a source without TLS when verify-full is
//! asked, a role without the rights init needs; and every line ✓ (or –) once all is there.
//! On a cloud target: `doctor_cloud`.

use std::path::PathBuf;

use sluice_tests::limited::Limited;
use sluice_tests::{binary, TestEnv};

/// What `monitor doctor` said: whether it exited 0, and its output (stdout, then stderr).
pub(super) struct Doctor {
    pub(super) ok: bool,
    pub(super) out: String,
}

impl Doctor {
    /// The line about `what` (`✓ what: …`), asserted to exist.
    fn line(&self, what: &str) -> &str {
        self.out
            .lines()
            .find(|l| l.contains(&format!(" {what}: ")))
            .unwrap_or_else(|| panic!("no line about `{what}`:\n{}", self.out))
    }

    /// The line about `what` starts with `mark` (✓, ✗ or –) and says `says`.
    pub(super) fn assert_line(&self, mark: &str, what: &str, says: &str) {
        let line = self.line(what);
        assert!(
            line.starts_with(mark) && line.contains(says),
            "expected `{mark} {what}: …{says}…`, got: {line}\n{}",
            self.out
        );
    }
}

impl From<std::process::Output> for Doctor {
    fn from(out: std::process::Output) -> Doctor {
        Doctor {
            ok: out.status.success(),
            out: String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr),
        }
    }
}

/// `yaml` written as the test's pipeline.yaml, in its scratch directory.
pub(super) fn config_file(env: &TestEnv, yaml: &str) -> PathBuf {
    let config = env.scratch_dir().join("pipeline.yaml");
    std::fs::write(&config, yaml).unwrap();
    config
}

/// Runs `monitor doctor --target local` on `yaml` with extra environment variables.
async fn doctor(env: &TestEnv, yaml: &str, vars: &[(&str, String)]) -> Doctor {
    tokio::process::Command::new(binary("monitor"))
        .args(["--target", "local", "--log-format", "json", "--config"])
        .arg(config_file(env, yaml))
        .arg("doctor")
        .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .await
        .expect("monitor runs")
        .into()
}

/// One Slack channel, `data-alerts`, whose URL is in `SLUICE_TEST_SLACK_URL`.
pub(super) const CHANNELS: &str = "alerts:\n  channels:\n    data-alerts: { kind: slack, url: { env: SLUICE_TEST_SLACK_URL } }\n  default: [data-alerts]\n";

#[tokio::test]
async fn a_missing_secret_a_missing_slot_and_no_tls_are_each_a_named_failure() {
    let env = TestEnv::new().await;
    env.sql("CREATE TABLE items (id int PRIMARY KEY, name text)")
        .await;
    // A second source whose DSN is verify-full against the local server, which has ssl off,
    // and a third whose variable nobody set.
    let verify_full = format!(
        "postgres://postgres@{}:{}/{}?sslmode=verify-full",
        env.stack.pg_host, env.stack.pg_port, env.db
    );
    let extra = format!(
        "  strict:\n    dsn: {{ env: SLUICE_TEST_STRICT_DSN }}\n    tables: {{ items: {{ mode: full }} }}\n  \
           unset:\n    dsn: {{ env: SLUICE_TEST_UNSET_DSN }}\n    tables: {{ items: {{ mode: full }} }}\n{CHANNELS}"
    );
    // pipeline_yaml puts `extra` right after source src: the two sources join `sources:`.
    let yaml = env.pipeline_yaml("items: { mode: full }", Some("tables: [items]"), &extra);
    let d = doctor(&env, &yaml, &[("SLUICE_TEST_STRICT_DSN", verify_full)]).await;
    assert!(!d.ok, "doctor must exit non-zero on a ✗:\n{}", d.out);
    d.assert_line("✓", "credentials", "none needed");
    d.assert_line(
        "✗",
        "source unset's DSN",
        "SLUICE_TEST_UNSET_DSN is not set",
    );
    d.assert_line(
        "✗",
        "alerts channel data-alerts's URL",
        "SLUICE_TEST_SLACK_URL is not set",
    );
    d.assert_line("✗", "source strict", "does not offer TLS");
    d.assert_line("✓", "source src", "reachable at");
    d.assert_line("✓", "source src tables", "items readable");
    let slot = env.slot();
    assert!(
        d.out.lines().any(|l| l.starts_with("✗ source src cdc:")
            && l.contains(&format!("slot {slot} does not exist"))
            && l.contains("cdc-sync init")),
        "{}",
        d.out
    );
    assert!(
        d.out.lines().last().unwrap_or_default().contains("✗"),
        "{}",
        d.out
    );
}

#[tokio::test]
async fn a_healthy_local_pipeline_is_all_ticks() {
    let env = TestEnv::new().await;
    env.sql("CREATE TABLE items (id int PRIMARY KEY, name text)")
        .await;
    let p = env.pipeline_with_cdc("items: { mode: full }", Some("tables: [items]"));
    cdc_sync::init(&p, "local", None)
        .await
        .expect("cdc-sync init");
    let yaml = env.pipeline_yaml("items: { mode: full }", Some("tables: [items]"), CHANNELS);
    let d = doctor(
        &env,
        &yaml,
        &[("SLUICE_TEST_SLACK_URL", "http://127.0.0.1:9/slack".into())],
    )
    .await;
    assert!(d.ok, "{}", d.out);
    assert!(!d.out.contains('✗'), "{}", d.out);
    d.assert_line("✓", "alerts channel data-alerts's URL", "is set here");
    d.assert_line("✓", "source src's DSN", "is set here");
    d.assert_line("✓", "source src", "reachable at");
    d.assert_line("✓", "source src cdc", "wal_level = logical");
    let slot = env.slot();
    assert!(
        d.out
            .lines()
            .any(|l| l.starts_with("✓ source src cdc:")
                && l.contains(&format!("slot {slot} retains"))),
        "{}",
        d.out
    );
    assert!(
        d.out
            .lines()
            .any(|l| l.starts_with("✓ lake ") && l.ends_with(": readable")),
        "{}",
        d.out
    );
    d.assert_line("–", "IAM and Cloud Run", "uses the emulators");
}

/// A role with the rights the README once granted (REPLICATION, SELECT) cannot create the
/// publication: doctor says so with the SQL for the tables' owner, as `cdc-sync init` would.
#[tokio::test]
async fn a_role_without_the_rights_init_needs_is_named_with_the_sql_to_run() {
    let t = Limited::new(
        "CREATE TABLE items (id int PRIMARY KEY, name text)",
        "REPLICATION",
    )
    .await;
    let env = t.env();
    env.sql(&format!("GRANT SELECT ON items TO {}", t.role))
        .await;
    let yaml = env.pipeline_yaml("items: { mode: full }", Some("tables: [items]"), "");
    let out = t.cli("monitor", &config_file(env, &yaml), "doctor").await;
    let d = Doctor::from(out);
    assert!(!d.ok, "{}", d.out);
    d.assert_line("✓", "source src tables", "items readable");
    assert!(
        d.out.lines().any(|l| l.starts_with("✗ source src cdc:")
            && l.contains("may not create it: it does not own public.items")),
        "{}",
        d.out
    );
    let publication = env.slot();
    assert!(
        d.out.contains(&format!(
            "CREATE PUBLICATION \"{publication}\" FOR TABLE \"public\".\"items\";"
        )),
        "{}",
        d.out
    );
}

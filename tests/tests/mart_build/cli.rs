//! The mart-build command line: bad marts reported before anything runs, `plan`, `render`,
//! `run` exiting non-zero on failure, and the marts' unit tests (`test`), the shop's too.

use std::path::Path;

use sluice_tests::marts::{land_orders, Mode, ORDERS_AND_USERS, THREE_DAYS_OF_ORDERS};
use sluice_tests::{binary, TestEnv};

use super::{daily, Marts, TOTAL};

/// Runs the mart-build binary; its exit status and stderr.
fn cli(env: &TestEnv, marts: &Marts, args: &[&str]) -> (bool, String, String) {
    let config = marts.dir.join("pipeline.yaml");
    std::fs::write(&config, env.pipeline_yaml(ORDERS_AND_USERS, None, "")).unwrap();
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
        env.scratch_dir()
            .join("marts")
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
    land_orders(&env, Mode::Incremental, &THREE_DAYS_OF_ORDERS).await;
    let bad_total = TOTAL.replace(
        "not_empty: true",
        "{name: never, threshold: 1.0, expression: \"COUNTIF(FALSE)\"}",
    );
    let marts = Marts::new(
        &env,
        &[("m/daily.sql", &daily()), ("m/total.sql", &bad_total)],
    );
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
            ("m/daily.sql", &daily()),
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

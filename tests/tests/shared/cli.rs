//! The command line every worker shares: one rule for `--target`, and the same shared flags on
//! every `--help` page.

use sluice_tests::marts::{daily_mart, write_marts, DAILY_CHECKS, ORDERS_AND_USERS};
use sluice_tests::{binary, TestEnv};

/// Every worker, with a command of its that touches a target and that command's own
/// arguments. A new worker is one line here.
const WORKERS: [(&str, &[&str]); 5] = [
    ("pg-copy", &[]),
    ("cdc-sync", &["run"]),
    ("log-ingest", &["replay"]),
    ("mart-build", &["run", "--ds", "2024-05-01"]),
    ("monitor", &["check"]),
];

/// One rule for `--target` in every worker: a command that touches a target needs one, and
/// says so in the same words; `--help` pages list the same shared flags.
#[tokio::test]
async fn every_worker_asks_for_a_target_the_same_way() {
    let env = TestEnv::new().await;
    // pipeline.yaml, and marts/ beside it where mart-build and the monitor look for marts.
    let dir = env.scratch_dir();
    write_marts(
        &dir.join("marts"),
        &[("m/daily.sql", &daily_mart(DAILY_CHECKS))],
    );
    let config = dir.join("pipeline.yaml");
    std::fs::write(
        &config,
        env.pipeline_yaml(ORDERS_AND_USERS, Some("tables: [orders]"), ""),
    )
    .unwrap();
    for (worker, args) in WORKERS {
        let out = std::process::Command::new(binary(worker))
            .args(args)
            .arg("--config")
            .arg(&config)
            .env_remove("SLUICE_TARGET")
            .output()
            .unwrap();
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

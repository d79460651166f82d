//! The deployment's tests: jobs, datasets, grants and names per target, and the checked-in
//! terraform/deployment.json against what this code derives.

use super::*;
use crate::marts::dag::Landed;

/// Two sources: one with hourly, large and non-public-schema tables and a secret DSN, one
/// with whole-schema CDC; no events, no marts.
const EDGES: &str = r#"
name: edge
bigquery: { project: p-prod, location: EU }
lake: { bucket: edge-lake }
sources:
  app:
    dsn: { secret: projects/p-prod/secrets/app-dsn/versions/3 }
    tables:
      users:  { mode: full }
      clicks: { mode: incremental, watermark_column: at, schedule: hourly }
      events: { mode: incremental, watermark_column: at, large: true }
      ledger: { mode: incremental, watermark_column: at, large: true }
      stock:  { mode: full, schema: inventory }
    cdc:
      tables: [users, inventory.stock]
  billing:
    dsn: { env: BILLING_DSN }
    dataset: billing_copy
    tables: {}
    cdc: { schemas: [billing], dataset: billing_live, verify: '30 2 * * 0' }
targets:
  local: { no_auth: true, project: p-local }
  dev: { dataset_suffix: _dev }
  prod: {}
"#;

fn edges(names: &[&str]) -> Value {
    let p = Pipeline::parse(EDGES, "edge.yaml").unwrap();
    let dag = Dag::build(vec![], &Landed::of(&p, Path::new("."))).unwrap();
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    deployment(&p, &dag, Path::new("."), &names).unwrap()
}

#[test]
fn every_cloud_target_is_exported_and_local_is_not() {
    let d = edges(&[]);
    let targets: Vec<&String> = d["targets"].as_object().unwrap().keys().collect();
    assert_eq!(targets, ["dev", "prod"]);
    assert_eq!(d["targets"]["prod"]["owns_shared"], true);
    assert_eq!(
        d["targets"]["dev"]["owns_shared"], false,
        "dev shares prod's project and lake"
    );
}

#[test]
fn hourly_and_large_tables_get_jobs_of_their_own() {
    let d = edges(&["prod"]);
    let jobs = &d["targets"]["prod"]["schedules"];
    let names: Vec<&String> = jobs.as_object().unwrap().keys().collect();
    assert_eq!(
        names,
        [
            "cdc-sync-app",
            "cdc-sync-billing",
            "cdc-sync-verify-app",
            "cdc-sync-verify-billing",
            "monitor-check",
            "monitor-digest",
            "pg-copy-daily",
            "pg-copy-daily-large",
            "pg-copy-hourly"
        ]
    );
    assert_eq!(jobs["monitor-check"]["schedule"], "*/10 * * * *");
    // Replicas are compared by content daily, or as the source says.
    assert_eq!(jobs["cdc-sync-verify-app"]["schedule"], "0 6 * * *");
    assert_eq!(jobs["cdc-sync-verify-billing"]["schedule"], "30 2 * * 0");
    assert_eq!(
        jobs["cdc-sync-verify-billing"]["args"],
        json!(["status", "--source", "billing"])
    );
    assert_eq!(
        (
            &jobs["monitor-digest"]["schedule"],
            &jobs["monitor-digest"]["time_zone"]
        ),
        (&json!("0 8 * * *"), &json!("UTC"))
    );
    assert_eq!(jobs["pg-copy-hourly"]["schedule"], "15 * * * *");
    assert_eq!(
        jobs["pg-copy-hourly"]["args"],
        json!(["--table", "app.clicks"])
    );
    let large = &jobs["pg-copy-daily-large"];
    assert_eq!(large["task_count"], 2, "one task per large table");
    assert_eq!(
        large["args"],
        json!(["--table", "app.events", "--table", "app.ledger"])
    );
    assert_eq!(jobs["pg-copy-daily"]["task_count"], 1);
    assert_eq!(
        jobs["cdc-sync-billing"]["args"],
        json!(["run", "--source", "billing", "--max-duration", "4m"])
    );
    assert!(jobs["cdc-sync-app"]["description"]
        .as_str()
        .unwrap()
        .contains("schemas inventory, public"));
}

#[test]
fn datasets_workers_and_secrets_follow_the_catalog() {
    let d = edges(&["prod"]);
    let t = &d["targets"]["prod"];
    let datasets: Vec<&String> = t["datasets"].as_object().unwrap().keys().collect();
    // `billing` copies no tables: no billing_copy; its replicas land in billing_live.
    assert_eq!(
        datasets,
        [
            "app",
            "app_replica",
            "billing_live",
            "ops",
            "sluice_staging"
        ]
    );
    let pg = &t["workers"]["pg-copy"];
    assert_eq!(
        pg["secrets"],
        json!(["projects/p-prod/secrets/app-dsn"]),
        "the version is not part of the grant"
    );
    assert_eq!(pg["lake"], true);
    let cdc = &t["workers"]["cdc-sync"];
    assert_eq!(cdc["dsn_env"], json!(["BILLING_DSN"]));
    assert_eq!(
        cdc["writes"],
        json!(["app_replica", "billing_live", "ops", "sluice_staging"])
    );
    assert!(t["workers"].get("mart-build").is_none() && t["service"].is_null());
    let m = &t["workers"]["monitor"];
    assert_eq!(m["writes"], json!([]), "no dataset-wide write");
    assert_eq!(m["reads"], json!(["p-prod.ops"]));
    assert_eq!(
        m["table_writes"],
        json!(["ops.alerts", "ops.declared_tables", "ops.runs"])
    );
    assert_eq!(m["lake_prefix"], "status/");
    let tables: Vec<&String> = t["ops_tables"].as_object().unwrap().keys().collect();
    assert_eq!(
        tables,
        [
            "alerts",
            "dead_letter",
            "declared_tables",
            "dq_results",
            "runs"
        ]
    );
}

#[test]
fn a_pull_request_target_suffixes_datasets_and_names() {
    let d = edges(&["pr-42"]);
    let t = &d["targets"]["pr-42"];
    assert_eq!(t["name_suffix"], "-dev-pr-42");
    assert!(
        t["datasets"].get("app_dev_pr_42").is_some(),
        "{}",
        t["datasets"]
    );
    assert!(t["schedules"].get("pg-copy-hourly-dev-pr-42").is_some());
    assert_eq!(t["owns_shared"], false);
}

/// The EDGES pipeline with marts `m.<name>` of header lines, reading tables.
fn with_marts(marts: &[(&str, &str, &str)]) -> Result<Value> {
    let p = Pipeline::parse(EDGES, "edge.yaml").unwrap();
    let marts = marts
        .iter()
        .map(|(name, header, reads)| {
            let sql = format!("/*\ndescription: {name}\n{header}\n*/\nSELECT 1 AS x FROM {reads}");
            crate::marts::mart::Mart::parse(
                &sql,
                Path::new(&format!("marts/m/{name}.sql")),
                "m",
                name,
            )
            .unwrap()
        })
        .collect();
    let dag = Dag::build(marts, &Landed::of(&p, Path::new("."))).unwrap();
    deployment(&p, &dag, Path::new("."), &["prod".to_string()])
}

#[test]
fn mart_build_jobs_and_scheduled_queries_run_after_their_inputs() {
    let d = with_marts(&[
        ("a", "", "app.users"),
        ("b", "", "m.a"),
        ("h", "schedule: hourly", "app.clicks"),
        ("q", "runner: scheduled_query", "app.users"),
    ])
    .unwrap();
    let t = &d["targets"]["prod"];
    let jobs = &t["schedules"];
    // app.users is copied daily at 06:00, app.clicks hourly at :15; m.b joins m.a's run.
    let daily = &jobs["mart-build-daily-0630"];
    assert_eq!(daily["schedule"], "30 6 * * *", "{jobs}");
    assert_eq!(
        daily["args"],
        json!(["run", "--select", "m.a", "--select", "m.b"])
    );
    assert_eq!(jobs["mart-build-hourly-45"]["schedule"], "45 * * * *");
    assert_eq!(t["scheduled_queries"][0]["schedule"], "every day 06:30");
    let e = with_marts(&[("early", "schedule: \"0 5 * * *\"", "app.users")])
        .unwrap_err()
        .into_message();
    assert!(
        e.starts_with("marts/m/early.sql: schedule \"0 5 * * *\" runs at 05:00 UTC"),
        "{e}"
    );
}

#[test]
fn mart_times_become_resource_name_parts() {
    assert_eq!(time_key("30 6 * * *"), "daily-0630");
    assert_eq!(time_key("5 * * * *"), "hourly-05");
    assert_eq!(time_key("0 7 * * 1"), "cron-0-7-x-x-1");
}

#[test]
fn schedules_become_resource_name_parts() {
    assert_eq!(schedule_key(&Schedule::Daily), "daily");
    assert_eq!(schedule_key(&Schedule::Hourly), "hourly");
    assert_eq!(
        schedule_key(&Schedule::parse("30 5 * * 1-5").unwrap()),
        "cron-30-5-x-x-1-5"
    );
    assert_eq!(
        schedule_key(&Schedule::parse("*/15 * * * *").unwrap()),
        "cron-x-15-x-x-x-x"
    );
}

#[test]
fn a_job_name_too_long_for_cloud_run_is_refused_by_name() {
    let err = checked_name(
        "pg-copy-daily-dev-pr-123456789012345678901234567890".into(),
        "pg-copy job",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("pg-copy job `pg-copy-daily-dev-pr-"), "{err}");
    assert!(checked_name("pg-copy-daily".into(), "x").is_ok());
}

/// `terraform/deployment.json` must be what this code derives from the repository's
/// pipeline.yaml, schemas and marts: a change to any of them without `make deployment` fails.
mod staleness {
    use std::path::PathBuf;

    #[test]
    fn the_checked_in_deployment_json_is_current() {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let p = crate::config::Pipeline::load(&root.join("pipeline.yaml")).unwrap();
        let marts = crate::marts::dag::load_dir(&root.join("marts")).unwrap();
        let dag = crate::marts::dag::Dag::build(marts, &crate::marts::dag::Landed::of(&p, &root))
            .unwrap();
        let json = crate::deployment::deployment(&p, &dag, &root, &[]).unwrap();
        let want = serde_json::to_string_pretty(&json).unwrap() + "\n";
        let file = root.join("terraform/deployment.json");
        let have = std::fs::read_to_string(&file).unwrap_or_default();
        assert!(
            have == want,
            "{} is stale: pipeline.yaml, schemas/ or marts/ changed since it was written; run `make deployment`",
            file.display()
        );
    }
}

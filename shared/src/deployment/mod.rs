//! What Terraform deploys for each target, derived here once
//! from pipeline.yaml, `schemas/` and `marts/` by the same code the workers run (the catalog
//! names datasets and tables, `Target` applies suffixes, `Schedule` gives crons), written to
//! `terraform/deployment.json`. Terraform only maps this onto resources; it computes no names
//! of its own, so the two cannot drift. A test fails when the checked-in file is stale.
//!
//! Per target: the datasets it writes (and the input datasets it only reads, for dev and
//! pull-request targets reading production's), what each worker writes, reads and which
//! secrets it needs, the schedules (each a Cloud Scheduler job that runs its worker's Cloud
//! Run job with these arguments and task count as overrides: one per pg-copy schedule, large
//! tables apart, one per CDC source, one per time marts run at), the log-ingest service with
//! its topics and subscriptions, and the scheduled queries. The marts' times (mart-build jobs'
//! crons, scheduled queries' schedules) come from `crate::marts::timing`: after what each mart reads,
//! or refused with the mart, its input and both times named.

mod scheduled;

pub use scheduled::scheduled_queries;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::catalog::{event_tables, raw_dataset, replica_dataset};
use crate::config::{qualify, Pipeline, Target};
use crate::schedule::Schedule;
use crate::secret::DsnRef;
use crate::{Error, Result};
use serde_json::{json, Value};

use crate::marts::dag::Dag;
use crate::marts::header::Runner;
use crate::marts::render::Placement;
use crate::marts::timing::Timing;

/// How long one cdc-sync execution may start batches, and its task timeout: it starts every
/// 5 minutes (`crate::schedule::CDC_CRON`), stops starting batches at `CDC_MAX_DURATION`, so
/// it ends well before the next start and far before the timeout; the slot admits one
/// reader, so an overlapping run would fail at once ("another run holds the slot") instead of
/// reading the same changes twice.
pub const CDC_MAX_DURATION: &str = "4m";
pub const CDC_TIMEOUT_S: u64 = 540;

/// Cloud Run job, service account and topic names carry the target, so dev, prod and
/// pull-request deployments can share a project: `""` for prod, `-dev`, `-dev-pr-123`.
fn name_suffix(t: &Target) -> String {
    t.dataset_suffix.replace('_', "-").to_lowercase()
}

/// A schedule as a resource-name part: `daily`, `hourly`, `cron-30-5-x-x-1-5`.
fn schedule_key(s: &Schedule) -> String {
    match s {
        Schedule::Daily => "daily".into(),
        Schedule::Hourly => "hourly".into(),
        Schedule::Cron(c) => {
            let part: String = c
                .chars()
                .map(|ch| match ch {
                    '0'..='9' => ch,
                    '*' => 'x',
                    _ => '-',
                })
                .collect();
            format!("cron-{part}")
        }
    }
}

/// A mart-build job's time as a resource-name part: `daily-0630` (`30 6 * * *`), `hourly-45`
/// (`45 * * * *`), else as `schedule_key` writes a cron.
fn time_key(cron: &str) -> String {
    match crate::marts::timing::cron_shape(cron) {
        Some(crate::marts::timing::Shape::Hourly(m)) => format!("hourly-{m:02}"),
        Some(crate::marts::timing::Shape::Daily(t)) => format!("daily-{:02}{:02}", t / 60, t % 60),
        None => schedule_key(&Schedule::Cron(cron.into())),
    }
}

/// A Cloud Run job name: lowercase letters, digits and hyphens, at most 63 characters (49
/// leaves room for Cloud Scheduler's own prefix in its job ids).
fn checked_name(name: String, what: &str) -> Result<String> {
    if name.len() > 49 || !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(Error::config(format!(
            "{what} `{name}` is too long for a Cloud Run job (49 characters) or does not start with a letter: shorten the target or schedule"
        )));
    }
    Ok(name)
}

#[derive(Default)]
struct Worker {
    writes: BTreeSet<String>,
    /// `project.dataset` read in another project or under another suffix.
    reads: BTreeSet<String>,
    lake: bool,
    postgres: bool,
    /// Secret Manager secrets (`projects/P/secrets/S`) named in pipeline.yaml.
    secrets: BTreeSet<String>,
    /// Environment variables that hold a DSN; Terraform fills each from a secret it is given.
    dsn_env: BTreeSet<String>,
    /// `dataset.table` it writes without writing the rest of the dataset (table-level grant).
    table_writes: BTreeSet<String>,
    /// Project-level roles beyond BigQuery job creation, each because no resource-level grant
    /// does the job.
    project_roles: BTreeSet<String>,
    /// A prefix of the lake it writes objects under (and nothing else of the bucket).
    lake_prefix: Option<String>,
}

impl Worker {
    fn json(&self) -> Value {
        json!({
            "writes": self.writes, "reads": self.reads, "lake": self.lake,
            "postgres": self.postgres, "secrets": self.secrets, "dsn_env": self.dsn_env,
            "table_writes": self.table_writes, "project_roles": self.project_roles,
            "lake_prefix": self.lake_prefix,
        })
    }

    fn needs_dsn(&mut self, dsn: &DsnRef) {
        self.postgres = true;
        self.needs_secret(dsn);
    }

    /// A value from an environment variable (Terraform fills it from a secret it is given) or
    /// from a Secret Manager secret (granted).
    fn needs_secret(&mut self, dsn: &DsnRef) {
        match dsn {
            DsnRef::Env(v) => self.dsn_env.insert(v.clone()),
            DsnRef::Secret(s) => {
                let secret = s.split("/versions/").next().unwrap_or(s).to_string();
                self.secrets.insert(secret)
            }
        };
    }
}

fn add_dataset(datasets: &mut BTreeMap<String, Value>, id: String, role: &str, about: String) {
    datasets
        .entry(id)
        .or_insert_with(|| json!({"role": role, "description": about}));
}

#[allow(clippy::too_many_arguments)]
fn job(
    worker: &str,
    description: String,
    args: Vec<String>,
    schedule: String,
    task_count: usize,
    timeout_s: u64,
    max_retries: u32,
    large: bool,
) -> Value {
    json!({
        "worker": worker, "description": description, "args": args, "schedule": schedule,
        "task_count": task_count, "timeout_seconds": timeout_s, "max_retries": max_retries,
        "cpu": if large { "2" } else { "1" }, "memory": if large { "4Gi" } else { "1Gi" },
        "time_zone": "Etc/UTC",
    })
}

/// `"08:30"` → `"30 8 * * *"`.
fn daily_cron(at: &str) -> Result<String> {
    let m = crate::config::clock_minutes(at).ok_or_else(|| {
        Error::config(format!("alerts.digest.at: `{at}` is not a time like 08:30"))
    })?;
    Ok(format!("{} {} * * *", m % 60, m / 60))
}

/// The ops tables Terraform creates (so the monitor, which may write only `alerts` and
/// `declared_tables`, finds the ledger before any worker ran): name → the BigQuery table
/// resource the workers would create. Workers still add columns as they evolve; Terraform
/// ignores schema changes.
fn ops_tables() -> BTreeMap<String, Value> {
    use crate::ops;
    [
        ops::RUNS,
        ops::DQ_RESULTS,
        ops::DEAD_LETTER,
        ops::ALERTS,
        ops::DECLARED_TABLES,
    ]
    .iter()
    .map(|t| (t.name.to_string(), t.resource()))
    .collect()
}

/// The deployment of one target; `timings` are the marts' deployed schedules
/// (`crate::marts::timing::schedules`).
pub fn target_deployment(
    p: &Pipeline,
    dag: &Dag,
    base: &Path,
    t: &Target,
    timings: &BTreeMap<String, Timing>,
) -> Result<Value> {
    let suffix = name_suffix(t);
    let mut datasets: BTreeMap<String, Value> = BTreeMap::new();
    let mut workers: BTreeMap<&str, Worker> = BTreeMap::new();
    let mut jobs: BTreeMap<String, Value> = BTreeMap::new();
    let ops = t.dataset(&p.bigquery.ops_dataset);
    let staging = t.dataset(&p.bigquery.staging_dataset);
    add_dataset(
        &mut datasets,
        ops.clone(),
        "ops",
        "sluice's run ledger, data-quality results and dead letters".into(),
    );
    add_dataset(
        &mut datasets,
        staging.clone(),
        "staging",
        "sluice's staging tables (expire after a day)".into(),
    );

    // pg-copy: one job per schedule, large tables in a job of their own with a task each.
    let mut groups: BTreeMap<(String, bool), (Schedule, Vec<String>)> = BTreeMap::new();
    for (name, source) in &p.sources {
        if source.tables.is_empty() {
            continue;
        }
        let raw = t.dataset(raw_dataset(p, name));
        add_dataset(
            &mut datasets,
            raw.clone(),
            "raw",
            format!("pg-copy: copies of source `{name}`"),
        );
        let w = workers.entry("pg-copy").or_default();
        w.writes.extend([raw, staging.clone(), ops.clone()]);
        w.lake = true;
        w.needs_dsn(t.dsn_ref(name, source));
        for (table, config) in &source.tables {
            let key = (config.schedule.cron(), config.large);
            let entry = groups
                .entry(key)
                .or_insert_with(|| (config.schedule.clone(), vec![]));
            entry.1.push(format!("{name}.{table}"));
        }
    }
    for ((cron, large), (schedule, tables)) in groups {
        let kind = if large { "-large" } else { "" };
        let name = checked_name(
            format!("pg-copy-{}{kind}{suffix}", schedule_key(&schedule)),
            "pg-copy job",
        )?;
        let args: Vec<String> = tables
            .iter()
            .flat_map(|t| ["--table".to_string(), t.clone()])
            .collect();
        // A large table's task reads it over as many ranges as its CPUs (pg-copy's default).
        let tasks = if large { tables.len() } else { 1 };
        let about = format!("pg-copy {} ({})", tables.join(", "), cron);
        jobs.insert(
            name,
            job(
                "pg-copy",
                about,
                args,
                cron,
                tasks,
                if large { 10800 } else { 3600 },
                1,
                large,
            ),
        );
    }

    // cdc-sync: one job per source with a cdc block, every few minutes.
    for (name, source) in &p.sources {
        let Some(cdc) = &source.cdc else { continue };
        let replica = t.dataset(&replica_dataset(cdc, name));
        let schemas: BTreeSet<String> = cdc
            .tables
            .iter()
            .map(|tb| qualify(tb).0)
            .chain(cdc.schemas.iter().cloned())
            .collect();
        let about = format!(
            "cdc-sync of source `{name}` (schemas {}) into {replica}, slot {}",
            schemas.into_iter().collect::<Vec<_>>().join(", "),
            cdc.slot(name)
        );
        add_dataset(
            &mut datasets,
            replica.clone(),
            "replica",
            format!("cdc-sync: replicas of source `{name}`"),
        );
        let w = workers.entry("cdc-sync").or_default();
        w.writes.extend([replica, staging.clone(), ops.clone()]);
        w.needs_dsn(t.dsn_ref(name, source));
        let args = ["run", "--source", name, "--max-duration", CDC_MAX_DURATION].map(String::from);
        jobs.insert(
            checked_name(
                format!("cdc-sync-{}{suffix}", name.replace('_', "-")),
                "cdc-sync job",
            )?,
            job(
                "cdc-sync",
                about,
                args.to_vec(),
                crate::schedule::CDC_CRON.into(),
                1,
                CDC_TIMEOUT_S,
                0,
                false,
            ),
        );
        // The replicas compared with the source by content; a difference fails the job's
        // ledger row, which the monitor alerts on.
        if let Some(verify) = &cdc.verify {
            jobs.insert(
                checked_name(
                    format!("cdc-sync-verify-{}{suffix}", name.replace('_', "-")),
                    "cdc-sync verify job",
                )?,
                job(
                    "cdc-sync",
                    format!("cdc-sync status of source `{name}`: every replica of {} compared with Postgres by content", cdc.slot(name)),
                    ["status", "--source", name].map(String::from).to_vec(),
                    verify.cron(),
                    1,
                    3600,
                    0,
                    false,
                ),
            );
        }
    }

    // log-ingest: a service behind a push subscription, its topic and dead-letter topic.
    let mut service = Value::Null;
    if let Some(ev) = &p.events {
        let events = t.dataset(&ev.dataset);
        add_dataset(
            &mut datasets,
            events.clone(),
            "events",
            "log-ingest: the app's events".into(),
        );
        let w = workers.entry("log-ingest").or_default();
        w.writes.extend([events, ops.clone()]);
        let dir = base.join(&ev.schemas);
        let tables: BTreeSet<String> = event_tables(&dir)
            .map_err(|e| {
                Error::config(format!(
                    "cannot read event schemas in {}: {e}",
                    dir.display()
                ))
            })?
            .into_values()
            .collect();
        let topic = ev
            .topic
            .clone()
            .unwrap_or_else(|| format!("{}-events", p.name));
        let subscription = ev
            .subscription
            .clone()
            .unwrap_or_else(|| "log-ingest-push".into());
        service = json!({
            "name": format!("log-ingest{suffix}"),
            "args": ["serve"],
            "topic": format!("{topic}{suffix}"),
            "subscription": format!("{subscription}{suffix}"),
            "dead_letter_topic": format!("{topic}-dead-letter{suffix}"),
            "dead_letter_subscription": format!("{topic}-dead-letter{suffix}"),
            "audience": ev.push.as_ref().map(|a| a.audience.clone()),
            // log-ingest accepts push tokens of this account only, so Terraform creates it.
            "push_service_account": ev.push.as_ref().map(|a| a.service_account.clone()),
            "event_tables": tables,
        });
    }

    // mart-build: one job per deployed time of the marts it runs (`crate::marts::timing`: after their
    // inputs; scheduled queries run in BigQuery). Marts at one time share a run, which builds
    // them in dependency order.
    let placement = Placement::for_target(t);
    let mut mart_groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (id, m) in &dag.marts {
        let dataset = t.dataset(&m.id.dataset);
        add_dataset(
            &mut datasets,
            dataset.clone(),
            "marts",
            format!("mart-build: marts of marts/{}", m.id.dataset),
        );
        let w = workers.entry("mart-build").or_default();
        w.writes.extend([dataset, staging.clone(), ops.clone()]);
        for r in &m.references {
            let placed = placement.place(dag, &r.name);
            let project = placed.project.unwrap_or_default();
            w.reads.insert(format!("{project}.{}", placed.dataset));
        }
        if m.header.runner == Runner::MartBuild {
            let timing = timings
                .get(id)
                .ok_or_else(|| Error::config(format!("no schedule derived for mart {id}")))?;
            mart_groups
                .entry(timing.cron.clone())
                .or_default()
                .push(id.clone());
        }
    }
    for (cron, marts) in mart_groups {
        let mut args = vec!["run".to_string()];
        args.extend(
            marts
                .iter()
                .flat_map(|m| ["--select".to_string(), m.clone()]),
        );
        let about = format!(
            "mart-build {} ({cron}, after their inputs; waits for fresh inputs)",
            marts.join(", ")
        );
        jobs.insert(
            checked_name(
                format!("mart-build-{}{suffix}", time_key(&cron)),
                "mart-build job",
            )?,
            job("mart-build", about, args, cron, 1, 7200, 0, false),
        );
    }
    if let Some(w) = workers.get_mut("mart-build") {
        // The freshness wait reads the ledger of the inputs' project.
        let ops_in = format!("{}{}", p.bigquery.ops_dataset, t.inputs_suffix);
        w.reads.insert(format!("{}.{ops_in}", t.inputs_project));
        // Reads of datasets this target writes itself are covered by its writes.
        let own: BTreeSet<String> = datasets
            .keys()
            .map(|d| format!("{}.{d}", t.project))
            .collect();
        w.reads.retain(|r| !own.contains(r));
    }

    // monitor: every 10 minutes a check, daily the digest in its time zone. It reads the
    // ledger and the metadata, writes only its two tables of ops and the status page.
    let alerts = p.alerts.clone().unwrap_or_default();
    let m = workers.entry("monitor").or_default();
    m.reads.insert(format!("{}.{ops}", t.project));
    m.table_writes.extend(
        [crate::ops::ALERTS.name, crate::ops::DECLARED_TABLES.name].map(|n| format!("{ops}.{n}")),
    );
    // Region-qualified INFORMATION_SCHEMA (TABLES, COLUMNS, TABLE_STORAGE) checks table
    // listing on the project, JOBS job listing: the catalog, usage and cost views need both.
    m.project_roles.extend(
        [
            "roles/bigquery.metadataViewer",
            "roles/bigquery.resourceViewer",
        ]
        .map(String::from),
    );
    m.lake_prefix = Some("status/".into());
    for c in alerts.channels.values() {
        m.needs_secret(&c.url);
    }
    let check = job("monitor", "monitor check: failed and missed runs, freshness, checks, dead letters, CDC lag; alerts and the status page".into(), vec!["check".into()], "*/10 * * * *".into(), 1, 600, 0, false);
    jobs.insert(
        checked_name(format!("monitor-check{suffix}"), "monitor job")?,
        check,
    );
    let mut digest = job(
        "monitor",
        format!(
            "monitor digest at {} {}",
            alerts.digest.at, alerts.digest.time_zone
        ),
        vec!["digest".into()],
        daily_cron(&alerts.digest.at)?,
        1,
        600,
        0,
        false,
    );
    digest["time_zone"] = json!(alerts.digest.time_zone);
    jobs.insert(
        checked_name(format!("monitor-digest{suffix}"), "monitor job")?,
        digest,
    );

    let lake_bucket = match &t.lake {
        crate::config::LakeLocation::Gcs { bucket } => bucket.clone(),
        crate::config::LakeLocation::Local { bucket, .. } => bucket.clone(),
    };
    let scheduled = scheduled::scheduled_queries(dag, timings, &placement, &t.location)?;
    Ok(json!({
        "project": t.project,
        "location": t.location,
        "name_suffix": suffix,
        "lake_bucket": lake_bucket,
        // Production owns what dev and pull-request targets share with it in one project.
        "owns_shared": t.name == "prod" || t.project != p.bigquery.project || lake_bucket != p.lake.bucket,
        "datasets": datasets,
        "workers": workers.iter().map(|(k, w)| (k.to_string(), w.json())).collect::<BTreeMap<_, _>>(),
        "schedules": jobs,
        "ops_tables": ops_tables(),
        "service": service,
        "scheduled_queries": scheduled,
    }))
}

/// The deployment of every target named: by default each target of pipeline.yaml that runs
/// in Google Cloud (all but those with `no_auth`, such as `local`).
pub fn deployment(p: &Pipeline, dag: &Dag, base: &Path, names: &[String]) -> Result<Value> {
    let names: Vec<String> = if names.is_empty() {
        p.targets
            .iter()
            .filter(|(_, c)| !c.no_auth)
            .map(|(n, _)| n.clone())
            .collect()
    } else {
        names.to_vec()
    };
    // Every mart's time, or every refused one named: the same for each target.
    let timings = crate::marts::timing::schedules(p, dag).checked()?;
    let mut targets = serde_json::Map::new();
    for name in names {
        let t = p.target(&name)?;
        let d = target_deployment(p, dag, base, &t, &timings)
            .map_err(|e| e.within(&format!("target {name}")))?;
        targets.insert(name, d);
    }
    Ok(json!({
        "generated_by": "mart-build export-deployment (do not edit; `make deployment` writes it)",
        "pipeline": p.name,
        "targets": targets,
    }))
}

#[cfg(test)]
mod tests {
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
            json!(["ops.alerts", "ops.declared_tables"])
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
                let sql =
                    format!("/*\ndescription: {name}\n{header}\n*/\nSELECT 1 AS x FROM {reads}");
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
}

/// `terraform/deployment.json` must be what this code derives from the repository's
/// pipeline.yaml, schemas and marts: a change to any of them without `make deployment` fails.
#[cfg(test)]
mod staleness {
    use std::path::PathBuf;

    #[test]
    fn the_checked_in_deployment_json_is_current() {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let p = crate::config::Pipeline::load(&root.join("pipeline.yaml")).unwrap();
        let marts = crate::marts::dag::load_dir(&root.join("marts")).unwrap();
        let dag = crate::marts::dag::Dag::build(marts, &crate::marts::dag::Landed::of(&p, &root))
            .unwrap();
        let json = super::deployment(&p, &dag, &root, &[]).unwrap();
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

//! What Terraform deploys for each target, derived here once from pipeline.yaml, `schemas/`
//! and `marts/` by the same code the workers run, and written by `sluice-deploy
//! export-deployment` to `terraform/deployment.json`. Terraform only maps this onto
//! resources; it computes no names of its own, so the two cannot drift. A test fails when the
//! checked-in file is stale.
//!
//! Per target: the datasets it writes (and the input datasets it only reads, for dev and
//! pull-request targets reading production's), what each worker writes, reads and which
//! secrets it needs, the schedules (each a Cloud Scheduler job that runs its worker's Cloud
//! Run job with these arguments and task count as overrides), the log-ingest service with its
//! topics and subscriptions, and the scheduled queries. The jobs are the inventory's units
//! (`crate::inventory`), grouped where units share a run: one per pg-copy schedule, large
//! tables apart; one per CDC source and its content check; one per time marts run at (from
//! `crate::marts::timing`: after what each mart reads, or refused with the mart, its input
//! and both times named); the monitor's check and digest. `workers` has one function per
//! worker; `scheduled` the scheduled queries; `views` the monitor's ops views
//! (`terraform/views.json`).

mod scheduled;
pub mod views;
mod workers;

pub use scheduled::scheduled_queries;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::{json, Value};

use crate::config::{Pipeline, Target};
use crate::inventory::Inventory;
use crate::ledger::Worker;
use crate::marts::dag::Dag;
use crate::marts::render::Placement;
use crate::marts::timing::Timing;
use crate::schedule::Schedule;
use crate::secret::DsnRef;
use crate::{Error, Result};

/// The task timeout of a cdc-sync run: it stops starting batches after
/// `crate::inventory::CDC_MAX_DURATION` and ends far before this.
pub const CDC_TIMEOUT_S: u64 = 540;

/// What `generated_by` says in the files this module derives.
const GENERATED_BY: &str = "(do not edit; `make deployment` writes it)";

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

/// What one worker's service account may do.
#[derive(Default)]
struct Grants {
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

impl Grants {
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

/// A Cloud Run job that Cloud Scheduler starts.
struct Job {
    worker: Worker,
    about: String,
    args: Vec<String>,
    cron: String,
    /// None: UTC.
    time_zone: Option<String>,
    tasks: usize,
    timeout_s: u64,
    max_retries: u32,
    large: bool,
}

impl Job {
    fn json(&self) -> Value {
        let large = self.large;
        json!({
            "worker": self.worker.as_str(), "description": self.about, "args": self.args,
            "schedule": self.cron, "task_count": self.tasks, "timeout_seconds": self.timeout_s,
            "max_retries": self.max_retries,
            "cpu": if large { "2" } else { "1" }, "memory": if large { "4Gi" } else { "1Gi" },
            "time_zone": self.time_zone.as_deref().unwrap_or("Etc/UTC"),
        })
    }
}

/// One target's deployment as the workers' functions (`workers`) fill it in.
struct Plan<'a> {
    p: &'a Pipeline,
    t: &'a Target,
    /// `name_suffix` of the target.
    suffix: String,
    /// The target's ops and staging datasets.
    ops: String,
    staging: String,
    datasets: BTreeMap<String, Value>,
    grants: BTreeMap<&'static str, Grants>,
    jobs: BTreeMap<String, Value>,
}

impl<'a> Plan<'a> {
    fn new(p: &'a Pipeline, t: &'a Target) -> Plan<'a> {
        let mut plan = Plan {
            p,
            t,
            suffix: name_suffix(t),
            ops: t.dataset(&p.bigquery.ops_dataset),
            staging: t.dataset(&p.bigquery.staging_dataset),
            datasets: BTreeMap::new(),
            grants: BTreeMap::new(),
            jobs: BTreeMap::new(),
        };
        let (ops, staging) = (plan.ops.clone(), plan.staging.clone());
        let about = "sluice's run ledger, data-quality results and dead letters";
        plan.dataset(ops, "ops", about.into());
        let about = "sluice's staging tables (expire after a day)";
        plan.dataset(staging, "staging", about.into());
        plan
    }

    /// A dataset the target writes; the first role given stays.
    fn dataset(&mut self, id: String, role: &str, about: String) {
        self.datasets
            .entry(id)
            .or_insert_with(|| json!({"role": role, "description": about}));
    }

    fn grants(&mut self, w: Worker) -> &mut Grants {
        self.grants.entry(w.as_str()).or_default()
    }

    /// A job named `<name><suffix>`, refused when Cloud Run would refuse the name.
    fn job(&mut self, name: String, what: &str, job: Job) -> Result<()> {
        let name = checked_name(format!("{name}{}", self.suffix), what)?;
        self.jobs.insert(name, job.json());
        Ok(())
    }
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

/// The deployment of one target from the pipeline's inventory (`Inventory::checked`);
/// `timings` are the marts' deployed schedules (`crate::marts::timing::schedules`).
pub fn target_deployment(
    p: &Pipeline,
    inv: &Inventory,
    dag: &Dag,
    t: &Target,
    timings: &BTreeMap<String, Timing>,
) -> Result<Value> {
    let mut plan = Plan::new(p, t);
    workers::pg_copy(&mut plan, inv)?;
    workers::cdc_sync(&mut plan, inv)?;
    let service = workers::log_ingest(&mut plan, inv);
    let placement = Placement::for_target(t);
    workers::mart_build(&mut plan, inv, dag, &placement)?;
    workers::monitor(&mut plan, inv)?;

    let lake_bucket = match &t.lake {
        crate::config::LakeLocation::Gcs { bucket } => bucket.clone(),
        crate::config::LakeLocation::Local { bucket, .. } => bucket.clone(),
    };
    let scheduled = scheduled::scheduled_queries(dag, timings, &placement, &t.location)?;
    let workers: BTreeMap<String, Value> = plan
        .grants
        .iter()
        .map(|(k, w)| (k.to_string(), w.json()))
        .collect();
    Ok(json!({
        "project": t.project,
        "location": t.location,
        "name_suffix": plan.suffix,
        "lake_bucket": lake_bucket,
        // Production owns what dev and pull-request targets share with it in one project.
        "owns_shared": t.name == "prod" || t.project != p.bigquery.project || lake_bucket != p.lake.bucket,
        "datasets": plan.datasets,
        "workers": workers,
        "schedules": plan.jobs,
        "ops_tables": ops_tables(),
        "service": service,
        "scheduled_queries": scheduled,
    }))
}

/// The deployment of every target named: by default each target of pipeline.yaml that runs
/// in Google Cloud (all but those with `no_auth`, such as `local`). Event schemas are read
/// under `base`, the directory of pipeline.yaml.
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
        let d = Inventory::checked(p, base, dag)
            .and_then(|inv| target_deployment(p, &inv, dag, &t, &timings))
            .map_err(|e| e.within(&format!("target {name}")))?;
        targets.insert(name, d);
    }
    Ok(json!({
        "generated_by": format!("sluice-deploy export-deployment {GENERATED_BY}"),
        "pipeline": p.name,
        "targets": targets,
    }))
}

#[cfg(test)]
mod tests;

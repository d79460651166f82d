//! Each worker's part of a target's deployment: the datasets it writes, what its service
//! account may do, and its Cloud Run jobs, made of the inventory's units (`crate::inventory`).
//! Units that share a run are one job: their worker's command, then every unit's arguments.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::{schedule_key, time_key, Job, Plan, CDC_TIMEOUT_S};
use crate::catalog::{raw_dataset, replica_dataset};
use crate::config::qualify;
use crate::inventory::{Inventory, Kind, Unit};
use crate::ledger::Worker;
use crate::marts::dag::Dag;
use crate::marts::render::Placement;
use crate::Result;

/// The arguments of one run of `units` (one worker's, of one command).
fn run_args(units: &[&Unit]) -> Vec<String> {
    let command = units.first().and_then(|u| u.command).map(String::from);
    command
        .into_iter()
        .chain(units.iter().flat_map(|u| u.args.iter().cloned()))
        .collect()
}

/// pg-copy: the raw dataset of each source it copies; one job per schedule, the large tables
/// of a schedule in a job of their own with a task each.
pub(super) fn pg_copy(plan: &mut Plan, inv: &Inventory) -> Result<()> {
    let (p, t) = (plan.p, plan.t);
    let mut groups: BTreeMap<(String, bool), Vec<&Unit>> = BTreeMap::new();
    let mut sources = BTreeSet::new();
    for u in inv.units_of(Worker::PgCopy) {
        groups
            .entry((u.schedule.cron(), u.large))
            .or_default()
            .push(u);
        let name = u.source.as_str();
        if !sources.insert(name) {
            continue;
        }
        let raw = t.dataset(raw_dataset(p, name));
        plan.dataset(
            raw.clone(),
            "raw",
            format!("pg-copy: copies of source `{name}`"),
        );
        let (ops, staging) = (plan.ops.clone(), plan.staging.clone());
        let w = plan.grants(Worker::PgCopy);
        w.writes.extend([raw, staging, ops]);
        w.lake = true;
        w.needs_dsn(t.dsn_ref(name, &p.sources[name]));
    }
    for ((cron, large), units) in groups {
        let kind = if large { "-large" } else { "" };
        let name = format!("pg-copy-{}{kind}", schedule_key(&units[0].schedule));
        let tables: Vec<String> = units.iter().map(|u| u.name()).collect();
        let job = Job {
            worker: Worker::PgCopy,
            about: format!("pg-copy {} ({})", tables.join(", "), cron),
            args: run_args(&units),
            cron,
            time_zone: None,
            // A large table's task reads it over as many ranges as its CPUs (pg-copy's default).
            tasks: if large { units.len() } else { 1 },
            timeout_s: if large { 10800 } else { 3600 },
            max_retries: 1,
            large,
        };
        plan.job(name, "pg-copy job", job)?;
    }
    Ok(())
}

/// cdc-sync: the replica dataset of each source with a `cdc` block, its run every few minutes
/// and its content check (`cdc-sync status`).
pub(super) fn cdc_sync(plan: &mut Plan, inv: &Inventory) -> Result<()> {
    let (p, t) = (plan.p, plan.t);
    for u in inv.units_of(Worker::CdcSync) {
        let name = u.source.as_str();
        let source = &p.sources[name];
        let Some(cdc) = &source.cdc else { continue };
        let job = |about: String, timeout_s| Job {
            worker: Worker::CdcSync,
            about,
            args: u.command_line(),
            cron: u.schedule.cron(),
            time_zone: None,
            tasks: 1,
            timeout_s,
            max_retries: 0,
            large: false,
        };
        let part = name.replace('_', "-");
        if u.command == Some("status") {
            let about = format!("cdc-sync status of source `{name}`: every replica of {} compared with Postgres by content", cdc.slot(name));
            plan.job(
                format!("cdc-sync-verify-{part}"),
                "cdc-sync verify job",
                job(about, 3600),
            )?;
            continue;
        }
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
        let replicas = format!("cdc-sync: replicas of source `{name}`");
        plan.dataset(replica.clone(), "replica", replicas);
        let (ops, staging) = (plan.ops.clone(), plan.staging.clone());
        let w = plan.grants(Worker::CdcSync);
        w.writes.extend([replica, staging, ops]);
        w.needs_dsn(t.dsn_ref(name, source));
        plan.job(
            format!("cdc-sync-{part}"),
            "cdc-sync job",
            job(about, CDC_TIMEOUT_S),
        )?;
    }
    Ok(())
}

/// log-ingest: the events dataset and the service behind a push subscription, its topic and
/// dead-letter topic (null without `events`).
pub(super) fn log_ingest(plan: &mut Plan, inv: &Inventory) -> Value {
    let (p, suffix) = (plan.p, plan.suffix.clone());
    let Some(ev) = &p.events else {
        return Value::Null;
    };
    let events = plan.t.dataset(&ev.dataset);
    let about = "log-ingest: the app's events";
    plan.dataset(events.clone(), "events", about.into());
    let ops = plan.ops.clone();
    plan.grants(Worker::LogIngest).writes.extend([events, ops]);
    let tables: BTreeSet<&str> = inv
        .tables
        .iter()
        .filter(|t| t.kind == Kind::Events)
        .map(|t| t.table.as_str())
        .collect();
    let topic = ev
        .topic
        .clone()
        .unwrap_or_else(|| format!("{}-events", p.name));
    let subscription = ev
        .subscription
        .clone()
        .unwrap_or_else(|| "log-ingest-push".into());
    json!({
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
    })
}

/// mart-build: the dataset of each mart and what its references read; one job per deployed
/// time of the marts it runs (scheduled queries run in BigQuery). Marts at one time share a
/// run, which builds them in dependency order.
pub(super) fn mart_build(
    plan: &mut Plan,
    inv: &Inventory,
    dag: &Dag,
    placement: &Placement,
) -> Result<()> {
    let (p, t) = (plan.p, plan.t);
    for m in dag.marts.values() {
        let dataset = t.dataset(&m.id.dataset);
        let about = format!("mart-build: marts of marts/{}", m.id.dataset);
        plan.dataset(dataset.clone(), "marts", about);
        let (ops, staging) = (plan.ops.clone(), plan.staging.clone());
        let w = plan.grants(Worker::MartBuild);
        w.writes.extend([dataset, staging, ops]);
        for r in &m.references {
            let placed = placement.place(dag, &r.name);
            let project = placed.project.unwrap_or_default();
            w.reads.insert(format!("{project}.{}", placed.dataset));
        }
    }
    let mut groups: BTreeMap<String, Vec<&Unit>> = BTreeMap::new();
    for u in inv.units_of(Worker::MartBuild) {
        groups.entry(u.schedule.cron()).or_default().push(u);
    }
    for (cron, units) in groups {
        let marts: Vec<String> = units.iter().map(|u| u.name()).collect();
        let job = Job {
            worker: Worker::MartBuild,
            about: format!(
                "mart-build {} ({cron}, after their inputs; waits for fresh inputs)",
                marts.join(", ")
            ),
            args: run_args(&units),
            cron: cron.clone(),
            time_zone: None,
            tasks: 1,
            timeout_s: 7200,
            max_retries: 0,
            large: false,
        };
        plan.job(
            format!("mart-build-{}", time_key(&cron)),
            "mart-build job",
            job,
        )?;
    }
    let own: BTreeSet<String> = plan
        .datasets
        .keys()
        .map(|d| format!("{}.{d}", t.project))
        .collect();
    if let Some(w) = plan.grants.get_mut(Worker::MartBuild.as_str()) {
        // The freshness wait reads the ledger of the inputs' project.
        let ops_in = format!("{}{}", p.bigquery.ops_dataset, t.inputs_suffix);
        w.reads.insert(format!("{}.{ops_in}", t.inputs_project));
        // Reads of datasets this target writes itself are covered by its writes.
        w.reads.retain(|r| !own.contains(r));
    }
    Ok(())
}

/// monitor: its check and its digest. It reads the ledger and the metadata, writes only its
/// three tables of ops (alerts, the declared tables, its own ledger rows) and the status page.
pub(super) fn monitor(plan: &mut Plan, inv: &Inventory) -> Result<()> {
    let (p, t) = (plan.p, plan.t);
    let alerts = p.alerts.clone().unwrap_or_default();
    let ops = plan.ops.clone();
    let m = plan.grants(Worker::Monitor);
    m.reads.insert(format!("{}.{ops}", t.project));
    m.table_writes.extend(
        [
            crate::ops::ALERTS.name,
            crate::ops::DECLARED_TABLES.name,
            crate::ops::RUNS.name,
        ]
        .map(|n| format!("{ops}.{n}")),
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
    for u in inv.units_of(Worker::Monitor) {
        let command = u.command.unwrap_or_default();
        let about = match command {
            "digest" => format!(
                "monitor digest at {} {}",
                alerts.digest.at, alerts.digest.time_zone
            ),
            _ => "monitor check: failed and missed runs, freshness, checks, dead letters, CDC lag; alerts and the status page".into(),
        };
        let job = Job {
            worker: Worker::Monitor,
            about,
            args: u.command_line(),
            cron: u.schedule.cron(),
            time_zone: u.time_zone.clone(),
            tasks: 1,
            timeout_s: 600,
            max_retries: 0,
            large: false,
        };
        plan.job(format!("monitor-{command}"), "monitor job", job)?;
    }
    Ok(())
}

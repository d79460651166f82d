//! What the pipeline declares, walked once: every table it lands or builds (with the worker
//! that writes it, owner, description, schedule and freshness SLA) and every scheduled unit
//! of work (with the arguments its worker runs it with). The three readers read this one
//! list: `Landed` (what a mart may read, `crate::catalog`), the monitor's declaration (what
//! the heartbeat expects) and the deployment (which Cloud Run jobs Cloud Scheduler starts,
//! `crate::deployment`).
//!
//! Each worker adds its own tables and units, one file each: `pg_copy` (a copy per table, a
//! unit per table), `cdc_sync` (replicas and histories, a run per source and its content
//! check), `log_ingest` (event tables and their one-row-per-message views; no units, it is a
//! service), `mart_build` (marts, a unit per mart it builds; feature `marts`) and `monitor`
//! (its check and digest). A new worker adds a file here and one call where the walk calls
//! the others (`landing` for what marts may read, else `everything`).
//! Names come from `crate::catalog`, so the inventory names what the workers write.

mod cdc_sync;
mod log_ingest;
#[cfg(feature = "marts")]
mod mart_build;
#[cfg(feature = "marts")]
mod monitor;
mod pg_copy;
#[cfg(test)]
mod tests;

pub use cdc_sync::CDC_MAX_DURATION;

use std::collections::BTreeMap;
use std::path::Path;

use crate::catalog::{Landed, Producer};
use crate::config::{owner_key, Freshness, Pipeline};
use crate::ledger::Worker;
use crate::schedule::Schedule;
use crate::Result;

/// What a table is, beyond which worker writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// pg-copy's copy of a Postgres table; a `full` copy covers every earlier date too.
    Copy { full: bool },
    /// cdc-sync's replica of a Postgres table.
    Replica,
    /// The append-only history of a replica.
    History,
    /// log-ingest's table of one event type.
    Events,
    /// The view of an event table that keeps one row per Pub/Sub message: a mart may read
    /// it, the monitor does not watch it (it is its table's).
    Dedup,
    /// A mart, built by mart-build or run as a BigQuery scheduled query.
    Mart,
}

/// A table the pipeline lands or builds.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Dataset before the target's suffix.
    pub dataset: String,
    pub table: String,
    pub kind: Kind,
    pub worker: Worker,
    /// The ledger's `source` of the unit that lands it (source name, or mart dataset).
    pub source: Option<String>,
    /// The ledger's `table_name` of that unit (None: any row of the source, as cdc-sync).
    pub unit_table: Option<String>,
    /// The `owners:` key.
    pub owner: Option<String>,
    pub description: Option<String>,
    /// Cron of its schedule (None: continuous, as events).
    pub cron: Option<String>,
    pub freshness: Option<Freshness>,
}

/// A unit of work a schedule starts: its ledger rows are `worker` with `source` (and
/// `table_name`, when given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    pub worker: Worker,
    /// The ledger's `source` of its rows: a source name, a mart dataset; the monitor's
    /// command for the monitor's own units.
    pub source: String,
    pub table: Option<String>,
    /// When it runs (a mart: the time derived from its inputs, `crate::marts::schedules`).
    pub schedule: Schedule,
    /// The time zone of `schedule` (None: UTC, as every cron of sluice but the digest's).
    pub time_zone: Option<String>,
    /// The `owners:` key.
    pub owner: Option<String>,
    /// The worker's subcommand (None: its default, as pg-copy's).
    pub command: Option<&'static str>,
    /// The arguments after the subcommand that run this unit. Units of one worker with the
    /// same command may share a run: their arguments are then concatenated
    /// (`--table a --table b`, `--select m.a --select m.b`).
    pub args: Vec<String>,
    /// Large tables get a run of their own, a task each, more CPU and memory.
    pub large: bool,
    /// Whether the monitor expects its ledger rows by each due time. Not for cdc-sync's
    /// content checks (a source's every-5-minutes run writes rows of the same unit) nor the
    /// monitor's own runs (a stopped monitor cannot report itself missing).
    pub expected: bool,
}

impl Unit {
    /// `shop.orders`, `shop`: its source, and table when it has one.
    pub fn name(&self) -> String {
        match &self.table {
            Some(t) => format!("{}.{t}", self.source),
            None => self.source.clone(),
        }
    }

    /// `pg-copy shop.orders`, `cdc-sync shop`.
    pub fn label(&self) -> String {
        format!("{} {}", self.worker, self.name())
    }

    /// Its worker's whole command line for a run of this unit alone.
    pub fn command_line(&self) -> Vec<String> {
        self.command
            .map(String::from)
            .into_iter()
            .chain(self.args.iter().cloned())
            .collect()
    }
}

/// Everything the pipeline declares.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    /// By dataset and table (before the target's suffix).
    pub tables: Vec<Table>,
    /// Datasets whose every table is the pipeline's (cdc of whole schemas, `ops`), with what
    /// lands them.
    pub open_datasets: BTreeMap<String, Producer>,
    /// In the order the workers add them: per source its copies, then its CDC run and check;
    /// marts in id order; the monitor's last.
    pub units: Vec<Unit>,
}

/// An `owners:` key as tables and units carry it (`@ana` is `ana`).
fn key(owner: &Option<String>) -> Option<String> {
    owner.as_deref().map(|o| owner_key(o).to_string())
}

/// What a part of the walk refused: an error when `strict`, nothing added otherwise.
fn keep(strict: bool, r: Result<()>) -> Result<()> {
    if strict {
        r
    } else {
        Ok(())
    }
}

impl Inventory {
    /// What the workers land before any mart: the tables a mart may read. Event tables are
    /// named by the schema files under `events.schemas`, relative to `base` (the directory of
    /// pipeline.yaml); an unreadable schemas directory lands none here.
    pub fn inputs(p: &Pipeline, base: &Path) -> Inventory {
        Self::landing(p, base, false).unwrap_or_default()
    }

    fn landing(p: &Pipeline, base: &Path, strict: bool) -> Result<Inventory> {
        let mut inv = Inventory::default();
        inv.open_datasets
            .insert(p.bigquery.ops_dataset.clone(), Producer::Ops);
        for (name, source) in &p.sources {
            pg_copy::add(&mut inv, p, name, source);
            cdc_sync::add(&mut inv, name, source);
        }
        keep(strict, log_ingest::add(&mut inv, p, base))?;
        inv.sort();
        Ok(inv)
    }

    /// Everything: what the workers land, the marts of `dag` and every scheduled unit.
    #[cfg(feature = "marts")]
    pub fn of(p: &Pipeline, base: &Path, dag: &crate::marts::Dag) -> Inventory {
        Self::everything(p, base, dag, false).unwrap_or_default()
    }

    /// As `of`, but an unreadable schemas directory or digest time is an error: what a
    /// deployment is derived from.
    #[cfg(feature = "marts")]
    pub fn checked(p: &Pipeline, base: &Path, dag: &crate::marts::Dag) -> Result<Inventory> {
        Self::everything(p, base, dag, true)
    }

    #[cfg(feature = "marts")]
    fn everything(
        p: &Pipeline,
        base: &Path,
        dag: &crate::marts::Dag,
        strict: bool,
    ) -> Result<Inventory> {
        let mut inv = Self::landing(p, base, strict)?;
        mart_build::add(&mut inv, p, dag);
        keep(strict, monitor::add(&mut inv, p))?;
        inv.sort();
        Ok(inv)
    }

    /// Tables by dataset and table; a stable sort, so equal names keep the walk's order.
    fn sort(&mut self) {
        self.tables
            .sort_by(|a, b| (&a.dataset, &a.table).cmp(&(&b.dataset, &b.table)));
    }

    /// The units of one worker, in order.
    pub fn units_of(&self, worker: Worker) -> impl Iterator<Item = &Unit> {
        self.units.iter().filter(move |u| u.worker == worker)
    }

    /// What a mart may read: every table but the marts, by `dataset.table`, and the open
    /// datasets.
    pub fn landed(&self) -> Landed {
        let mut l = Landed {
            open_datasets: self.open_datasets.clone(),
            ..Landed::default()
        };
        for t in &self.tables {
            let source = t.source.clone().unwrap_or_default();
            let producer = match t.kind {
                Kind::Copy { full } => Producer::PgCopy {
                    source,
                    table: t.table.clone(),
                    full,
                },
                Kind::Replica | Kind::History => Producer::Cdc { source },
                Kind::Events | Kind::Dedup => Producer::Events,
                Kind::Mart => continue,
            };
            l.tables
                .insert(format!("{}.{}", t.dataset, t.table), producer);
        }
        l
    }
}

impl Landed {
    /// The tables of a pipeline a mart may read (`Inventory::inputs`); event tables are named
    /// by the schema files under `events.schemas`, relative to `base`, the directory of
    /// pipeline.yaml.
    pub fn of(p: &Pipeline, base: &Path) -> Landed {
        Inventory::inputs(p, base).landed()
    }
}

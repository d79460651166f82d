//! What a run is asked to do (`Options`) and everything it talks to (`Ctx`): BigQuery, the
//! lake, the ledger, and the state its units share.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::NaiveDate;
use sluice::bigquery::BigQuery;
use sluice::config::{Pipeline, Target};
use sluice::lake::Lake;
use sluice::ledger::{Ledger, Recorder, Worker};
use sluice::secret_manager::resolve_dsn;
use sluice::{Error, ErrorKind, Result};

use crate::extract::{Counters, ExtractOptions};
use crate::plan::{Dates, Unit};

/// What to copy and how.
#[derive(Debug, Clone)]
pub struct Options {
    pub target: String,
    pub source: Option<String>,
    pub tables: Vec<String>,
    pub dates: Dates,
    /// Reload from the lake's committed files without touching Postgres.
    pub from_lake: bool,
    /// Write the lake's files and manifests only: no BigQuery load, no ledger row (a unit
    /// copied to the lake is not loaded, and nothing downstream may think it is). Load later
    /// with `from_lake`.
    pub lake_only: bool,
    pub extract: ExtractOptions,
    /// Units (dates of a backfill, tables) run at once.
    pub concurrency: usize,
    /// Cloud Run task index and count: this task does every count-th unit.
    pub task: (usize, usize),
    /// Show a progress bar (terminal) rather than periodic log lines.
    pub progress_bar: bool,
    /// "Today" for default dates (tests pin it).
    pub today: Option<NaiveDate>,
    /// After loading, count the rows in Postgres independently and compare.
    pub verify: bool,
}

impl Options {
    pub fn new(target: &str) -> Options {
        Options {
            target: target.to_string(),
            source: None,
            tables: vec![],
            dates: Dates::Default,
            from_lake: false,
            lake_only: false,
            extract: ExtractOptions::default(),
            concurrency: 2,
            task: (0, 1),
            progress_bar: false,
            today: None,
            verify: false,
        }
    }
}

/// Everything a run talks to.
pub(crate) struct Ctx {
    pub(crate) pipeline: Pipeline,
    pub(crate) target: Target,
    pub(crate) bq: BigQuery,
    pub(crate) lake: Lake,
    /// None with `lake_only`: nothing is loaded, so nothing is recorded.
    pub(crate) recorder: Option<Recorder>,
    pub(crate) run_id: String,
    pub(crate) opts: Options,
    pub(crate) counters: Arc<Counters>,
    /// One lock per target table: BigQuery aborts concurrent transactions on one table, so the
    /// dates of a backfill extract in parallel but swap one at a time.
    table_locks: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Sources whose database did not answer in this run, with the error: their other units
    /// fail at once instead of each waiting out the same timeouts.
    unanswered: std::sync::Mutex<HashMap<String, String>>,
}

impl Ctx {
    /// Opens BigQuery, the lake and (unless `lake_only`) the run ledger for a run in `target`.
    pub(crate) async fn open(
        pipeline: &Pipeline,
        target: Target,
        run_id: &str,
        opts: Options,
    ) -> Result<Ctx> {
        let bq = BigQuery::for_run(&target, Worker::PgCopy.as_str(), run_id)?;
        let lake = Lake::open(&target.lake, &sluice::auth::Auth::for_target(&target))?;
        let recorder = if opts.lake_only {
            None
        } else {
            let ops = target.dataset(&pipeline.bigquery.ops_dataset);
            let ledger = Ledger::open(bq.clone(), &ops).await?;
            Some(ledger.recorder(run_id, Worker::PgCopy, &target.name))
        };
        Ok(Ctx {
            pipeline: pipeline.clone(),
            target,
            bq,
            lake,
            recorder,
            run_id: run_id.to_string(),
            opts,
            counters: Arc::new(Counters::default()),
            table_locks: Default::default(),
            unanswered: Default::default(),
        })
    }

    /// The connection string of a unit's source in this target.
    pub(crate) async fn dsn(&self, unit: &Unit) -> Result<sluice::secret::Secret> {
        let source = self
            .pipeline
            .sources
            .get(&unit.source)
            .ok_or_else(|| Error::config(format!("no source {}", unit.source)))?;
        resolve_dsn(self.target.dsn_ref(&unit.source, source), &self.target).await
    }

    /// Fails a unit whose source did not answer an earlier unit of this run.
    pub(crate) fn check_answering(&self, unit: &Unit) -> Result<()> {
        let seen = self.unanswered.lock().unwrap_or_else(|p| p.into_inner());
        match seen.get(&unit.source) {
            None => Ok(()),
            Some(first) => Err(Error::Postgres {
                context: format!("copying {}", unit.label()),
                message: format!(
                    "not tried: source {} did not answer an earlier unit ({first})",
                    unit.source
                ),
                kind: ErrorKind::Unanswered,
                source: None,
            }),
        }
    }

    /// Remembers that a unit's source did not answer, for `check_answering`.
    pub(crate) fn note_unanswered(&self, unit: &Unit, e: &Error) {
        if matches!(e, Error::Postgres { .. }) && e.kind() == ErrorKind::Unanswered {
            let mut seen = self.unanswered.lock().unwrap_or_else(|p| p.into_inner());
            seen.entry(unit.source.clone())
                .or_insert_with(|| e.to_string());
        }
    }

    /// The lock a unit takes on its target table while it loads and swaps.
    pub(crate) fn table_lock(&self, unit: &Unit) -> Arc<tokio::sync::Mutex<()>> {
        let key = format!("{}.{}", unit.source, unit.table);
        let mut locks = self.table_locks.lock().expect("not poisoned");
        locks.entry(key).or_default().clone()
    }
}

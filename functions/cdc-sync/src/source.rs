//! One CDC source made ready for a run: its slot and publication, the two Postgres
//! connections (one streams the slot, one answers catalog lookups and snapshots while it
//! does), the replicas' sink and the run's ledger recorder.

use sluice::bigquery::staging::Staging;
use sluice::bigquery::BigQuery;
use sluice::catalog;
use sluice::config::{CdcConfig, Pipeline, Source, Target};
use sluice::lake::Lake;
use sluice::ledger::{Ledger, Recorder, RunRecord, Worker};
use sluice::postgres::{connect, PgConnection};
use sluice::secret_manager::resolve_dsn;
use sluice::{Error, Result};

use crate::sink::Sink;

/// A source with CDC, ready to go.
pub(crate) struct SourceCtx<'a> {
    pub(crate) name: String,
    pub(crate) cdc: &'a CdcConfig,
    pub(crate) publication: String,
    pub(crate) slot: String,
    pub(crate) sink: Sink,
    pub(crate) recorder: Recorder,
    pub(crate) run_id: String,
    /// Reads the slot (one query at a time: a peek streams on it).
    pub(crate) stream: PgConnection,
    /// Catalog lookups and snapshots while a peek streams.
    pub(crate) catalog: PgConnection,
}

impl SourceCtx<'_> {
    /// A successful ledger row of this run and source, started at `started`, finished now;
    /// callers fill in what they did.
    pub(crate) fn ledger_row(
        &self,
        started: chrono::DateTime<chrono::Utc>,
        details: serde_json::Value,
    ) -> RunRecord {
        RunRecord {
            source: Some(self.name.clone()),
            details,
            ..self.recorder.row(started)
        }
    }

    /// Writes a ledger row; one that cannot be written fails the run before the slot
    /// advances (the ledger's policy: the rerun replays the batches and writes it).
    pub(crate) async fn record(&self, r: RunRecord) -> Result<()> {
        self.recorder.record(&r).await
    }
}

/// The sources with a `cdc:` block (or only `only`, which must have one).
pub(crate) fn cdc_sources<'a>(
    pipeline: &'a Pipeline,
    only: Option<&str>,
) -> Result<Vec<(&'a String, &'a Source, &'a CdcConfig)>> {
    let v: Vec<_> = pipeline
        .sources
        .iter()
        .filter(|(n, _)| only.is_none_or(|o| o == n.as_str()))
        .filter_map(|(n, s)| s.cdc.as_ref().map(|c| (n, s, c)))
        .collect();
    if v.is_empty() {
        return Err(Error::config(match only {
            Some(o) if pipeline.sources.contains_key(o) => {
                format!("source {o} has no `cdc:` block in the pipeline")
            }
            Some(o) => format!("no source named {o} in the pipeline"),
            None => "no source has a `cdc:` block in the pipeline".into(),
        }));
    }
    Ok(v)
}

/// Connects to a source and opens what a run on it needs.
pub(crate) async fn source_ctx<'a>(
    pipeline: &'a Pipeline,
    target: &'a Target,
    name: &str,
    source: &'a Source,
    cdc: &'a CdcConfig,
    run_id: &str,
) -> Result<SourceCtx<'a>> {
    let dsn = resolve_dsn(target.dsn_ref(name, source), target).await?;
    let stream = connect(name, &dsn, "sluice-cdc-sync", &target.timeouts).await?;
    let catalog = connect(name, &dsn, "sluice-cdc-sync-catalog", &target.timeouts).await?;
    for c in [&stream, &catalog] {
        // Snapshots decode binary COPY in UTC like pg-copy.
        c.batch_execute("setting the session time zone", "SET TIME ZONE 'UTC'")
            .await?;
    }
    let bq = BigQuery::for_run(target, Worker::CdcSync.as_str(), run_id)?;
    let lake = Lake::open(&target.lake, &sluice::auth::Auth::for_target(target))?;
    let ledger = Ledger::open(bq.clone(), &target.dataset(&pipeline.bigquery.ops_dataset)).await?;
    let staging = Staging::new(&bq, &target.dataset(&pipeline.bigquery.staging_dataset));
    let sink = Sink {
        bq,
        lake,
        dataset: target.dataset(&catalog::replica_dataset(cdc, name)),
        staging,
        source: name.to_string(),
        slot: cdc.slot(name),
        job_prefix: format!("{}_{}", pipeline.name, target.name),
        deletes: cdc.deletes,
        history: cdc.history.clone(),
        checked: Default::default(),
    };
    Ok(SourceCtx {
        name: name.to_string(),
        cdc,
        publication: cdc.publication(name),
        slot: cdc.slot(name),
        sink,
        recorder: ledger.recorder(run_id, Worker::CdcSync, &target.name),
        run_id: run_id.to_string(),
        stream,
        catalog,
    })
}

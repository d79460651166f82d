//! A log-ingest run's context (`Ingest`): the event tables and views opened (created or
//! widened from the schemas), the router, and the writer with its ledger windows started for
//! one delivery path; and the stop signal every path waits for.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sluice::bigquery::sql::table_ref;
use sluice::bigquery::BigQuery;
use sluice::config::{EventsConfig, Pipeline, Target};
use sluice::ledger::{new_run_id, Ledger, Recorder, RunRecord, Status, Worker};
use sluice::{Error, Result};
use tracing::Instrument;

use crate::columns;
use crate::event::{Incoming, Routed, Router, Via};
use crate::schema::{self, EventSchema};
use crate::writer::{Counts, Writer, WriterConfig};

/// Everything a delivery path needs: the router, the client and where rows go.
#[derive(Debug)]
pub struct Ingest {
    pub router: Router,
    pub bq: BigQuery,
    pub target: Target,
    pub events: EventsConfig,
    pub events_dataset: String,
    pub ops_dataset: String,
}

/// The `events:` block, or a clear error.
pub fn events_config(pipeline: &Pipeline) -> Result<&EventsConfig> {
    pipeline.events.as_ref().ok_or_else(|| {
        Error::config("pipeline.yaml has no `events:` block (log-ingest needs one; see the README)")
    })
}

/// Loads the schemas of `events.schemas`, resolved against the pipeline file's directory.
pub fn load_router(events: &EventsConfig, pipeline_dir: &Path) -> Result<Router> {
    let dir = pipeline_dir.join(&events.schemas);
    let schemas = schema::load_dir(&dir)?;
    Ok(Router {
        schemas,
        type_attribute: events.type_attribute.clone(),
        type_field: events.type_field.clone(),
        max_payload_bytes: events.max_payload_bytes,
    })
}

impl Ingest {
    /// Loads the schemas and brings BigQuery up to date with them: missing tables created,
    /// new optional properties added as columns, incompatible changes refused by name.
    pub async fn open(pipeline: &Pipeline, pipeline_dir: &Path, target: &Target) -> Result<Ingest> {
        let events = events_config(pipeline)?.clone();
        let router = load_router(&events, pipeline_dir)?;
        // Its jobs (views, replays) carry the worker and target; its writes are insertAll, not
        // jobs, so a run label would label nothing.
        let bq = BigQuery::for_target(target)?
            .labelled("sluice_worker", Worker::LogIngest.as_str())
            .labelled("sluice_target", &target.name);
        let events_dataset = target.dataset(&events.dataset);
        let ops_dataset = target.dataset(&pipeline.bigquery.ops_dataset);
        bq.ensure_dataset(&events_dataset, None).await?;
        bq.ensure_dataset(&ops_dataset, None).await?;
        let ingest = Ingest {
            router,
            bq,
            target: target.clone(),
            events,
            events_dataset,
            ops_dataset,
        };
        for s in ingest.router.schemas.values() {
            ingest.ensure_table(s).await?;
            let view = dedup_view_sql(ingest.bq.project(), &ingest.events_dataset, &s.table);
            ingest.bq.query(&view, &[]).await?;
        }
        for t in [sluice::ops::DEAD_LETTER, sluice::ops::DEAD_LETTER_REPLAYS] {
            t.ensure(&ingest.bq, &ingest.ops_dataset).await?;
        }
        ingest
            .bq
            .query(
                &sluice::ops::dead_letter_open_view(ingest.bq.project(), &ingest.ops_dataset),
                &[],
            )
            .await?;
        Ok(ingest)
    }

    /// Creates an event type's table, or adds the columns its schema gained; refuses type
    /// changes.
    async fn ensure_table(&self, s: &EventSchema) -> Result<()> {
        let (dataset, table) = (&self.events_dataset, &s.table);
        let what = format!("event type {} ({})", s.event_type, s.file.display());
        if self
            .bq
            .create_table(dataset, table, s.table_resource())
            .await?
        {
            tracing::info!(table = %format!("{dataset}.{table}"), "created table for {what}");
            return Ok(());
        }
        let existing = self
            .bq
            .table_schema(dataset, table)
            .await?
            .unwrap_or_default();
        match columns::evolve(&existing, &s.fields()) {
            Ok(None) => Ok(()),
            Ok(Some(merged)) => {
                self.bq.patch_schema(dataset, table, &merged).await?;
                tracing::info!(table = %format!("{dataset}.{table}"), "added new columns for {what}");
                Ok(())
            }
            Err(e) => Err(e.within(&format!("{what}: table {dataset}.{table}"))),
        }
    }

    /// Routes one message, stamped now.
    pub fn route(&self, msg: Incoming) -> Routed {
        self.router.route(msg, &sluice::time::now_bigquery())
    }

    /// Batch limits from the pipeline.
    pub fn writer_config(&self) -> WriterConfig {
        let b = &self.events.batch;
        WriterConfig {
            events_dataset: self.events_dataset.clone(),
            ops_dataset: self.ops_dataset.clone(),
            max_rows: b.max_rows,
            max_bytes: b.max_bytes,
            max_wait: Duration::from_millis(b.max_wait_ms),
            max_inflight: 4,
            max_payload_bytes: self.events.max_payload_bytes,
        }
    }

    /// Starts the writer and the ledger window; `finish` on the returned pipeline drains both.
    pub async fn start(self: &Arc<Self>, via: Via) -> Result<Running> {
        let counts = Arc::new(Counts::default());
        let (writer, writer_task) =
            Writer::start(self.bq.clone(), self.writer_config(), counts.clone());
        let ledger = Ledger::open(self.bq.clone(), &self.ops_dataset).await?;
        let run_id = new_run_id();
        tracing::info!(run_id = %run_id, via = via.as_str(), "run started");
        let recorder = ledger.recorder(&run_id, Worker::LogIngest, &self.target.name);
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let window = Duration::from_secs(self.events.ledger_window_s);
        let span = tracing::info_span!("log-ingest", run_id = %run_id, via = via.as_str());
        let ledger_task =
            tokio::spawn(ledger_loop(recorder, counts, window, via, stopped).instrument(span));
        Ok(Running {
            writer,
            writer_task,
            ledger_task,
            stop,
        })
    }
}

/// A started writer and ledger window.
pub struct Running {
    pub writer: Writer,
    writer_task: tokio::task::JoinHandle<()>,
    ledger_task: tokio::task::JoinHandle<()>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Running {
    /// Waits for every batch handed to the writer (once all its clones are dropped), then
    /// writes the last ledger window.
    pub async fn finish(self) {
        drop(self.writer);
        let _ = self.writer_task.await;
        let _ = self.stop.send(true);
        let _ = self.ledger_task.await;
    }
}

/// Writes one ledger row per table per window: events in, loaded, dead-lettered. A row that
/// cannot be written leaves its counts for the next window's (the ledger's policy for a
/// service, which cannot rerun a window).
async fn ledger_loop(
    recorder: Recorder,
    counts: Arc<Counts>,
    window: Duration,
    via: Via,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut started = chrono::Utc::now();
    loop {
        let last = tokio::select! {
            _ = tokio::time::sleep(window) => false,
            _ = stop.changed() => true,
        };
        for (table, c) in counts.take() {
            let record = RunRecord {
                source: Some(via.as_str().into()),
                table_name: Some(table.clone()),
                status: if c.not_committed > 0 && c.rows_in == 0 {
                    Status::Failed
                } else {
                    Status::Success
                },
                rows_in: c.rows_in,
                rows_loaded: c.loaded,
                rows_dead_lettered: c.dead_lettered,
                bytes: c.bytes,
                error: (c.not_committed > 0).then(|| {
                    format!(
                        "{} events not committed (refused for redelivery)",
                        c.not_committed
                    )
                }),
                details: json!({"reasons": c.reasons, "not_committed": c.not_committed}),
                ..recorder.row(started)
            };
            if let Err(e) = recorder.record(&record).await {
                tracing::error!(error = %e, table, "could not write the run ledger; the next window's row carries these counts");
                counts.put_back(&table, c);
            }
        }
        started = chrono::Utc::now();
        if last {
            break;
        }
    }
}

/// `CREATE OR REPLACE VIEW` of an event table's view that keeps one row per Pub/Sub message
/// (insertId dedup is best effort), named by `sluice::catalog::dedup_view`.
pub fn dedup_view_sql(project: &str, dataset: &str, table: &str) -> String {
    let view = table_ref(project, dataset, &sluice::catalog::dedup_view(table));
    let table = table_ref(project, dataset, table);
    format!(
        "CREATE OR REPLACE VIEW {view} OPTIONS (description = 'One row per Pub/Sub message of {table}: query this for exactly-once.') AS\n\
         SELECT * FROM {table} WHERE TRUE\n\
         QUALIFY ROW_NUMBER() OVER (PARTITION BY _message_id ORDER BY _ingested_at) = 1"
    )
}

/// Resolves on SIGTERM (Cloud Run's stop signal) or Ctrl-C.
pub async fn stop_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_dedup_view_keeps_the_first_row_of_each_message() {
        assert_eq!(
            super::dedup_view_sql("p", "events", "clicks"),
            "CREATE OR REPLACE VIEW `p.events.clicks_dedup` OPTIONS (description = 'One row per Pub/Sub message of `p.events.clicks`: query this for exactly-once.') AS\n\
             SELECT * FROM `p.events.clicks` WHERE TRUE\n\
             QUALIFY ROW_NUMBER() OVER (PARTITION BY _message_id ORDER BY _ingested_at) = 1"
        );
    }
}

//! Group commit: rows of many concurrent requests go to BigQuery in one insertAll per table,
//! and each request learns the fate of its own row only after BigQuery has answered.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice::bigquery::BigQuery;
use sluice::retry;
use sluice::{Error, ErrorKind};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::event::{DeadLetter, Reason, Routed};

/// What happened to one message, once committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// In its event table.
    Loaded,
    /// In `ops.dead_letter`, with this reason.
    DeadLettered(Reason),
}

/// Why a message was not committed: the caller must not ack it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotCommitted {
    pub transient: bool,
    pub message: String,
}

type Reply = Result<Outcome, NotCommitted>;

struct Job {
    item: Routed,
    reply: oneshot::Sender<Reply>,
}

impl Job {
    fn size(&self) -> usize {
        match &self.item {
            Routed::Row(r) => r.json.len() + r.insert_id.len() + 32,
            Routed::Dead(d) => d.msg.data.len() * 4 / 3 + 512,
        }
    }
}

/// Limits of a batch and where rows go.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    pub events_dataset: String,
    pub ops_dataset: String,
    pub max_rows: usize,
    pub max_bytes: usize,
    pub max_wait: Duration,
    /// Batches written at once; more requests wait (and their batches grow).
    pub max_inflight: usize,
    pub max_payload_bytes: usize,
}

pub const DEAD_LETTER_TABLE: &str = sluice::ops::DEAD_LETTER.name;

/// Counts of one table (or of the dead-letter table for untyped events) in the current
/// ledger window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WindowCount {
    pub rows_in: u64,
    pub loaded: u64,
    pub dead_lettered: u64,
    pub bytes: u64,
    pub not_committed: u64,
    pub reasons: BTreeMap<&'static str, u64>,
}

/// Counts since the last ledger row, by table.
#[derive(Debug, Default)]
pub struct Counts(Mutex<BTreeMap<String, WindowCount>>);

impl Counts {
    fn add(&self, table: &str, f: impl FnOnce(&mut WindowCount)) {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f(m.entry(table.to_string()).or_default());
    }

    /// Takes the counts of the window that ends now.
    pub fn take(&self) -> BTreeMap<String, WindowCount> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Puts back the counts of a window whose ledger row could not be written: the next
    /// window's row carries them.
    pub fn put_back(&self, table: &str, c: WindowCount) {
        self.add(table, |w| {
            w.rows_in += c.rows_in;
            w.loaded += c.loaded;
            w.dead_lettered += c.dead_lettered;
            w.bytes += c.bytes;
            w.not_committed += c.not_committed;
            for (reason, n) in c.reasons {
                *w.reasons.entry(reason).or_default() += n;
            }
        });
    }
}

/// The sending side; cheap to clone. Dropping every clone lets the writer finish.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer task; it ends once every `Writer` is dropped and its batches are done.
    pub fn start(
        bq: BigQuery,
        config: WriterConfig,
        counts: Arc<Counts>,
    ) -> (Writer, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(config.max_rows * (config.max_inflight + 1));
        let handle = tokio::spawn(collect(rx, Arc::new(Shared { bq, config, counts })));
        (Writer { tx }, handle)
    }

    /// Hands one routed message to the next batch and waits until it is committed.
    pub async fn submit(&self, item: Routed) -> Reply {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Job { item, reply }).await.is_err() {
            return Err(stopping());
        }
        rx.await.unwrap_or_else(|_| Err(stopping()))
    }
}

fn stopping() -> NotCommitted {
    NotCommitted {
        transient: true,
        message: "log-ingest is shutting down".into(),
    }
}

struct Shared {
    bq: BigQuery,
    config: WriterConfig,
    counts: Arc<Counts>,
}

async fn collect(mut rx: mpsc::Receiver<Job>, shared: Arc<Shared>) {
    let c = &shared.config;
    let inflight = Arc::new(Semaphore::new(c.max_inflight.max(1)));
    let mut tasks = JoinSet::new();
    loop {
        let Ok(permit) = inflight.clone().acquire_owned().await else {
            break;
        };
        let Some(first) = rx.recv().await else { break };
        let mut bytes = first.size();
        let mut batch = vec![first];
        let deadline = Instant::now() + c.max_wait;
        while batch.len() < c.max_rows && bytes < c.max_bytes {
            tokio::select! {
                job = rx.recv() => match job {
                    Some(j) => {
                        bytes += j.size();
                        batch.push(j);
                    }
                    None => break,
                },
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        tasks.spawn(commit(batch, shared.clone(), permit));
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

/// Writes one batch: rows per table, then the dead letters (including rows BigQuery refused),
/// then answers every request.
async fn commit(batch: Vec<Job>, shared: Arc<Shared>, _permit: OwnedSemaphorePermit) {
    let c = &shared.config;
    let received_at = sluice::time::now_bigquery();
    let mut replies: Vec<Option<oneshot::Sender<Reply>>> = Vec::with_capacity(batch.len());
    let mut rows: BTreeMap<String, Vec<(usize, crate::event::Row)>> = BTreeMap::new();
    let mut dead: Vec<(usize, DeadLetter)> = vec![];
    for (i, job) in batch.into_iter().enumerate() {
        replies.push(Some(job.reply));
        match job.item {
            Routed::Row(r) => rows.entry(r.table.clone()).or_default().push((i, r)),
            Routed::Dead(d) => dead.push((i, d)),
        }
    }
    let mut answers: Vec<Option<Reply>> = vec![None; replies.len()];
    let results = futures::future::join_all(rows.iter().map(|(table, items)| {
        let ids: Vec<(&str, &[u8])> = items
            .iter()
            .map(|(_, r)| (r.insert_id.as_str(), r.json.as_slice()))
            .collect();
        let shared = shared.clone();
        async move { insert(&shared, &c.events_dataset, table, ids).await }
    }))
    .await;
    for ((table, items), result) in rows.into_iter().zip(results) {
        match result {
            Ok(refused) => {
                let mut refused: BTreeMap<usize, String> = refused.into_iter().collect();
                for (pos, (i, r)) in items.into_iter().enumerate() {
                    match refused.remove(&pos) {
                        None => {
                            shared.counts.add(&table, |w| {
                                w.rows_in += 1;
                                w.loaded += 1;
                                w.bytes += r.json.len() as u64;
                            });
                            answers[i] = Some(Ok(Outcome::Loaded));
                        }
                        Some(why) => dead.push((
                            i,
                            DeadLetter {
                                event_type: Some(r.event_type),
                                table: Some(r.table),
                                msg: r.msg,
                                reason: Reason::Rejected,
                                detail: format!("BigQuery refused the row: {why}"),
                            },
                        )),
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, table, rows = items.len(), "rows not committed; Pub/Sub will redeliver them");
                for (i, _) in items {
                    shared.counts.add(&table, |w| w.not_committed += 1);
                    answers[i] = Some(Err(not_committed(&e)));
                }
            }
        }
    }
    if !dead.is_empty() {
        let serialized: Vec<(String, Vec<u8>)> = dead
            .iter()
            .map(|(_, d)| (d.insert_id(), d.row(&received_at, c.max_payload_bytes)))
            .collect();
        let ids = serialized
            .iter()
            .map(|(id, row)| (id.as_str(), row.as_slice()))
            .collect();
        let result = insert(&shared, &c.ops_dataset, DEAD_LETTER_TABLE, ids).await;
        for (pos, (i, d)) in dead.into_iter().enumerate() {
            let table = d.table.as_deref().unwrap_or(DEAD_LETTER_TABLE);
            let answer = match &result {
                Ok(refused) if !refused.iter().any(|(p, _)| *p == pos) => {
                    shared.counts.add(table, |w| {
                        w.rows_in += 1;
                        w.dead_lettered += 1;
                        *w.reasons.entry(d.reason.code()).or_default() += 1;
                    });
                    Ok(Outcome::DeadLettered(d.reason))
                }
                Ok(refused) => {
                    let why = refused
                        .iter()
                        .find(|(p, _)| *p == pos)
                        .map(|(_, m)| m.as_str());
                    tracing::error!(
                        message_id = d.msg.message_id,
                        why,
                        "the dead-letter table refused a row"
                    );
                    shared.counts.add(table, |w| w.not_committed += 1);
                    Err(NotCommitted {
                        transient: false,
                        message: format!(
                            "the dead-letter table refused the row: {}",
                            why.unwrap_or("")
                        ),
                    })
                }
                Err(e) => {
                    shared.counts.add(table, |w| w.not_committed += 1);
                    Err(not_committed(e))
                }
            };
            answers[i] = Some(answer);
        }
    }
    for (reply, answer) in replies.into_iter().zip(answers) {
        if let (Some(r), Some(a)) = (reply, answer) {
            let _ = r.send(a);
        }
    }
}

fn not_committed(e: &Error) -> NotCommitted {
    NotCommitted {
        transient: e.is_retryable(),
        message: e.to_string(),
    }
}

/// insertAll with retries: transient errors are tried again with the QUICK backoff (the pushes
/// wait for their answer); when BigQuery refuses
/// some rows, the rows it stopped are sent again without them. Ok holds the refused rows by
/// position in `rows`.
async fn insert(
    shared: &Shared,
    dataset: &str,
    table: &str,
    rows: Vec<(&str, &[u8])>,
) -> Result<Vec<(usize, String)>, Error> {
    let mut pending: Vec<usize> = (0..rows.len()).collect();
    let mut refused = vec![];
    let mut waits = retry::QUICK.delays();
    while !pending.is_empty() {
        let send: Vec<(&str, &[u8])> = pending.iter().map(|&p| rows[p]).collect();
        match shared.bq.insert_all_raw(dataset, table, &send).await {
            Ok(errors) if errors.is_empty() => break,
            Ok(errors) => {
                let mut retry = vec![];
                for e in errors {
                    let Some(&pos) = pending.get(e.index) else {
                        continue;
                    };
                    if e.reason == "stopped" {
                        retry.push(pos);
                    } else {
                        refused.push((pos, e.message));
                    }
                }
                if retry.len() == pending.len() {
                    // Nothing refused yet nothing written: treat as transient.
                    return Err(Error::BigQuery {
                        context: format!("inserting into {dataset}.{table}"),
                        message: "every row stopped with no row refused".into(),
                        kind: ErrorKind::Transient,
                    });
                }
                pending = retry;
            }
            Err(e) if e.is_retryable() => {
                let Some(wait) = waits.next() else {
                    return Err(e);
                };
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "insertAll failed; retrying");
                tokio::time::sleep(wait).await;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(refused)
}

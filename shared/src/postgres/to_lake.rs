//! Postgres → Parquet in the lake: a consistent snapshot, and a SELECT streamed as binary COPY,
//! decoded into Arrow and written as the lake's Parquet. pg-copy's copies and cdc-sync's
//! snapshots both run through here.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use futures::StreamExt;
use tokio::sync::{mpsc, oneshot};

use super::{connect, CopyDecoder, DecodeStats, PgConnection};
use crate::config::Timeouts;
use crate::error::{Error, Result};
use crate::lake::{ParquetSink, PartFile};
use crate::secret::Secret;
use crate::types::ColumnMapping;

/// Rows and bytes read so far, for progress reports.
#[derive(Debug, Default)]
pub struct Counters {
    pub rows: AtomicU64,
    pub bytes: AtomicU64,
}

/// Opens a read-only REPEATABLE READ transaction: every later statement sees one snapshot.
/// With `exported` (a `pg_export_snapshot()` of another connection), it is that snapshot, so
/// several connections read one consistent state. `label` names the table in errors.
pub async fn begin_snapshot(
    conn: &PgConnection,
    exported: Option<&str>,
    label: &str,
) -> Result<()> {
    let what = format!("starting the snapshot of {label}");
    conn.batch_execute(&what, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await?;
    if let Some(s) = exported {
        conn.batch_execute(&what, &format!("SET TRANSACTION SNAPSHOT '{s}'"))
            .await?;
    }
    Ok(())
}

/// Ends the snapshot; a read-only transaction has nothing to lose, so a failure is ignored.
pub async fn end_snapshot(conn: &PgConnection) {
    let _ = conn.batch_execute("ending the snapshot", "COMMIT").await;
}

/// Streams `select` (the mapped `columns`, in order) as binary COPY into `sink`, in Arrow
/// batches of about `batch_rows` rows; decoding and Parquet encoding overlap. Returns the
/// files written, the rows read and the decode counts.
pub async fn copy_select(
    conn: &PgConnection,
    label: &str,
    select: &str,
    columns: &[ColumnMapping],
    sink: ParquetSink,
    batch_rows: usize,
    counters: &Counters,
) -> Result<(Vec<PartFile>, u64, DecodeStats)> {
    let (tx, writer) = spawn_writer(sink);
    let read = read_batches(conn, label, select, columns, tx, batch_rows, counters).await;
    join(read, writer).await
}

/// A SELECT to read on a connection of its own, inside a snapshot another connection exported.
#[derive(Clone)]
pub struct RangeCopy {
    /// The source's name, for connection errors.
    pub source: String,
    pub dsn: Secret,
    pub app: &'static str,
    pub timeouts: Timeouts,
    /// `pg_export_snapshot()` of the connection that holds the snapshot open; None: the range
    /// is the whole read and opens a snapshot of its own.
    pub snapshot: Option<String>,
    /// The table, in errors.
    pub label: String,
    pub select: String,
    pub columns: Vec<ColumnMapping>,
    pub batch_rows: usize,
}

/// Like [`copy_select`], but connects and reads on a thread of its own with a single-threaded
/// runtime, while the Parquet encoding stays on the caller's runtime. The connection's driver
/// (tokio-postgres reads the socket in a task of its own) and the decoder then share one
/// thread, so a chunk goes from the socket to the decoder without waking another thread: on
/// the shared runtime those wake-ups were a third of pg-copy's CPU.
pub async fn copy_range_on_own_thread(
    range: RangeCopy,
    sink: ParquetSink,
    counters: Arc<Counters>,
) -> Result<(Vec<PartFile>, u64, DecodeStats)> {
    let (tx, writer) = spawn_writer(sink);
    let (done_tx, done_rx) = oneshot::channel();
    let label = range.label.clone();
    let spawned = std::thread::Builder::new()
        .name("sluice-copy".into())
        .spawn(move || {
            let result = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(read_range(range, tx, &counters)),
                Err(e) => Err(Error::lake_other("starting a copy thread's runtime", e)),
            };
            let _ = done_tx.send(result);
        });
    let read = match spawned {
        Ok(_) => done_rx.await.unwrap_or_else(|_| {
            Err(Error::Decode {
                table: label,
                detail: "the copy thread stopped without an answer".into(),
            })
        }),
        Err(e) => Err(Error::lake_other("starting a copy thread", e)),
    };
    join(read, writer).await
}

async fn read_range(
    range: RangeCopy,
    tx: mpsc::Sender<RecordBatch>,
    counters: &Counters,
) -> Result<(u64, DecodeStats)> {
    let conn = connect(&range.source, &range.dsn, range.app, &range.timeouts).await?;
    begin_snapshot(&conn, range.snapshot.as_deref(), &range.label).await?;
    let read = read_batches(
        &conn,
        &range.label,
        &range.select,
        &range.columns,
        tx,
        range.batch_rows,
        counters,
    )
    .await;
    end_snapshot(&conn).await;
    read
}

/// The task that writes the batches it is sent into `sink`, until the sender is dropped.
fn spawn_writer(
    mut sink: ParquetSink,
) -> (
    mpsc::Sender<RecordBatch>,
    tokio::task::JoinHandle<Result<Vec<PartFile>>>,
) {
    let (tx, mut rx) = mpsc::channel::<RecordBatch>(1);
    let writer = tokio::spawn(async move {
        while let Some(batch) = rx.recv().await {
            sink.write(&batch).await?;
        }
        sink.finish().await
    });
    (tx, writer)
}

/// The files of a finished writer and the rows of its reader; the writer's error comes first,
/// as a reader whose writer failed stops early and fails for that reason only.
async fn join(
    read: Result<(u64, DecodeStats)>,
    writer: tokio::task::JoinHandle<Result<Vec<PartFile>>>,
) -> Result<(Vec<PartFile>, u64, DecodeStats)> {
    let files = writer
        .await
        .map_err(|e| Error::lake_other("parquet writer task", e))??;
    let (rows, stats) = read?;
    Ok((files, rows, stats))
}

/// Streams `select` as binary COPY, decoded into batches sent to `tx`; returns the rows read.
async fn read_batches(
    conn: &PgConnection,
    label: &str,
    select: &str,
    columns: &[ColumnMapping],
    tx: mpsc::Sender<RecordBatch>,
    batch_rows: usize,
    counters: &Counters,
) -> Result<(u64, DecodeStats)> {
    let copy = format!("COPY ({select}) TO STDOUT (FORMAT binary)");
    let mut stream = conn.copy_out(&format!("copying {label}"), &copy).await?;
    let mut decoder = CopyDecoder::new(label.to_string(), columns);
    let mut last_rows = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        decoder.push(&chunk)?;
        counters
            .bytes
            .fetch_add(chunk.len() as u64, Ordering::Relaxed);
        if decoder.batch_ready(batch_rows) {
            let rows = decoder.rows();
            counters.rows.fetch_add(rows - last_rows, Ordering::Relaxed);
            last_rows = rows;
            if let Some(b) = decoder.take_batch()? {
                if tx.send(b).await.is_err() {
                    // The writer failed; its error is the one reported.
                    return Ok((decoder.rows(), decoder.stats()));
                }
            }
        }
    }
    decoder.finish()?;
    counters
        .rows
        .fetch_add(decoder.rows() - last_rows, Ordering::Relaxed);
    if let Some(b) = decoder.take_batch()? {
        let _ = tx.send(b).await;
    }
    Ok((decoder.rows(), decoder.stats()))
}

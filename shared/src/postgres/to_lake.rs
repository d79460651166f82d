//! Postgres → Parquet in the lake: a consistent snapshot, and a SELECT streamed as binary COPY,
//! decoded into Arrow and written as the lake's Parquet. pg-copy's copies and cdc-sync's
//! snapshots both run through here.

use std::sync::atomic::{AtomicU64, Ordering};

use arrow::record_batch::RecordBatch;
use futures::StreamExt;
use tokio::sync::mpsc;

use super::{CopyDecoder, DecodeStats, PgConnection};
use crate::error::{Error, Result};
use crate::lake::{ParquetSink, PartFile};
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
    mut sink: ParquetSink,
    batch_rows: usize,
    counters: &Counters,
) -> Result<(Vec<PartFile>, u64, DecodeStats)> {
    let (tx, mut rx) = mpsc::channel::<RecordBatch>(1);
    let writer = tokio::spawn(async move {
        while let Some(batch) = rx.recv().await {
            sink.write(&batch).await?;
        }
        sink.finish().await
    });
    let read = async {
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
                        break; // the writer failed; its error is reported below
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
        Ok::<_, Error>((decoder.rows(), decoder.stats()))
    };
    let read_result = read.await;
    drop(tx);
    let files = writer
        .await
        .map_err(|e| Error::lake_other("parquet writer task", e))??;
    let (rows, stats) = read_result?;
    Ok((files, rows, stats))
}

//! The first copy of a table (or a resync): the pg-copy reader inside a REPEATABLE READ
//! transaction, Parquet in the lake, then one transaction that replaces the replica's rows.
//!
//! Rows are stamped with the slot's position read just before the snapshot (ordinal −1), so
//! every change the slot has not yet delivered counts as newer and applies on top. Changes the
//! snapshot already holds may apply again; they carry the same or older row images and the
//! stream ends on the newest one, so the replica converges to the source either way.

use std::sync::atomic::AtomicU32;
use std::sync::Arc;

use futures::StreamExt;
use object_store::path::Path;
use sluice::bigquery::merge;
use sluice::config::OnUnsupported;
use sluice::lake::parquet::SinkLimits;
use sluice::lake::ParquetSink;
use sluice::postgres::catalog::quote_ident;
use sluice::postgres::copy::DEFAULT_BATCH_ROWS;
use sluice::postgres::pgoutput::Lsn;
use sluice::postgres::{table_columns, CopyDecoder, PgConnection};
use sluice::{Error, Result};

use crate::apply::{int_param, Sink};
use crate::tables::{self, TableInfo, TableState};

/// Copies `schema.table` into its replica, replacing what the replica held; returns the
/// table and the state written for it.
pub async fn snapshot(
    conn: &PgConnection,
    sink: &Sink,
    schema: &str,
    table: &str,
    stamp: Lsn,
    on_unsupported: OnUnsupported,
    run_id: &str,
) -> Result<(TableInfo, TableState)> {
    let qualified = format!("{schema}.{table}");
    let ctx = || format!("snapshot of {qualified}");
    conn.client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
        .map_err(|e| Error::postgres(ctx(), e))?;
    let result = copy_into_lake(conn, sink, schema, table, stamp, on_unsupported).await;
    let _ = conn.client.batch_execute("COMMIT").await;
    let (info, files, rows) = result?;

    sink.ensure_replica_for_snapshot(&info).await?;
    let stamp_hex = format!("{:016X}", stamp.0);
    let staging = format!("cdcsnap_{}_{}_{stamp_hex}", sink.source, info.bq_name);
    let job = sink.job_id(run_id, &[&info.bq_name, "snapshot", &stamp_hex]);
    let uris = files
        .iter()
        .map(|f| sink.lake.gs_uri(&Path::from(f.path.as_str())))
        .collect();
    let fields = sluice::bigquery::schema::fields(&info.columns);
    let staging_ref = sink.load_staging(&staging, &fields, uris, &job).await?;
    let target = sluice::bigquery::sql::table_ref(sink.bq.project(), &sink.dataset, &info.bq_name);
    let columns = info.column_names();
    let sql = if info.keyed() {
        merge::replace_with_snapshot(&target, &staging_ref, &columns)
    } else {
        merge::replace_history_with_snapshot(&target, &staging_ref, &columns)
    };
    let params = [int_param("lsn", stamp.0 as i64)];
    sluice::retry::transient("replacing the replica with its snapshot", || {
        sink.bq.query(&sql, &params)
    })
    .await?;
    sink.bq
        .delete_table(&sink.staging_dataset, &staging)
        .await?;
    let state = TableState {
        schema: schema.to_string(),
        table: table.to_string(),
        key: info.key_names(),
        snapshot_lsn: stamp.to_string(),
        snapshot_rows: rows,
        snapshot_at: chrono::Utc::now().to_rfc3339(),
    };
    tables::write_state(&sink.lake, &sink.source, &info.bq_name, &state).await?;
    tracing::info!(table = %qualified, rows, lsn = %stamp, "snapshot loaded");
    Ok((info, state))
}

async fn copy_into_lake(
    conn: &PgConnection,
    sink: &Sink,
    schema: &str,
    table: &str,
    stamp: Lsn,
    on_unsupported: OnUnsupported,
) -> Result<(TableInfo, Vec<sluice::lake::PartFile>, u64)> {
    let qualified = format!("{schema}.{table}");
    let cat = table_columns(&conn.client, schema, table).await?;
    let info = tables::from_catalog(&cat, schema, table, on_unsupported)?;
    if !info.keyed() {
        tracing::warn!(table = %qualified, "no primary key: the replica keeps every change (append-only, with _op)");
    }
    let prefix = Path::from(format!(
        "cdc/{}/{}/snapshot-{:016X}",
        sink.source, info.bq_name, stamp.0
    ));
    sink.lake.delete_prefix(&prefix).await?;
    let list: Vec<String> = info.columns.iter().map(|c| quote_ident(&c.name)).collect();
    let copy = format!(
        "COPY (SELECT {} FROM {}.{}) TO STDOUT (FORMAT binary)",
        list.join(", "),
        quote_ident(schema),
        quote_ident(table)
    );
    let mut decoder = CopyDecoder::new(qualified.clone(), &info.columns);
    let mut sink_files = ParquetSink::new(
        sink.lake.clone(),
        prefix,
        decoder.schema(),
        SinkLimits::default(),
        Arc::new(AtomicU32::new(0)),
    );
    let ctx = || format!("snapshot of {qualified}");
    let stream = conn
        .client
        .copy_out(copy.as_str())
        .await
        .map_err(|e| Error::postgres(ctx(), e))?;
    futures::pin_mut!(stream);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Error::postgres(ctx(), e))?;
        decoder.push(&chunk)?;
        if decoder.batch_ready(DEFAULT_BATCH_ROWS) {
            if let Some(b) = decoder.take_batch()? {
                sink_files.write(&b).await?;
            }
        }
    }
    decoder.finish()?;
    if let Some(b) = decoder.take_batch()? {
        sink_files.write(&b).await?;
    }
    let files = sink_files.finish().await?;
    Ok((info, files, decoder.rows()))
}

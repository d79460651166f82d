//! The first copy of a table (or a resync): the pg-copy reader inside a REPEATABLE READ
//! transaction, Parquet in the lake, then one transaction that replaces the replica's rows.
//!
//! Rows are stamped with the slot's position read just before the snapshot (ordinal −1), so
//! every change the slot has not yet delivered counts as newer and applies on top. Changes the
//! snapshot already holds may apply again; they carry the same or older row images and the
//! stream ends on the newest one, so the replica converges to the source either way.

use std::sync::atomic::AtomicU32;
use std::sync::Arc;

use crate::sql as merge;
use object_store::path::Path;
use sluice::bigquery::run_tag;
use sluice::bigquery::sql::count_rows;
use sluice::config::OnUnsupported;
use sluice::error::ErrorKind;
use sluice::lake::parquet::SinkLimits;
use sluice::lake::ParquetSink;
use sluice::postgres::catalog::quote_ident;
use sluice::postgres::copy::DEFAULT_BATCH_ROWS;
use sluice::postgres::pgoutput::Lsn;
use sluice::postgres::to_lake::{self, Counters};
use sluice::postgres::{table_columns, PgConnection};
use sluice::{Error, Result};

use crate::failpoints::{crash_at, CrashPoint};
use crate::sink::{int_param, Sink};
use crate::tables::{self, TableInfo, TableState};

/// Copies `schema.table` into its replica, replacing what the replica held; returns the
/// table and the state written for it. The snapshot checks itself: the staging table must hold
/// every row read from Postgres before it replaces the replica, and the replica must hold them
/// after; otherwise the run fails saying so and the next run snapshots the table again.
#[allow(clippy::too_many_arguments)]
pub async fn snapshot(
    conn: &PgConnection,
    sink: &Sink,
    schema: &str,
    table: &str,
    stamp: Lsn,
    on_unsupported: OnUnsupported,
    run_id: &str,
    crash: Option<CrashPoint>,
) -> Result<(TableInfo, TableState)> {
    let qualified = format!("{schema}.{table}");
    to_lake::begin_snapshot(conn, None, &qualified).await?;
    let result = copy_into_lake(conn, sink, schema, table, stamp, on_unsupported).await;
    to_lake::end_snapshot(conn).await;
    let (info, files, rows) = result?;
    crash_at(crash, CrashPoint::SnapshotInLake)?;

    sink.ensure_replica_for_snapshot(&info).await?;
    crash_at(crash, CrashPoint::SnapshotReplicaReady)?;
    let stamp_hex = format!("{:016X}", stamp.0);
    // The run's own staging table: a killed run's load job may still be writing its own.
    let staging = format!(
        "cdcsnap_{}_{}_{stamp_hex}_{}",
        sink.source,
        info.bq_name,
        run_tag(run_id)
    );
    let job = sink.job_id(run_id, &[&info.bq_name, "snapshot", &stamp_hex]);
    let uris = files
        .iter()
        .map(|f| sink.lake.gs_uri(&Path::from(f.path.as_str())))
        .collect();
    let fields = sluice::bigquery::schema::fields(&info.columns);
    let staging_ref = sink
        .load_staging(&info.bq_name, &staging, &fields, uris, rows, &job)
        .await?;
    crash_at(crash, CrashPoint::SnapshotStaged)?;
    let target = sluice::bigquery::sql::table_ref(sink.bq.project(), &sink.dataset, &info.bq_name);
    let columns = info.column_names();
    let sql = if info.keyed() {
        merge::replace_with_snapshot(&target, &staging_ref, &columns)
    } else {
        merge::replace_history_with_snapshot(&target, &staging_ref, &columns)
    };
    let params = [int_param("lsn", stamp.0 as i64)];
    let bq = sink.bq.labelled("sluice_table", &info.bq_name);
    sluice::retry::transient("replacing the replica with its snapshot", || {
        bq.query(&sql, &params)
    })
    .await?;
    // Nothing else writes the replica before the table's state exists: it holds the snapshot.
    let replaced = bq.count(&count_rows(&target, None), &[]).await?;
    if replaced != rows {
        return Err(Error::bigquery(
            format!("snapshot of {qualified}"),
            ErrorKind::Permanent,
            format!(
                "read {rows} rows from Postgres but the replica {target} holds {replaced}; the \
                 snapshot is not recorded, so the next run takes it again"
            ),
        ));
    }
    crash_at(crash, CrashPoint::SnapshotReplaced)?;
    sink.staging.drop(&staging).await?;
    crash_at(crash, CrashPoint::SnapshotCleaned)?;
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
    let cat = table_columns(conn, schema, table).await?;
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
    let select = format!(
        "SELECT {} FROM {}.{}",
        list.join(", "),
        quote_ident(schema),
        quote_ident(table)
    );
    let files = ParquetSink::new(
        sink.lake.clone(),
        prefix,
        sluice::types::arrow_schema(&info.columns),
        SinkLimits::default(),
        Arc::new(AtomicU32::new(0)),
    );
    let (files, rows, _) = to_lake::copy_select(
        conn,
        &qualified,
        &select,
        &info.columns,
        files,
        DEFAULT_BATCH_ROWS,
        &Counters::default(),
    )
    .await?;
    Ok((info, files, rows))
}

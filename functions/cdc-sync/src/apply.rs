//! A batch applied to a source's replicas: one table's changes as Parquet in the lake, loaded
//! into a staging table, the replica's columns brought up to date, then truncate / MERGE /
//! history appends. Every step can run again with the same result, so a crash anywhere before
//! the slot advances is harmless.

use sluice::bigquery::run_tag;
use sluice::bigquery::Param;
use sluice::catalog;
use sluice::config::DeleteMode;
use sluice::Result;

use crate::changes::TableChanges;
use crate::failpoints::{crash_at, CrashPoint};
use crate::layout;
use crate::sink::{int_param, Applied, Sink};
use crate::sql::{self as merge, MergeSpec};

/// `-s<n>` for the n-th segment of a table in a batch (its columns changed mid-batch).
fn segment_suffix(segment: usize) -> String {
    if segment == 0 {
        String::new()
    } else {
        format!("-s{segment}")
    }
}

/// Writes one table's changes as `cdc/<source>/<table>/<range>[-s<segment>].parquet`;
/// returns the file and its bytes.
pub async fn stage(
    sink: &Sink,
    changes: &TableChanges,
    range: &str,
    segment: usize,
) -> Result<(object_store::path::Path, u64)> {
    let (batch, _stats) = changes.to_record_batch()?;
    let path = object_store::path::Path::from(format!(
        "cdc/{}/{}/{range}{}.parquet",
        sink.source,
        changes.info.bq_name,
        segment_suffix(segment)
    ));
    let bytes = sluice::lake::parquet::write_file(&sink.lake, &path, &batch).await?;
    Ok((path, bytes))
}

/// Stages one table's changes and applies them to its replica (and history).
pub async fn apply(
    sink: &Sink,
    changes: &TableChanges,
    range: &str,
    segment: usize,
    run_id: &str,
    crash: Option<CrashPoint>,
) -> Result<Applied> {
    let info = &changes.info;
    let bq = sink.bq.labelled("sluice_table", &info.bq_name);
    let (path, bytes) = stage(sink, changes, range, segment).await?;
    let seg = segment_suffix(segment);
    // The run's own staging table: a killed run's load job may still be writing its own.
    let staging = format!(
        "cdc_{}_{}_{}{}_{}",
        sink.source,
        info.bq_name,
        range.replace('-', "_"),
        seg.replace('-', "_"),
        run_tag(run_id)
    );
    let job = sink.job_id(run_id, &[&info.bq_name, range, &seg, "load"]);
    let staging_ref = sink
        .load_staging(
            &info.bq_name,
            &staging,
            &layout::staged_fields(info),
            vec![sink.lake.gs_uri(&path)],
            changes.len() as u64,
            &job,
        )
        .await?;
    crash_at(crash, CrashPoint::AfterLoad)?;
    let (dropped, mut applied) = sink.ensure_replica(info).await?;
    let target = sink.table(&info.bq_name);
    if let Some(t) = changes.truncate.filter(|_| info.keyed()) {
        let sql = merge::truncate_rows(&target, sink.deletes);
        let params = [
            int_param("lsn", t.lsn as i64),
            int_param("ord", t.ord),
            Param::scalar(
                "ts",
                "TIMESTAMP",
                chrono::DateTime::from_timestamp_micros(t.commit_unix_micros())
                    .map(|d| d.to_rfc3339())
                    .unwrap_or_default(),
            ),
        ];
        let params = if sink.deletes == DeleteMode::Hard {
            &params[..2]
        } else {
            &params[..]
        };
        sluice::retry::transient("truncating the replica", || bq.query(&sql, params)).await?;
    }
    let columns = info.column_names();
    if info.keyed() {
        let spec = MergeSpec {
            target: target.clone(),
            staging: staging_ref.clone(),
            key: info.key_names(),
            columns: columns.clone(),
            dropped,
            deletes: sink.deletes,
            after_truncate: changes.truncate.is_some(),
            moved_toast: changes.has_moved_toast(),
        };
        let sql = merge::merge_changes(&spec);
        let params: Vec<Param> = match changes.truncate {
            Some(t) => vec![
                int_param("after_lsn", t.lsn as i64),
                int_param("after_ord", t.ord),
            ],
            None => vec![],
        };
        sluice::retry::transient("merging changes", || bq.query(&sql, &params)).await?;
        if sink.keeps_history(info) {
            let hist = sink.table(&catalog::history_table(&info.schema, &info.name));
            let sql = merge::append_changes(&hist, &staging_ref, &columns);
            sluice::retry::transient("appending history", || bq.query(&sql, &[])).await?;
        }
    } else {
        let sql = merge::append_changes(&target, &staging_ref, &columns);
        sluice::retry::transient("appending changes", || bq.query(&sql, &[])).await?;
    }
    crash_at(crash, CrashPoint::AfterMerge)?;
    sink.staging.drop(&staging).await?;
    applied.table = info.bq_name.clone();
    applied.changes = changes.len() as u64;
    applied.bytes = bytes;
    Ok(applied)
}

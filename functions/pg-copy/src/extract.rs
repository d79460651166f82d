//! Postgres → Parquet in the lake: binary COPY over one or more ctid ranges that share one
//! snapshot, decoded into Arrow and written as zstd Parquet; the manifest is written last.

use std::sync::atomic::AtomicU32;
use std::sync::Arc;

use sluice::config::{Mode, OnUnsupported, Timeouts};
use sluice::error::ErrorKind;
use sluice::lake::parquet::SinkLimits;
use sluice::lake::{path, Lake, Manifest, ParquetSink};
use sluice::postgres::catalog::{quote_ident, TableColumns};
use sluice::postgres::to_lake::{
    begin_snapshot, copy_range_on_own_thread, end_snapshot, RangeCopy,
};
use sluice::postgres::{connect, table_columns, DecodeStats};
use sluice::secret::Secret;
use sluice::types::{map_column, BqType, ColumnMapping, MappingOptions};
use sluice::{bigquery, Error, Result};

use crate::plan::UnitPlan;

/// Knobs of the extract step.
#[derive(Debug, Clone, Copy)]
pub struct ExtractOptions {
    /// ctid ranges read at once, each on its own connection (`--parallel`); None chooses
    /// from the table's size and `cpus` (see [`range_count`]).
    pub parallel: Option<usize>,
    /// The CPUs this unit's copy may use.
    pub cpus: usize,
    /// Heap pages a range must have at least ([`PAGES_PER_RANGE`]).
    pub range_pages: i64,
    pub limits: SinkLimits,
    /// Rows per Arrow batch handed to the Parquet writer.
    pub batch_rows: usize,
}

impl Default for ExtractOptions {
    fn default() -> Self {
        ExtractOptions {
            parallel: None,
            cpus: available_cpus(),
            range_pages: PAGES_PER_RANGE,
            limits: SinkLimits::default(),
            batch_rows: sluice::postgres::copy::DEFAULT_BATCH_ROWS,
        }
    }
}

pub use sluice::postgres::to_lake::Counters;

/// The columns a table copies as, and the SQL that selects them.
pub struct TablePlan {
    pub columns: Vec<ColumnMapping>,
    pub select: String,
    pub pages: i64,
}

/// Maps the table's columns and builds its SELECT (with the date window for incremental).
pub fn table_plan(plan: &UnitPlan, cat: &TableColumns) -> Result<TablePlan> {
    let unit = &plan.unit;
    let t = &unit.config;
    for c in &t.numeric_as_string {
        if !cat.columns.iter().any(|col| &col.name == c) {
            return Err(Error::config(format!(
                "sources.{}.tables.{}.numeric_as_string: no column {c} in {}",
                unit.source, unit.table, cat.qualified
            )));
        }
    }
    let mut columns = Vec::new();
    for col in &cat.columns {
        let opts = MappingOptions {
            numeric_as_string: t.numeric_as_string.contains(&col.name),
        };
        match map_column(&cat.qualified, &col.name, &col.ty, col.not_null, opts) {
            Ok(m) => columns.push(m),
            Err(e @ Error::UnsupportedType { .. }) if t.on_unsupported == OnUnsupported::Skip => {
                tracing::warn!(table = %cat.qualified, column = %col.name, error = %e, "column skipped");
            }
            Err(e) => return Err(e),
        }
    }
    if columns.is_empty() {
        return Err(Error::config(format!(
            "{}: no column left to copy",
            cat.qualified
        )));
    }
    let list: Vec<String> = columns.iter().map(|c| quote_ident(&c.name)).collect();
    let mut select = format!(
        "SELECT {} FROM {}.{}",
        list.join(", "),
        quote_ident(&unit.config.schema),
        quote_ident(&unit.table)
    );
    if t.mode == Mode::Incremental {
        let wm = t.watermark_column.as_deref().unwrap_or_default();
        let col = columns.iter().find(|c| c.name == wm).ok_or_else(|| {
            Error::config(format!(
                "sources.{}.tables.{}.watermark_column: no column {wm} in {}",
                unit.source, unit.table, cat.qualified
            ))
        })?;
        if !matches!(
            col.bq_type,
            BqType::Date | BqType::Datetime | BqType::Timestamp
        ) || col.repeated
        {
            return Err(Error::config(format!(
                "sources.{}.tables.{}.watermark_column: {wm} must be a date, timestamp or timestamptz column",
                unit.source, unit.table
            )));
        }
        // The session runs in UTC, so the window is the UTC day, as BigQuery's DATE() of a TIMESTAMP.
        let ds = &plan.ds;
        select.push_str(&format!(
            " WHERE {w} >= DATE '{ds}' AND {w} < DATE '{ds}' + 1",
            w = quote_ident(wm)
        ));
    }
    Ok(TablePlan {
        columns,
        select,
        pages: cat.pages,
    })
}

/// Heap pages (8 KiB) a range must have at least: below 64 MB a second connection costs more
/// than it gives.
pub const PAGES_PER_RANGE: i64 = 8192;
/// Ranges chosen without `--parallel`: more connections to the source than this is a load a
/// team would not expect from a copy job.
pub const MAX_AUTO_RANGES: usize = 4;

/// The CPUs this process may use: `available_parallelism` follows the affinity mask and the
/// cgroup's CPU quota (Cloud Run's CPU limit, a container's `--cpus`), not the host's cores.
pub fn available_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// How many ranges a table of `pages` is read over with `--parallel requested` (None: the
/// default) when the copy may use `cpus` CPUs and a range has at least `range_pages`. Each range costs a reading thread and an
/// encoding task on the client, and a backend on the server: measured on two cores shared
/// with the server, two ranges were 1.3 times as fast as one, and ranges beyond the CPUs only
/// add switching. So never more than the CPUs, nor than one range per `range_pages`, nor
/// (unasked) more than [`MAX_AUTO_RANGES`]; one range on one CPU.
pub fn range_count(requested: Option<usize>, pages: i64, cpus: usize, range_pages: i64) -> usize {
    let by_size = (pages / range_pages.max(1)).clamp(1, i64::from(u16::MAX)) as usize;
    let cap = cpus.max(1).min(by_size);
    match requested {
        Some(n) => n.clamp(1, cap),
        None => cap.min(MAX_AUTO_RANGES),
    }
}

/// Splits `pages` heap pages into `n` ctid ranges: `[start, end)` pages, the last one open.
pub fn ctid_ranges(pages: i64, n: usize) -> Vec<(i64, Option<i64>)> {
    let n = n.max(1) as i64;
    if n == 1 || pages < n * 8 {
        return vec![(0, None)];
    }
    (0..n)
        .map(|i| {
            let start = pages * i / n;
            let end = (i + 1 < n).then(|| pages * (i + 1) / n);
            (start, end)
        })
        .collect()
}

fn range_predicate(range: (i64, Option<i64>)) -> Option<String> {
    match range {
        (0, None) => None,
        (s, None) => Some(format!("ctid >= '({s},0)'::tid")),
        (s, Some(e)) => Some(format!("ctid >= '({s},0)'::tid AND ctid < '({e},0)'::tid")),
    }
}

/// Adds a range predicate to a SELECT that may already have a WHERE.
fn with_range(select: &str, range: (i64, Option<i64>)) -> String {
    match range_predicate(range) {
        None => select.to_string(),
        Some(p) if select.contains(" WHERE ") => format!("{select} AND {p}"),
        Some(p) => format!("{select} WHERE {p}"),
    }
}

/// Copies one unit from Postgres into the lake and commits it with a manifest.
#[allow(clippy::too_many_arguments)]
pub async fn extract(
    lake: &Lake,
    dsn: &Secret,
    timeouts: &Timeouts,
    unit_plan: &UnitPlan,
    run_id: &str,
    opts: ExtractOptions,
    counters: Arc<Counters>,
) -> Result<Manifest> {
    let unit = &unit_plan.unit;
    let label = format!("{}.{}", unit.source, unit.table);
    let leader = connect(&unit.source, dsn, "sluice-pg-copy", timeouts).await?;
    let cat = table_columns(&leader, &unit.config.schema, &unit.table).await?;
    let plan = table_plan(unit_plan, &cat)?;
    let partition = &unit_plan.partition;
    // Uncommit the partition before touching its files: no manifest, no half-loadable partition.
    lake.delete_prefix(partition).await?;

    let n = range_count(opts.parallel, plan.pages, opts.cpus, opts.range_pages);
    if let Some(asked) = opts.parallel.filter(|asked| *asked > n) {
        tracing::info!(
            table = %label, asked, ranges = n, cpus = opts.cpus, pages = plan.pages,
            range_pages = opts.range_pages,
            "reading over fewer ranges than --parallel asked (at most one per CPU and one per range_pages heap pages)"
        );
    }
    let ranges = ctid_ranges(plan.pages, n);
    // Each range is read on a connection and a thread of its own (see
    // `copy_range_on_own_thread`). Several ranges share one snapshot, which the leader exports
    // and holds open; a single range opens its own.
    let snapshot: Option<String> = if ranges.len() > 1 {
        begin_snapshot(&leader, None, &label).await?;
        let row = leader
            .query_one(
                &format!("exporting the snapshot of {label}"),
                "SELECT pg_export_snapshot()",
                &[],
            )
            .await?;
        Some(row.get(0))
    } else {
        None
    };
    let schema = sluice::types::arrow_schema(&plan.columns);
    let next_part = Arc::new(AtomicU32::new(0));
    let tasks = ranges.iter().map(|range| {
        let sink = ParquetSink::new(
            lake.clone(),
            partition.clone(),
            schema.clone(),
            opts.limits,
            next_part.clone(),
        );
        let copy = RangeCopy {
            source: unit.source.clone(),
            dsn: dsn.clone(),
            app: "sluice-pg-copy",
            timeouts: *timeouts,
            snapshot: snapshot.clone(),
            label: label.clone(),
            select: with_range(&plan.select, *range),
            columns: plan.columns.clone(),
            batch_rows: opts.batch_rows,
        };
        copy_range_on_own_thread(copy, sink, counters.clone())
    });
    let results = futures::future::try_join_all(tasks).await;
    if snapshot.is_some() {
        end_snapshot(&leader).await;
    }
    let results = results?;
    let mut files = Vec::new();
    let mut rows = 0;
    let mut stats = DecodeStats::default();
    for (f, r, s) in results {
        files.extend(f);
        rows += r;
        stats.add(&s);
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let written: u64 = files.iter().map(|f| f.rows).sum();
    if written != rows {
        return Err(Error::lake_other(
            format!("writing {label}"),
            std::io::Error::other(format!("{rows} rows read but {written} written")),
        ));
    }
    let manifest = Manifest {
        run_id: run_id.to_string(),
        source: unit.source.clone(),
        table: unit.table.clone(),
        ds: unit_plan.ds.clone(),
        bytes: files.iter().map(|f| f.bytes).sum(),
        rows,
        files,
        bigquery_fields: bigquery::schema::fields(&plan.columns),
        decode_stats: serde_json::to_value(stats).unwrap_or_default(),
        written_at: chrono::Utc::now().to_rfc3339(),
    };
    let body =
        serde_json::to_vec_pretty(&manifest).map_err(|e| Error::lake_other("manifest", e))?;
    lake.put(&path::manifest(partition), body.into()).await?;
    Ok(manifest)
}

/// Reads the manifest of a unit's partition for `--from-lake`.
pub async fn read_manifest(lake: &Lake, plan: &UnitPlan) -> Result<Manifest> {
    let mpath = path::manifest(&plan.partition);
    let Some(bytes) = lake.get_opt(&mpath).await? else {
        return Err(Error::Lake {
            context: format!("--from-lake {}", plan.unit.label()),
            kind: ErrorKind::Permanent,
            source: Box::new(std::io::Error::other(format!(
                "no complete copy in the lake ({} is missing); run without --from-lake first",
                lake.gs_uri(&mpath)
            ))),
        });
    };
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::lake_other(format!("reading {}", lake.gs_uri(&mpath)), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_count_follows_cpus_and_size() {
        let big = 100 * PAGES_PER_RANGE;
        assert_eq!(
            range_count(None, big, 1, PAGES_PER_RANGE),
            1,
            "one CPU: one range"
        );
        assert_eq!(range_count(None, big, 2, PAGES_PER_RANGE), 2);
        assert_eq!(range_count(None, big, 64, PAGES_PER_RANGE), MAX_AUTO_RANGES);
        assert_eq!(
            range_count(Some(8), big, 64, PAGES_PER_RANGE),
            8,
            "asked for: more than the default"
        );
        assert_eq!(
            range_count(Some(4), big, 2, PAGES_PER_RANGE),
            2,
            "never more than the CPUs"
        );
        assert_eq!(range_count(Some(0), big, 2, PAGES_PER_RANGE), 1);
        assert_eq!(
            range_count(None, PAGES_PER_RANGE - 1, 8, PAGES_PER_RANGE),
            1,
            "small tables: one"
        );
        assert_eq!(
            range_count(Some(4), 3 * PAGES_PER_RANGE, 8, PAGES_PER_RANGE),
            3
        );
        assert_eq!(range_count(None, 0, 0, PAGES_PER_RANGE), 1);
        assert_eq!(
            range_count(Some(3), 800, 3, 1),
            3,
            "smaller ranges when asked to"
        );
    }

    #[test]
    fn ranges_cover_every_page_once() {
        assert_eq!(ctid_ranges(1000, 1), vec![(0, None)]);
        assert_eq!(
            ctid_ranges(10, 4),
            vec![(0, None)],
            "small tables are not split"
        );
        let r = ctid_ranges(1000, 3);
        assert_eq!(r, vec![(0, Some(333)), (333, Some(666)), (666, None)]);
    }

    #[test]
    fn range_predicates_compose_with_windows() {
        let s = "SELECT a FROM t WHERE w >= DATE '2024-01-01'";
        assert_eq!(with_range(s, (0, None)), s);
        assert_eq!(
            with_range(s, (5, Some(9))),
            "SELECT a FROM t WHERE w >= DATE '2024-01-01' AND ctid >= '(5,0)'::tid AND ctid < '(9,0)'::tid"
        );
        assert_eq!(
            with_range("SELECT a FROM t", (9, None)),
            "SELECT a FROM t WHERE ctid >= '(9,0)'::tid"
        );
    }
}

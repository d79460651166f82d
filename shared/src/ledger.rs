//! The run ledger: one row in `ops.runs` for every unit of work a worker does.
//!
//! Rows are streamed (insertAll, insertId = run id + unit) and never updated, so the table is
//! safe to query while workers write, and a retried write does not duplicate a row.
//!
//! **When a row cannot be written** (after the client's retries of transient errors), the unit
//! it records fails, whatever the worker: readers trust the ledger (mart-build waits on it for
//! fresh inputs, the monitor alerts on missed runs), and every unit can be rerun
//! idempotently. So pg-copy fails the unit, cdc-sync fails the run before the slot advances,
//! and mart-build fails the mart; each exits non-zero and its rerun writes the row.
//! log-ingest, a service, cannot rerun a window: it keeps the counts and writes them with the
//! next window's row.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::{json, Value};

use crate::bigquery::{BigQuery, Param};
use crate::error::Result;

pub const RUNS_TABLE: &str = crate::ops::RUNS.name;

/// The workers, as the ledger's `worker` column names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Worker {
    PgCopy,
    CdcSync,
    LogIngest,
    MartBuild,
    Monitor,
}

impl Worker {
    /// Every worker, in the order the pipeline's data flows.
    pub const ALL: [Worker; 5] = [
        Worker::PgCopy,
        Worker::CdcSync,
        Worker::LogIngest,
        Worker::MartBuild,
        Worker::Monitor,
    ];

    /// The worker's name: its binary, its ledger rows' `worker`, its Cloud Run jobs' prefix.
    pub fn as_str(self) -> &'static str {
        match self {
            Worker::PgCopy => "pg-copy",
            Worker::CdcSync => "cdc-sync",
            Worker::LogIngest => "log-ingest",
            Worker::MartBuild => "mart-build",
            Worker::Monitor => "monitor",
        }
    }
}

impl std::fmt::Display for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A new run id, the one format of every worker: `<UTC start, to the second>-<8 random hex>`,
/// so ids sort by start and the random end tells runs of one second apart.
pub fn new_run_id() -> String {
    format!(
        "{}-{}",
        Utc::now().format("%Y%m%dT%H%M%S"),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

/// How a unit of work ended.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Success,
    Failed,
    Skipped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Success => "success",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
        }
    }
}

/// One ledger row.
#[derive(Debug, Clone)]
pub struct RunRecord {
    pub run_id: String,
    pub worker: Worker,
    pub target: String,
    pub source: Option<String>,
    pub table_name: Option<String>,
    pub logical_date: Option<NaiveDate>,
    pub lsn_range: Option<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub status: Status,
    pub rows_in: u64,
    pub rows_loaded: u64,
    pub rows_dead_lettered: u64,
    pub bytes: u64,
    pub error: Option<String>,
    /// Anything else worth keeping (counts of adjusted values, files, job ids).
    pub details: Value,
}

impl RunRecord {
    /// A row of a unit of `worker`'s run `run_id` on `target` that started at `started` and
    /// ended now, successfully, having counted nothing yet.
    pub fn started(
        run_id: &str,
        worker: Worker,
        target: &str,
        started: DateTime<Utc>,
    ) -> RunRecord {
        RunRecord {
            run_id: run_id.to_string(),
            worker,
            target: target.to_string(),
            source: None,
            table_name: None,
            logical_date: None,
            lsn_range: None,
            started_at: started,
            finished_at: Utc::now(),
            status: Status::Success,
            rows_in: 0,
            rows_loaded: 0,
            rows_dead_lettered: 0,
            bytes: 0,
            error: None,
            details: Value::Null,
        }
    }

    /// insertAll's id for the row: one per run and unit.
    fn insert_id(&self) -> String {
        format!(
            "{}:{}:{}:{}:{}",
            self.run_id,
            self.table_name.as_deref().unwrap_or(""),
            self.logical_date.map(|d| d.to_string()).unwrap_or_default(),
            self.lsn_range.as_deref().unwrap_or(""),
            self.started_at.timestamp_micros()
        )
    }

    /// The row as insertAll takes it (JSON columns as JSON text).
    fn row(&self) -> Value {
        json!({
            "run_id": self.run_id,
            "worker": self.worker.as_str(),
            "target": self.target,
            "source": self.source,
            "table_name": self.table_name,
            "logical_date": self.logical_date.map(|d| d.to_string()),
            "lsn_range": self.lsn_range,
            "started_at": crate::time::bigquery_timestamp(self.started_at),
            "finished_at": crate::time::bigquery_timestamp(self.finished_at),
            "status": self.status.as_str(),
            "rows_in": self.rows_in,
            "rows_loaded": self.rows_loaded,
            "rows_dead_lettered": self.rows_dead_lettered,
            "bytes": self.bytes,
            "error": self.error,
            "details": self.details.to_string(),
        })
    }
}

/// Writes ledger rows to `<ops dataset>.runs`.
#[derive(Debug, Clone)]
pub struct Ledger {
    bq: BigQuery,
    dataset: String,
}

impl Ledger {
    /// Creates the ops dataset and the runs table if missing.
    pub async fn open(bq: BigQuery, dataset: &str) -> Result<Ledger> {
        bq.ensure_dataset(dataset, None).await?;
        crate::ops::RUNS.ensure(&bq, dataset).await?;
        Ok(Ledger {
            bq,
            dataset: dataset.to_string(),
        })
    }

    /// Writes one row (see the module's policy for when it cannot).
    pub async fn record(&self, r: &RunRecord) -> Result<()> {
        self.bq
            .insert_all(&self.dataset, RUNS_TABLE, &[(r.insert_id(), r.row())])
            .await
    }

    /// A recorder of one run's rows.
    pub fn recorder(&self, run_id: &str, worker: Worker, target: &str) -> Recorder {
        Recorder {
            ledger: self.clone(),
            run_id: run_id.to_string(),
            worker,
            target: target.to_string(),
        }
    }
}

/// Writes the rows of one run: its id, worker and target on every row.
#[derive(Debug, Clone)]
pub struct Recorder {
    ledger: Ledger,
    pub run_id: String,
    pub worker: Worker,
    pub target: String,
}

impl Recorder {
    /// A row of a unit that started at `started` and ended now, successfully, having counted
    /// nothing yet: callers fill in what it did.
    pub fn row(&self, started: DateTime<Utc>) -> RunRecord {
        RunRecord::started(&self.run_id, self.worker, &self.target, started)
    }

    /// Writes a row; an error means the unit it records must fail (the module's policy).
    pub async fn record(&self, r: &RunRecord) -> Result<()> {
        self.ledger.record(r).await
    }
}

/// What the ledger must hold for a table to be fresh for a logical date: the one reading of
/// `ops.runs` the readers (mart-build's waits, the monitor) rely on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fresh {
    /// pg-copy copied the table for the date; a `full` copy of that date or later covers it.
    Copied {
        source: String,
        table: String,
        full: bool,
    },
    /// cdc-sync ran for the source after the date ended.
    Replicated { source: String },
    /// mart-build built the mart: that date's partition, that date or later for a table, any
    /// build of a view.
    Built {
        dataset: String,
        name: String,
        dates: Built,
    },
}

/// Which builds of a mart count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Built {
    ThatDay,
    ThatDayOrLater,
    Any,
}

impl Fresh {
    /// `SELECT COUNT(*) AS n` of the successful rows of `runs` (a quoted table) that make the
    /// input fresh for `ds`, and its parameters; fresh when `n` > 0.
    pub fn query(&self, runs: &str, ds: NaiveDate) -> (String, Vec<Param>) {
        let text = |n: &str, v: &str| Param::scalar(n, "STRING", v);
        let (worker, condition, mut params) = match self {
            Fresh::Copied {
                source,
                table,
                full,
            } => (
                Worker::PgCopy,
                format!(
                    "source = @source AND table_name = @table AND logical_date {} @ds",
                    if *full { ">=" } else { "=" }
                ),
                vec![text("source", source), text("table", table)],
            ),
            Fresh::Replicated { source } => (
                Worker::CdcSync,
                "source = @source AND started_at >= TIMESTAMP(DATE_ADD(@ds, INTERVAL 1 DAY))"
                    .into(),
                vec![text("source", source)],
            ),
            Fresh::Built {
                dataset,
                name,
                dates,
            } => (
                Worker::MartBuild,
                format!(
                    "source = @source AND table_name = @table AND {}",
                    match dates {
                        Built::ThatDay => "logical_date = @ds",
                        Built::ThatDayOrLater => "logical_date >= @ds",
                        Built::Any => "TRUE",
                    }
                ),
                vec![text("source", dataset), text("table", name)],
            ),
        };
        if condition.contains("@ds") {
            params.push(Param::date("ds", &ds.to_string()));
        }
        params.push(text("worker", worker.as_str()));
        (
            format!(
                "SELECT COUNT(*) AS n FROM {runs} WHERE status = 'success' AND worker = @worker AND {condition}"
            ),
            params,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freshness_reads_the_ledger_by_worker_and_date() {
        let ds = NaiveDate::from_ymd_opt(2024, 5, 1).unwrap();
        let (sql, params) = Fresh::Copied {
            source: "shop".into(),
            table: "orders".into(),
            full: false,
        }
        .query("`p.ops.runs`", ds);
        assert_eq!(
            sql,
            "SELECT COUNT(*) AS n FROM `p.ops.runs` WHERE status = 'success' AND worker = @worker AND source = @source AND table_name = @table AND logical_date = @ds"
        );
        let values: Vec<(&str, &str)> = params
            .iter()
            .map(|p| (p.name.as_str(), p.value.as_str()))
            .collect();
        assert_eq!(
            values,
            [
                ("source", "shop"),
                ("table", "orders"),
                ("ds", "2024-05-01"),
                ("worker", "pg-copy")
            ]
        );
        let (sql, params) = Fresh::Replicated {
            source: "shop".into(),
        }
        .query("`r`", ds);
        assert!(sql.ends_with("started_at >= TIMESTAMP(DATE_ADD(@ds, INTERVAL 1 DAY))"));
        assert_eq!(params.len(), 3);
        let (sql, params) = Fresh::Built {
            dataset: "m".into(),
            name: "v".into(),
            dates: Built::Any,
        }
        .query("`r`", ds);
        assert!(sql.ends_with("table_name = @table AND TRUE"), "{sql}");
        assert!(params.iter().all(|p| p.name != "ds"));
        assert_eq!(params.last().unwrap().value, "mart-build");
    }

    #[test]
    fn run_ids_sort_by_start_and_differ() {
        let (a, b) = (new_run_id(), new_run_id());
        assert_ne!(a, b);
        assert_eq!(a.len(), "20261202T125638-14c42fda".len());
        assert_eq!(&a[8..9], "T");
    }

    #[test]
    fn rows_carry_typed_values_as_bigquery_takes_them() {
        let t = DateTime::parse_from_rfc3339("2026-12-02T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let r = RunRecord {
            logical_date: NaiveDate::from_ymd_opt(2026, 12, 1),
            started_at: t,
            finished_at: t,
            details: json!({"files": 2}),
            table_name: Some("daily".into()),
            status: Status::Skipped,
            ..RunRecord::started("r", Worker::MartBuild, "local", t)
        };
        let row = r.row();
        assert_eq!(row["worker"], "mart-build");
        assert_eq!(row["status"], "skipped");
        assert_eq!(row["logical_date"], "2026-12-01");
        assert_eq!(row["started_at"], "2026-12-02T10:00:00.000000Z");
        assert_eq!(row["details"], r#"{"files":2}"#);
        assert_eq!(
            r.insert_id(),
            format!("r:daily:2026-12-01::{}", t.timestamp_micros())
        );
    }
}

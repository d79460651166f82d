//! What a check reads from the target's ops tables: the last ledger row of every unit, when
//! each unit last started and succeeded, the newest DQ results, the last hour's events and
//! dead letters, and when each unit was first declared. The queries are fixed text with
//! parameters; `Observed::read` runs each once.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sluice::bigquery::{BigQuery, Param, QueryRows};
use sluice::config::{AlertsConfig, Pipeline, Target};
use sluice::ledger::Worker;
use sluice::Result;

/// The last ledger row of one unit (worker, source, table, logical date).
#[derive(Debug, Clone, PartialEq)]
pub struct LastRun {
    pub run_id: String,
    pub worker: Worker,
    pub source: Option<String>,
    pub table: Option<String>,
    pub logical_date: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub status: String,
    pub error: Option<String>,
    pub rows_in: i64,
    pub rows_loaded: i64,
    pub rows_dead_lettered: i64,
    pub details: Value,
}

impl LastRun {
    /// What the row is about: `source.table`, the event table, the source, or the worker.
    pub fn subject(&self) -> String {
        match (&self.source, &self.table) {
            (Some(s), Some(t)) if self.worker != Worker::LogIngest => format!("{s}.{t}"),
            (_, Some(t)) => t.clone(),
            (Some(s), None) => s.clone(),
            (None, None) => self.worker.to_string(),
        }
    }

    /// The row's counts, as a finding's facts.
    pub fn count_facts(&self) -> Vec<(String, String)> {
        vec![
            ("rows in".to_string(), self.rows_in.to_string()),
            ("loaded".to_string(), self.rows_loaded.to_string()),
            (
                "dead-lettered".to_string(),
                self.rows_dead_lettered.to_string(),
            ),
        ]
    }
}

/// When a unit (worker, source, table) last started and last succeeded.
#[derive(Debug, Clone, PartialEq)]
pub struct UnitTimes {
    pub worker: Worker,
    pub source: Option<String>,
    pub table: Option<String>,
    pub last_started: Option<DateTime<Utc>>,
    pub last_success: Option<DateTime<Utc>>,
}

/// The newest result of one check of one mart and date.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DqRow {
    pub run_id: String,
    pub mart: String,
    pub ds: String,
    pub check_name: String,
    pub kind: String,
    pub value: Option<f64>,
    /// The rows the value was counted over, when the check counts rows.
    pub rows: Option<i64>,
    pub threshold: Option<f64>,
    pub passed: bool,
}

/// Events and dead letters of the last hour, per event table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventCounts {
    pub table: String,
    pub rows_in: i64,
    pub dead_lettered: i64,
}

/// Everything the check reads.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub last_runs: Vec<LastRun>,
    pub units: Vec<UnitTimes>,
    pub dq: Vec<DqRow>,
    pub events: Vec<EventCounts>,
    /// When the monitor first saw each declared unit in `ops.declared_tables`: (producer,
    /// source, unit table, first declared_at). A schedule that fired before then, or an SLA
    /// shorter than the time since, is not held against a table that was just added.
    pub declared_since: Vec<(UnitKey, DateTime<Utc>)>,
}

/// A unit as the ledger names it: (worker, source, table_name).
pub type UnitKey = (Worker, Option<String>, Option<String>);

impl Observed {
    /// When the unit `worker source.table` (any table when None) was first declared; None
    /// when the declaration history does not know it.
    pub fn since(
        &self,
        worker: Worker,
        source: Option<&str>,
        table: Option<&str>,
    ) -> Option<DateTime<Utc>> {
        self.declared_since
            .iter()
            .filter(|((w, s, t), _)| {
                *w == worker
                    && (source.is_none() || s.as_deref() == source)
                    && (table.is_none() || t.as_deref() == table)
            })
            .map(|r| r.1)
            .min()
    }

    /// The last rows of the pipeline's workers. The monitor's own rows (one per check) are
    /// not findings': a check that failed says so by its exit, and the next one cannot see
    /// its own absence.
    pub fn pipeline_runs(&self) -> impl Iterator<Item = &LastRun> {
        self.last_runs
            .iter()
            .filter(|r| r.worker != Worker::Monitor)
    }
}

/// How far back the unit times look (a monthly schedule's last fire is within it).
pub const HISTORY_DAYS: i64 = 35;

fn last_runs_sql(runs: &str) -> String {
    format!(
        "SELECT run_id, worker, source, table_name, CAST(logical_date AS STRING) AS logical_date, started_at, status, error, rows_in, rows_loaded, rows_dead_lettered, TO_JSON_STRING(details) AS details\n\
         FROM {runs} WHERE started_at >= @since AND started_at <= @now\n\
         QUALIFY ROW_NUMBER() OVER (PARTITION BY worker, IFNULL(source, ''), IFNULL(table_name, ''), IFNULL(CAST(logical_date AS STRING), '') ORDER BY started_at DESC, finished_at DESC) = 1"
    )
}

/// When each unit last started and last succeeded: what freshness and missed runs count.
/// cdc-sync's `status` checks (`details.kind = "verify"`) load nothing, so they are left out.
fn unit_times_sql(runs: &str) -> String {
    let log_ingest = Worker::LogIngest.as_str();
    format!(
        "SELECT worker, source, table_name, MAX(started_at) AS last_started,\n\
         MAX(IF(status = 'success' AND (worker != '{log_ingest}' OR rows_loaded > 0), finished_at, NULL)) AS last_success\n\
         FROM {runs} WHERE started_at >= @history AND started_at <= @now AND IFNULL(JSON_VALUE(details, '$.kind'), '') != 'verify'\n\
         GROUP BY worker, source, table_name"
    )
}

fn dq_sql(dq: &str) -> String {
    format!(
        "SELECT run_id, mart, CAST(ds AS STRING) AS ds, check_name, kind, value, `rows`, threshold, passed\n\
         FROM {dq} WHERE recorded_at >= @since AND recorded_at <= @now\n\
         QUALIFY ROW_NUMBER() OVER (PARTITION BY mart, check_name, ds ORDER BY recorded_at DESC) = 1"
    )
}

fn declared_since_sql(declared: &str) -> String {
    format!("SELECT producer, source, unit_table, MIN(declared_at) AS first FROM {declared} WHERE declared_at <= @now GROUP BY producer, source, unit_table")
}

fn events_sql(runs: &str) -> String {
    let log_ingest = Worker::LogIngest.as_str();
    format!(
        "SELECT table_name, SUM(rows_in) AS rows_in, SUM(rows_dead_lettered) AS dead_lettered\n\
         FROM {runs} WHERE worker = '{log_ingest}' AND started_at >= @hour_ago AND started_at <= @now GROUP BY table_name"
    )
}

/// A `TO_JSON_STRING(column)` cell as JSON; that of a JSON column may come back as a JSON
/// string of JSON, which is unwrapped. Null when absent or not JSON.
pub fn json_cell(s: Option<&str>) -> Value {
    match s.and_then(|s| serde_json::from_str::<Value>(s).ok()) {
        Some(Value::String(s)) => serde_json::from_str(&s).unwrap_or(Value::Null),
        Some(v) => v,
        None => Value::Null,
    }
}

/// A TIMESTAMP cell (seconds since the epoch as the REST API gives it, or RFC 3339).
pub fn ts(s: Option<&str>) -> Option<DateTime<Utc>> {
    let s = s?;
    if let Ok(f) = s.parse::<f64>() {
        return DateTime::from_timestamp_micros((f * 1e6).round() as i64);
    }
    DateTime::parse_from_rfc3339(s).ok().map(|d| d.to_utc())
}

fn int(s: Option<&str>) -> i64 {
    s.and_then(|s| s.parse().ok()).unwrap_or(0)
}

fn text(s: Option<&str>) -> Option<String> {
    s.map(str::to_string)
}

/// A `worker` cell; None for a name no sluice worker has (such rows are not the pipeline's).
fn worker(s: Option<&str>) -> Option<Worker> {
    let s = s.unwrap_or_default();
    Worker::ALL.into_iter().find(|w| w.as_str() == s)
}

/// Each row of a result through `f`, which reads cells by column name.
pub fn rows<T>(
    q: &QueryRows,
    f: impl for<'a> Fn(&'a dyn Fn(&str) -> Option<&'a str>) -> T,
) -> Vec<T> {
    (0..q.rows.len()).map(|i| f(&|c| q.get(i, c))).collect()
}

impl Observed {
    /// Reads the ledger and the DQ results of the target's ops dataset as of `now`.
    pub async fn read(
        bq: &BigQuery,
        p: &Pipeline,
        t: &Target,
        alerts: &AlertsConfig,
        now: DateTime<Utc>,
    ) -> Result<Observed> {
        let ops = t.dataset(&p.bigquery.ops_dataset);
        let table = |n: &str| sluice::bigquery::sql::table_ref(bq.project(), &ops, n);
        let (runs, dq) = (
            table(sluice::ops::RUNS.name),
            table(sluice::ops::DQ_RESULTS.name),
        );
        let at =
            |d: DateTime<Utc>| Param::scalar("x", "TIMESTAMP", sluice::time::bigquery_timestamp(d));
        let named = |name: &str, d: DateTime<Utc>| Param {
            name: name.into(),
            ..at(d)
        };
        let since = named(
            "since",
            now - chrono::Duration::from_std(alerts.lookback).unwrap_or_default(),
        );
        let history = named("history", now - chrono::Duration::days(HISTORY_DAYS));
        let hour_ago = named("hour_ago", now - chrono::Duration::hours(1));
        // Rows after `now` are not seen: `--now` replays what a check saw then.
        let upto = named("now", now);
        let q = bq
            .query(&last_runs_sql(&runs), &[since.clone(), upto.clone()])
            .await?;
        let last_runs = rows(&q, |g| {
            Some(LastRun {
                run_id: g("run_id").unwrap_or_default().to_string(),
                worker: worker(g("worker"))?,
                source: text(g("source")),
                table: text(g("table_name")),
                logical_date: text(g("logical_date")),
                started_at: ts(g("started_at")),
                status: g("status").unwrap_or_default().to_string(),
                error: text(g("error")),
                rows_in: int(g("rows_in")),
                rows_loaded: int(g("rows_loaded")),
                rows_dead_lettered: int(g("rows_dead_lettered")),
                details: json_cell(g("details")),
            })
        });
        let q = bq
            .query(&unit_times_sql(&runs), &[history, upto.clone()])
            .await?;
        let units = rows(&q, |g| {
            Some(UnitTimes {
                worker: worker(g("worker"))?,
                source: text(g("source")),
                table: text(g("table_name")),
                last_started: ts(g("last_started")),
                last_success: ts(g("last_success")),
            })
        });
        let dq = match bq.table_schema(&ops, sluice::ops::DQ_RESULTS.name).await? {
            None => vec![],
            Some(_) => {
                let q = bq.query(&dq_sql(&dq), &[since, upto.clone()]).await?;
                rows(&q, dq_row)
            }
        };
        let q = bq
            .query(&events_sql(&runs), &[hour_ago, upto.clone()])
            .await?;
        let events = rows(&q, |g| EventCounts {
            table: g("table_name").unwrap_or_default().to_string(),
            rows_in: int(g("rows_in")),
            dead_lettered: int(g("dead_lettered")),
        });
        let q = bq
            .query(
                &declared_since_sql(&table(sluice::ops::DECLARED_TABLES.name)),
                &[upto],
            )
            .await?;
        let declared_since = rows(&q, |g| {
            Some((
                (
                    worker(g("producer"))?,
                    text(g("source")),
                    text(g("unit_table")),
                ),
                ts(g("first"))?,
            ))
        });
        Ok(Observed {
            last_runs: last_runs.into_iter().flatten().collect(),
            units: units.into_iter().flatten().collect(),
            dq,
            events,
            declared_since: declared_since.into_iter().flatten().collect(),
        })
    }
}

/// A row of `dq_sql`.
fn dq_row<'a>(g: &'a dyn Fn(&str) -> Option<&'a str>) -> DqRow {
    DqRow {
        run_id: g("run_id").unwrap_or_default().to_string(),
        mart: g("mart").unwrap_or_default().to_string(),
        ds: g("ds").unwrap_or_default().to_string(),
        check_name: g("check_name").unwrap_or_default().to_string(),
        kind: g("kind").unwrap_or_default().to_string(),
        value: g("value").and_then(|v| v.parse().ok()),
        rows: g("rows").and_then(|v| v.parse().ok()),
        threshold: g("threshold").and_then(|v| v.parse().ok()),
        passed: g("passed") == Some("true"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queries_name_workers_as_the_ledger_does() {
        assert_eq!(
            unit_times_sql("`p.ops.runs`"),
            "SELECT worker, source, table_name, MAX(started_at) AS last_started,\n\
             MAX(IF(status = 'success' AND (worker != 'log-ingest' OR rows_loaded > 0), finished_at, NULL)) AS last_success\n\
             FROM `p.ops.runs` WHERE started_at >= @history AND started_at <= @now AND IFNULL(JSON_VALUE(details, '$.kind'), '') != 'verify'\n\
             GROUP BY worker, source, table_name"
        );
        assert_eq!(
            events_sql("`p.ops.runs`"),
            "SELECT table_name, SUM(rows_in) AS rows_in, SUM(rows_dead_lettered) AS dead_lettered\n\
             FROM `p.ops.runs` WHERE worker = 'log-ingest' AND started_at >= @hour_ago AND started_at <= @now GROUP BY table_name"
        );
        assert_eq!(worker(Some("mart-build")), Some(Worker::MartBuild));
        assert_eq!(worker(Some("monitor")), Some(Worker::Monitor));
        assert_eq!(worker(Some("someone-else")), None);
        assert_eq!(worker(None), None);
    }

    #[test]
    fn cells_read_as_bigquery_returns_them() {
        assert_eq!(
            ts(Some("1764763200.0")),
            DateTime::parse_from_rfc3339("2025-12-03T12:00:00Z")
                .ok()
                .map(|d| d.to_utc())
        );
        assert_eq!(
            ts(Some("2026-12-03T12:00:00.000000Z")).map(|t| t.to_rfc3339()),
            Some("2026-12-03T12:00:00+00:00".to_string())
        );
        assert_eq!(
            json_cell(Some(r#""{\"a\":1}""#)),
            serde_json::json!({"a": 1})
        );
        assert_eq!(json_cell(Some(r#"{"a":1}"#)), serde_json::json!({"a": 1}));
        assert_eq!(json_cell(None), Value::Null);
    }
}

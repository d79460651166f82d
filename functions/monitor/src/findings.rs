//! What `monitor check` finds wrong, from the ops tables against what is declared: failed
//! units, missed runs (the heartbeat: a schedule fired and no ledger row followed), stale
//! tables, tripped fail conditions and failing DQ metrics, a high dead-letter rate, CDC lag
//! and retained WAL, and counts that do not add up. The queries are fixed text with
//! parameters; everything after them is a pure function of their rows, tested below.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sluice::bigquery::{BigQuery, Param, QueryRows};
use sluice::config::{AlertsConfig, Pipeline, Severity, Target};
use sluice::Result;

use crate::declared::Declared;

/// Something wrong, as one incident: `key` names it across checks (the same problem found
/// again is the same incident).
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub key: String,
    /// failed, missed, stale, fail_condition, dq_metric, dead_letters, cdc_lag, cdc_wal, counts.
    pub kind: &'static str,
    pub severity: Severity,
    pub worker: String,
    /// The table, mart or unit it is about.
    pub subject: String,
    /// An `owners:` key.
    pub owner: Option<String>,
    /// One line: what is wrong.
    pub title: String,
    pub error: Option<String>,
    pub logical_date: Option<String>,
    pub run_id: Option<String>,
    /// Labelled facts (rows in / loaded / dead-lettered, age, lag ...).
    pub facts: Vec<(String, String)>,
}

/// The last ledger row of one unit (worker, source, table, logical date).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LastRun {
    pub run_id: String,
    pub worker: String,
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

/// When a unit (worker, source, table) last started and last succeeded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UnitTimes {
    pub worker: String,
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
pub type UnitKey = (String, Option<String>, Option<String>);

impl Observed {
    /// When the unit `worker source.table` (any table when None) was first declared; None
    /// when the declaration history does not know it.
    pub fn since(
        &self,
        worker: &str,
        source: Option<&str>,
        table: Option<&str>,
    ) -> Option<DateTime<Utc>> {
        self.declared_since
            .iter()
            .filter(|((w, s, t), _)| {
                w == worker
                    && (source.is_none() || s.as_deref() == source)
                    && (table.is_none() || t.as_deref() == table)
            })
            .map(|r| r.1)
            .min()
    }
}

/// How far back the unit times look (a monthly schedule's last fire is within it).
pub const HISTORY_DAYS: i64 = 35;

pub fn last_runs_sql(runs: &str) -> String {
    format!(
        "SELECT run_id, worker, source, table_name, CAST(logical_date AS STRING) AS logical_date, started_at, status, error, rows_in, rows_loaded, rows_dead_lettered, TO_JSON_STRING(details) AS details\n\
         FROM {runs} WHERE started_at >= @since AND started_at <= @now\n\
         QUALIFY ROW_NUMBER() OVER (PARTITION BY worker, IFNULL(source, ''), IFNULL(table_name, ''), IFNULL(CAST(logical_date AS STRING), '') ORDER BY started_at DESC, finished_at DESC) = 1"
    )
}

/// When each unit last started and last succeeded: what freshness and missed runs count.
/// cdc-sync's `status` checks (`details.kind = "verify"`) load nothing, so they are left out.
pub fn unit_times_sql(runs: &str) -> String {
    format!(
        "SELECT worker, source, table_name, MAX(started_at) AS last_started,\n\
         MAX(IF(status = 'success' AND (worker != 'log-ingest' OR rows_loaded > 0), finished_at, NULL)) AS last_success\n\
         FROM {runs} WHERE started_at >= @history AND started_at <= @now AND IFNULL(JSON_VALUE(details, '$.kind'), '') != 'verify'\n\
         GROUP BY worker, source, table_name"
    )
}

pub fn dq_sql(dq: &str) -> String {
    format!(
        "SELECT run_id, mart, CAST(ds AS STRING) AS ds, check_name, kind, value, `rows`, threshold, passed\n\
         FROM {dq} WHERE recorded_at >= @since AND recorded_at <= @now\n\
         QUALIFY ROW_NUMBER() OVER (PARTITION BY mart, check_name, ds ORDER BY recorded_at DESC) = 1"
    )
}

pub fn declared_since_sql(declared: &str) -> String {
    format!("SELECT producer, source, unit_table, MIN(declared_at) AS first FROM {declared} WHERE declared_at <= @now GROUP BY producer, source, unit_table")
}

pub fn events_sql(runs: &str) -> String {
    format!(
        "SELECT table_name, SUM(rows_in) AS rows_in, SUM(rows_dead_lettered) AS dead_lettered\n\
         FROM {runs} WHERE worker = 'log-ingest' AND started_at >= @hour_ago AND started_at <= @now GROUP BY table_name"
    )
}

/// A `TO_JSON_STRING(column)` cell as JSON; that of a JSON column may come back as a JSON
/// string of JSON, which is unwrapped. Null when absent or not JSON.
pub(crate) fn json_cell(s: Option<&str>) -> Value {
    match s.and_then(|s| serde_json::from_str::<Value>(s).ok()) {
        Some(Value::String(s)) => serde_json::from_str(&s).unwrap_or(Value::Null),
        Some(v) => v,
        None => Value::Null,
    }
}

/// A TIMESTAMP cell (seconds since the epoch as the REST API gives it, or RFC 3339).
pub(crate) fn ts(s: Option<&str>) -> Option<DateTime<Utc>> {
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
        let last_runs = rows(&q, |g| LastRun {
            run_id: g("run_id").unwrap_or_default().to_string(),
            worker: g("worker").unwrap_or_default().to_string(),
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
        });
        let q = bq
            .query(&unit_times_sql(&runs), &[history, upto.clone()])
            .await?;
        let units = rows(&q, |g| UnitTimes {
            worker: g("worker").unwrap_or_default().to_string(),
            source: text(g("source")),
            table: text(g("table_name")),
            last_started: ts(g("last_started")),
            last_success: ts(g("last_success")),
        });
        let dq = match bq.table_schema(&ops, sluice::ops::DQ_RESULTS.name).await? {
            None => vec![],
            Some(_) => {
                let q = bq.query(&dq_sql(&dq), &[since, upto.clone()]).await?;
                rows(&q, |g| DqRow {
                    run_id: g("run_id").unwrap_or_default().to_string(),
                    mart: g("mart").unwrap_or_default().to_string(),
                    ds: g("ds").unwrap_or_default().to_string(),
                    check_name: g("check_name").unwrap_or_default().to_string(),
                    kind: g("kind").unwrap_or_default().to_string(),
                    value: g("value").and_then(|v| v.parse().ok()),
                    rows: g("rows").and_then(|v| v.parse().ok()),
                    threshold: g("threshold").and_then(|v| v.parse().ok()),
                    passed: g("passed") == Some("true"),
                })
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
            (
                g("producer").unwrap_or_default().to_string(),
                text(g("source")),
                text(g("unit_table")),
                ts(g("first")),
            )
        })
        .into_iter()
        .filter_map(|(w, s, t, first)| Some(((w, s, t), first?)))
        .collect();
        Ok(Observed {
            last_runs,
            units,
            dq,
            events,
            declared_since,
        })
    }
}

/// What a check measured: `11999 of 12000 rows (0.9999)` for a fail condition (they count the
/// rows that pass), else the value as recorded; and the threshold.
fn dq_facts(d: &DqRow) -> Vec<(String, String)> {
    let mut out = vec![];
    match (d.value, d.rows) {
        (Some(v), Some(n)) if n > 0 && d.kind == "fail_condition" && v.fract() == 0.0 => {
            out.push((
                "value".into(),
                format!("{v} of {n} rows ({:.4})", v / n as f64),
            ))
        }
        (Some(v), _) => out.push(("value".into(), format!("{v}"))),
        _ => {}
    }
    if let Some(t) = d.threshold {
        out.push(("threshold".into(), format!("{t}")));
    }
    out
}

/// A mart-build run that failed because a fail condition tripped is one problem: its
/// `failed` finding goes, and the fail condition's message carries the run's error and id.
fn fold_tripped_builds(out: &mut Vec<Finding>) {
    let tripped: Vec<(String, Option<String>)> = out
        .iter()
        .filter(|f| f.kind == "fail_condition")
        .map(|f| (f.subject.clone(), f.logical_date.clone()))
        .collect();
    let mut errors = vec![];
    out.retain(|f| {
        let folded = f.kind == "failed"
            && f.worker == "mart-build"
            && tripped
                .iter()
                .any(|(m, d)| *m == f.subject && *d == f.logical_date);
        if folded {
            errors.push((
                f.subject.clone(),
                f.logical_date.clone(),
                f.error.clone(),
                f.run_id.clone(),
            ));
        }
        !folded
    });
    for f in out.iter_mut().filter(|f| f.kind == "fail_condition") {
        if let Some((_, _, error, run)) = errors
            .iter()
            .find(|e| e.0 == f.subject && e.1 == f.logical_date)
        {
            f.error = f.error.clone().or(error.clone());
            f.run_id = run.clone().or(f.run_id.take());
        }
    }
}

/// Each row of a result through `f`, which reads cells by column name.
pub fn rows<T>(
    q: &QueryRows,
    f: impl for<'a> Fn(&'a dyn Fn(&str) -> Option<&'a str>) -> T,
) -> Vec<T> {
    (0..q.rows.len()).map(|i| f(&|c| q.get(i, c))).collect()
}

fn age_text(d: chrono::Duration) -> String {
    let m = d.num_minutes();
    match m {
        m if m < 120 => format!("{m} min"),
        m if m < 48 * 60 => format!("{} h", m / 60),
        m => format!("{} days", m / (24 * 60)),
    }
}

fn std_dur(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or_default()
}

/// How fresh a declared table is.
#[derive(Debug, Clone, PartialEq)]
pub struct TableFreshness {
    pub dataset: String,
    pub table: String,
    pub owner: Option<String>,
    pub last_success: Option<DateTime<Utc>>,
    /// None: no SLA, or fresh; else warn or error.
    pub status: Option<Severity>,
    pub warn_after: Option<Duration>,
    pub error_after: Option<Duration>,
}

/// The freshness of every declared table as of `now`.
pub fn freshness(declared: &Declared, o: &Observed, now: DateTime<Utc>) -> Vec<TableFreshness> {
    declared
        .tables
        .iter()
        .map(|t| {
            let last_success = o
                .units
                .iter()
                .filter(|u| {
                    u.worker == t.worker.as_str()
                        && (t.source.is_none() || u.source == t.source)
                        && (t.unit_table.is_none() || u.table == t.unit_table)
                })
                .filter_map(|u| u.last_success)
                .max();
            // Never loaded: the clock runs from when the table was first declared.
            let since = last_success.or_else(|| {
                o.since(
                    t.worker.as_str(),
                    t.source.as_deref(),
                    t.unit_table.as_deref(),
                )
            });
            let (warn, error) = t
                .freshness
                .map(|f| (f.warn_after, f.error_after))
                .unwrap_or((None, None));
            let past =
                |d: Option<Duration>| d.is_some_and(|d| since.is_none_or(|l| now - l > std_dur(d)));
            let status = if past(error) {
                Some(Severity::Error)
            } else if past(warn) {
                Some(Severity::Warn)
            } else {
                None
            };
            TableFreshness {
                dataset: t.dataset.clone(),
                table: t.table.clone(),
                owner: t.owner.clone(),
                last_success,
                status,
                warn_after: warn,
                error_after: error,
            }
        })
        .collect()
}

/// Everything wrong as of `now`.
pub fn findings(
    p: &Pipeline,
    declared: &Declared,
    o: &Observed,
    alerts: &AlertsConfig,
    now: DateTime<Utc>,
) -> Vec<Finding> {
    let mut out = vec![];
    let unit_name = |r: &LastRun| match (&r.source, &r.table) {
        (Some(s), Some(t)) if r.worker != "log-ingest" => format!("{s}.{t}"),
        (_, Some(t)) => t.clone(),
        (Some(s), None) => s.clone(),
        (None, None) => r.worker.clone(),
    };
    for r in &o.last_runs {
        let owner = declared.owner_of(&r.worker, r.source.as_deref(), r.table.as_deref());
        let subject = unit_name(r);
        let date = r.logical_date.clone();
        let counts = vec![
            ("rows in".to_string(), r.rows_in.to_string()),
            ("loaded".to_string(), r.rows_loaded.to_string()),
            (
                "dead-lettered".to_string(),
                r.rows_dead_lettered.to_string(),
            ),
        ];
        if r.status == "failed" {
            out.push(Finding {
                key: format!(
                    "failed:{}:{subject}:{}",
                    r.worker,
                    date.as_deref().unwrap_or("")
                ),
                kind: "failed",
                severity: Severity::Error,
                worker: r.worker.clone(),
                subject: subject.clone(),
                owner: owner.clone(),
                title: match &date {
                    Some(d) => format!("{} failed: {subject} for {d}", r.worker),
                    None => format!("{} failed: {subject}", r.worker),
                },
                error: r.error.clone(),
                logical_date: date.clone(),
                run_id: Some(r.run_id.clone()),
                facts: counts.clone(),
            });
        } else if r.status == "success"
            && r.worker != "mart-build"
            && r.rows_in != r.rows_loaded + r.rows_dead_lettered
        {
            out.push(Finding {
                key: format!(
                    "counts:{}:{subject}:{}",
                    r.worker,
                    date.as_deref().unwrap_or("")
                ),
                kind: "counts",
                severity: Severity::Error,
                worker: r.worker.clone(),
                subject: subject.clone(),
                owner: owner.clone(),
                title: format!(
                    "{} counts do not add up: {subject}: {} in, {} loaded + {} dead-lettered",
                    r.worker, r.rows_in, r.rows_loaded, r.rows_dead_lettered
                ),
                error: None,
                logical_date: date.clone(),
                run_id: Some(r.run_id.clone()),
                facts: counts.clone(),
            });
        }
        if r.worker == "cdc-sync" && r.status == "success" {
            let source = r.source.clone().unwrap_or_default();
            let lag = r.details["lag_seconds"].as_f64().unwrap_or(0.0);
            let wal = r.details["retained_wal_bytes"].as_f64().unwrap_or(0.0);
            let wal_limit = p
                .sources
                .get(&source)
                .and_then(|s| s.cdc.as_ref())
                .map(|c| c.retained_wal_warn_mib as f64 * 1024.0 * 1024.0);
            let cdc = |kind: &'static str, title: String, facts: Vec<(String, String)>| Finding {
                key: format!("{kind}:{source}"),
                kind,
                severity: Severity::Warn,
                worker: "cdc-sync".into(),
                subject: source.clone(),
                owner: owner.clone(),
                title,
                error: None,
                logical_date: None,
                run_id: Some(r.run_id.clone()),
                facts,
            };
            if lag > alerts.cdc_lag.as_secs_f64() {
                out.push(cdc(
                    "cdc_lag",
                    format!(
                        "cdc-sync {source} is {:.0} s behind (limit {} s)",
                        lag,
                        alerts.cdc_lag.as_secs()
                    ),
                    vec![("lag".into(), format!("{lag:.0} s"))],
                ));
            }
            if wal_limit.is_some_and(|l| wal > l) {
                out.push(cdc(
                    "cdc_wal",
                    format!(
                        "the slot of {source} retains {:.0} MiB of WAL (limit {:.0} MiB)",
                        wal / 1048576.0,
                        wal_limit.unwrap_or(0.0) / 1048576.0
                    ),
                    vec![("retained WAL".into(), format!("{:.0} MiB", wal / 1048576.0))],
                ));
            }
        }
    }
    let missed_before = now - std_dur(alerts.missed_after);
    // The missed units, with the index of their finding: a table they land that went stale
    // is said in that one message, not in one of its own.
    let mut missed: Vec<(usize, &crate::declared::Unit, Vec<String>)> = vec![];
    for u in &declared.units {
        // A due time older than the ledger history read cannot be checked, and one before the
        // unit was first declared is not its to miss.
        let declared_at = o.since(u.worker.as_str(), Some(&u.source), u.table.as_deref());
        let Some(due) = u.schedule.last_due(missed_before).filter(|d| {
            *d > now - chrono::Duration::days(HISTORY_DAYS) && declared_at.is_none_or(|s| *d >= s)
        }) else {
            continue;
        };
        let started = o
            .units
            .iter()
            .filter(|t| {
                t.worker == u.worker.as_str()
                    && t.source.as_deref() == Some(u.source.as_str())
                    && (u.table.is_none() || t.table == u.table)
            })
            .filter_map(|t| t.last_started)
            .max();
        // A run may log its start a little before the minute it was due (clock skew).
        if started.is_some_and(|s| s >= due - chrono::Duration::minutes(1)) {
            continue;
        }
        let label = u.label();
        let last = started
            .map(|s| format!("last started {} ago", age_text(now - s)))
            .unwrap_or_else(|| format!("no run in the last {HISTORY_DAYS} days"));
        missed.push((out.len(), u, vec![]));
        out.push(Finding {
            key: format!("missed:{label}"),
            kind: "missed",
            severity: Severity::Error,
            worker: u.worker.as_str().into(),
            subject: label.clone(),
            owner: u.owner.clone(),
            title: format!(
                "missed run: {label} was due at {} UTC ({}) and has not started",
                due.format("%Y-%m-%d %H:%M"),
                u.schedule.cron()
            ),
            error: Some(last),
            logical_date: None,
            run_id: None,
            facts: vec![("due".into(), due.format("%Y-%m-%d %H:%M UTC").to_string())],
        });
    }
    for f in freshness(declared, o, now) {
        let Some(sev) = f.status else { continue };
        let landed_by = declared.table(&f.dataset, &f.table).and_then(|t| {
            missed.iter_mut().find(|(_, u, _)| {
                u.worker == t.worker
                    && t.source.as_deref() == Some(u.source.as_str())
                    && (u.table.is_none() || u.table == t.unit_table)
            })
        });
        if let Some((_, _, stale)) = landed_by {
            stale.push(format!("{}.{}", f.dataset, f.table));
            continue;
        }
        let limit = if sev == Severity::Error {
            f.error_after
        } else {
            f.warn_after
        };
        let name = format!("{}.{}", f.dataset, f.table);
        let age = f
            .last_success
            .map(|l| format!("last loaded {} ago", age_text(now - l)))
            .unwrap_or_else(|| "never loaded".to_string());
        let producer = declared
            .table(&f.dataset, &f.table)
            .map(|t| t.worker.as_str())
            .unwrap_or("");
        out.push(Finding {
            key: format!("stale:{name}"),
            kind: "stale",
            severity: sev,
            worker: producer.into(),
            subject: name.clone(),
            owner: f.owner.clone(),
            title: format!(
                "{name} is stale: {age} ({} after {})",
                if sev == Severity::Error {
                    "error"
                } else {
                    "warn"
                },
                limit.map(|d| age_text(std_dur(d))).unwrap_or_default()
            ),
            error: None,
            logical_date: None,
            run_id: None,
            facts: vec![(
                "last loaded".into(),
                f.last_success
                    .map(|l| l.format("%Y-%m-%d %H:%M UTC").to_string())
                    .unwrap_or_else(|| "never".into()),
            )],
        });
    }
    for (i, _, stale) in missed {
        if !stale.is_empty() {
            out[i]
                .facts
                .push(("stale because of it".into(), stale.join(", ")));
        }
    }
    for d in o.dq.iter().filter(|d| !d.passed) {
        let fail = d.kind == "fail_condition";
        let (dataset, table) = d.mart.split_once('.').unwrap_or(("", &d.mart));
        out.push(Finding {
            key: format!("{}:{}:{}:{}", d.kind, d.mart, d.check_name, d.ds),
            kind: if fail { "fail_condition" } else { "dq_metric" },
            severity: if fail {
                Severity::Error
            } else {
                Severity::Warn
            },
            worker: "mart-build".into(),
            subject: d.mart.clone(),
            owner: declared.table(dataset, table).and_then(|t| t.owner.clone()),
            title: format!(
                "{} {} failed on {} for {}{}",
                if fail { "fail condition" } else { "DQ metric" },
                d.check_name,
                d.mart,
                d.ds,
                if fail {
                    " (the mart and its dependents were not updated)"
                } else {
                    ""
                }
            ),
            error: None,
            logical_date: Some(d.ds.clone()),
            run_id: Some(d.run_id.clone()),
            facts: dq_facts(d),
        });
    }
    let mut by_table: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for e in &o.events {
        let c = by_table.entry(&e.table).or_default();
        c.0 += e.rows_in;
        c.1 += e.dead_lettered;
    }
    for (table, (n, dead)) in by_table {
        if n == 0 || (dead as f64) / (n as f64) <= alerts.dead_letter_rate {
            continue;
        }
        let ds = p
            .events
            .as_ref()
            .map(|e| e.dataset.as_str())
            .unwrap_or("events");
        out.push(Finding {
            key: format!("dead_letters:{table}"),
            kind: "dead_letters",
            severity: Severity::Warn,
            worker: "log-ingest".into(),
            subject: format!("{ds}.{table}"),
            owner: declared.table(ds, table).and_then(|t| t.owner.clone()),
            title: format!(
                "{dead} of {n} {table} events in the last hour were dead-lettered ({:.1}%, limit {:.1}%)",
                100.0 * dead as f64 / n as f64,
                100.0 * alerts.dead_letter_rate
            ),
            error: None,
            logical_date: None,
            run_id: None,
            facts: vec![("events".into(), n.to_string()), ("dead letters".into(), dead.to_string())],
        });
    }
    fold_tripped_builds(&mut out);
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out.dedup_by(|a, b| a.key == b.key);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice::marts::Dag;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn setup() -> (Pipeline, Declared) {
        let p = Pipeline::parse(
            "name: t\nbigquery: { project: p }\nlake: { bucket: b }\n\
             owners: {ana: {slack: U1}}\n\
             sources:\n  shop:\n    dsn: { env: X }\n    owner: ana\n    tables:\n      orders: { mode: full, freshness: {warn_after: 26h, error_after: 50h} }\n      users: { mode: full }\n\
             \x20   cdc: { tables: [orders], retained_wal_warn_mib: 10, freshness: {warn_after: 30m} }\n",
            "t",
        )
        .unwrap();
        let dir = std::env::temp_dir();
        let dag = Dag::build(vec![], &sluice::marts::Landed::of(&p, &dir)).unwrap();
        let d = Declared::of(&p, &dir, &dag);
        (p, d)
    }

    fn unit(
        worker: &str,
        source: &str,
        table: Option<&str>,
        started: &str,
        ok: Option<&str>,
    ) -> UnitTimes {
        UnitTimes {
            worker: worker.into(),
            source: Some(source.into()),
            table: table.map(str::to_string),
            last_started: Some(t(started)),
            last_success: ok.map(t),
        }
    }

    #[test]
    fn a_schedule_that_fired_without_a_ledger_row_is_a_missed_run() {
        let (p, d) = setup();
        let a = AlertsConfig {
            missed_after: Duration::from_secs(1800),
            ..serde_yaml::from_str("{}").unwrap()
        };
        let now = t("2026-12-03T07:00:00Z");
        let o = Observed {
            units: vec![
                unit(
                    "pg-copy",
                    "shop",
                    Some("orders"),
                    "2026-12-03T06:00:05Z",
                    Some("2026-12-03T06:01:00Z"),
                ),
                unit(
                    "pg-copy",
                    "shop",
                    Some("users"),
                    "2026-12-02T06:00:05Z",
                    Some("2026-12-02T06:01:00Z"),
                ),
                unit(
                    "cdc-sync",
                    "shop",
                    None,
                    "2026-12-03T06:25:01Z",
                    Some("2026-12-03T06:26:00Z"),
                ),
            ],
            ..Observed::default()
        };
        let f = findings(&p, &d, &o, &a, now);
        let keys: Vec<&str> = f.iter().map(|f| f.key.as_str()).collect();
        // users' 06:00 run did not start; cdc-sync's 06:30 run (due an hour before now minus
        // 30 min) did not either; orders' did.
        assert_eq!(keys, ["missed:cdc-sync shop", "missed:pg-copy shop.users"]);
        // The replica went stale because cdc-sync did not run: said in the missed run's message.
        assert_eq!(
            f[0].facts.last(),
            Some(&(
                "stale because of it".to_string(),
                "shop_replica.orders".to_string()
            ))
        );
        assert_eq!(f[1].owner.as_deref(), Some("ana"));
        assert!(
            f[1].title
                .contains("was due at 2026-12-03 06:00 UTC (0 6 * * *)"),
            "{}",
            f[1].title
        );
        assert_eq!(f[1].error.as_deref(), Some("last started 24 h ago"));
        // Before the grace period ends nothing is missed.
        let f = findings(&p, &d, &o, &a, t("2026-12-03T06:20:00Z"));
        assert!(
            f.iter()
                .all(|f| f.kind != "missed" || f.subject.starts_with("cdc")),
            "{f:?}"
        );
        // A table added after its schedule fired is not behind yet, and its SLA runs from then.
        let o = Observed {
            declared_since: vec![
                (
                    ("pg-copy".into(), Some("shop".into()), Some("users".into())),
                    t("2026-12-03T06:10:00Z"),
                ),
                (
                    ("cdc-sync".into(), Some("shop".into()), None),
                    t("2026-12-01T00:00:00Z"),
                ),
            ],
            ..o
        };
        let keys: Vec<String> = findings(&p, &d, &o, &a, now)
            .into_iter()
            .map(|f| f.key)
            .collect();
        assert_eq!(keys, ["missed:cdc-sync shop"]);
    }

    #[test]
    fn failures_counts_freshness_dq_dead_letters_and_cdc_lag() {
        let (p, d) = setup();
        let a: AlertsConfig = serde_yaml::from_str("{missed_after: 1000h}").unwrap();
        let now = t("2026-12-03T12:00:00Z");
        let run = |status: &str, table: &str, rows: (i64, i64, i64)| LastRun {
            run_id: "r1".into(),
            worker: "pg-copy".into(),
            source: Some("shop".into()),
            table: Some(table.into()),
            logical_date: Some("2026-12-02".into()),
            status: status.into(),
            error: (status == "failed").then(|| "relation \"orders\" does not exist".into()),
            rows_in: rows.0,
            rows_loaded: rows.1,
            rows_dead_lettered: rows.2,
            ..LastRun::default()
        };
        let o = Observed {
            last_runs: vec![
                run("failed", "orders", (0, 0, 0)),
                run("success", "users", (10, 8, 1)),
                LastRun {
                    worker: "cdc-sync".into(),
                    source: Some("shop".into()),
                    status: "success".into(),
                    details: serde_json::json!({"lag_seconds": 4000.0, "retained_wal_bytes": 20971520}),
                    ..LastRun::default()
                },
            ],
            units: vec![unit(
                "pg-copy",
                "shop",
                Some("orders"),
                "2026-12-03T06:00:00Z",
                Some("2026-12-01T12:00:00Z"),
            )],
            dq: vec![DqRow {
                mart: "finance.daily".into(),
                ds: "2026-12-02".into(),
                check_name: "unique_day".into(),
                kind: "fail_condition".into(),
                value: Some(0.9),
                threshold: Some(1.0),
                passed: false,
                ..DqRow::default()
            }],
            events: vec![EventCounts {
                table: "signup".into(),
                rows_in: 100,
                dead_lettered: 6,
            }],
            declared_since: vec![],
        };
        let f = findings(&p, &d, &o, &a, now);
        let got: Vec<(&str, Severity)> = f.iter().map(|f| (f.key.as_str(), f.severity)).collect();
        assert_eq!(
            got,
            [
                ("cdc_lag:shop", Severity::Warn),
                ("cdc_wal:shop", Severity::Warn),
                ("counts:pg-copy:shop.users:2026-12-02", Severity::Error),
                ("dead_letters:signup", Severity::Warn),
                (
                    "fail_condition:finance.daily:unique_day:2026-12-02",
                    Severity::Error
                ),
                ("failed:pg-copy:shop.orders:2026-12-02", Severity::Error),
                ("stale:shop.orders", Severity::Warn),
                ("stale:shop_replica.orders", Severity::Warn),
            ]
        );
        let failed = &f[5];
        assert_eq!(failed.title, "pg-copy failed: shop.orders for 2026-12-02");
        assert_eq!(failed.owner.as_deref(), Some("ana"));
        assert!(
            f[6].title
                .contains("last loaded 2 days ago (warn after 26 h)"),
            "{}",
            f[6].title
        );
        assert!(
            f[3].title.starts_with("6 of 100 signup events"),
            "{}",
            f[3].title
        );
    }
}

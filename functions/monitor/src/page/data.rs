//! What the status page shows, and reading it: the page's own queries (the run heatmap, DQ
//! over time, dead letters, the catalog's columns) beside what the check already read (the
//! freshness and the incidents), and the lineage of the declared tables and the marts.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use sluice::bigquery::Param;
use sluice::ledger::Worker;
use sluice::Result;

use crate::alerts::Incident;
use crate::context::{lake_uri, Monitor};
use crate::declared::Table;
use crate::findings::{self, Observed, TableFreshness};

/// Everything the page shows.
#[derive(Debug, Clone, Default)]
pub struct PageData {
    pub pipeline: String,
    pub target: String,
    pub project: String,
    pub location: String,
    pub lake: String,
    pub ops_dataset: String,
    pub generated_at: DateTime<Utc>,
    pub tables: Vec<Table>,
    /// Datasets as the target writes them, by the name pipeline.yaml gives.
    pub datasets: BTreeMap<String, String>,
    pub freshness: Vec<TableFreshness>,
    pub alerts: Vec<Incident>,
    /// (worker, unit) → runs and failures per UTC hour, last 7 days.
    pub heatmap: BTreeMap<(String, String), [(u32, u32); 24]>,
    /// mart → ds → (passed, failed).
    pub dq: BTreeMap<String, BTreeMap<String, (u32, u32)>>,
    /// (day, event type, reason, messages).
    pub dead_letters: Vec<(String, String, String, u64)>,
    /// `dataset.table` → (column, type).
    pub columns: BTreeMap<String, Vec<(String, String)>>,
    /// Lineage edges: from → to (`pg:shop`, `events:topic`, `dataset.table`).
    pub edges: Vec<(String, String)>,
}

/// Reads what the page shows, as of `now`: the freshness from what the check read
/// (`observed`), and the incidents as the check left them.
pub async fn data(
    m: &Monitor,
    now: DateTime<Utc>,
    observed: &Observed,
    incidents: Vec<Incident>,
) -> Result<PageData> {
    let week = Param::scalar(
        "since",
        "TIMESTAMP",
        sluice::time::bigquery_timestamp(now - chrono::Duration::days(7)),
    );
    let heatmap = heatmap(m, &week).await?;
    let dq = dq_days(m, &week).await?;
    let dead_letters = dead_letters(m, week).await?;
    let datasets: BTreeMap<String, String> = m
        .declared
        .tables
        .iter()
        .map(|t| (t.dataset.clone(), m.target.dataset(&t.dataset)))
        .collect();
    let columns = columns(m, &datasets).await?;
    Ok(PageData {
        pipeline: m.pipeline.name.clone(),
        target: m.target.name.clone(),
        project: m.bq.project().to_string(),
        location: m.pipeline.bigquery.location.clone(),
        lake: lake_uri(&m.target.lake),
        ops_dataset: m.ops.clone(),
        generated_at: now,
        tables: m.declared.tables.clone(),
        datasets,
        freshness: findings::freshness(&m.declared, observed, now),
        alerts: incidents,
        heatmap,
        dq,
        dead_letters,
        columns,
        edges: edges(m),
    })
}

/// Runs and failures per worker, unit and UTC hour since `week`.
async fn heatmap(
    m: &Monitor,
    week: &Param,
) -> Result<BTreeMap<(String, String), [(u32, u32); 24]>> {
    let runs = m.ops_table(sluice::ops::RUNS.name);
    let q = m.bq.query(&format!(
        "SELECT worker, COALESCE(table_name, source, worker) AS unit, EXTRACT(HOUR FROM started_at) AS hour, COUNT(*) AS runs, COUNTIF(status = 'failed') AS failed\n\
         FROM {runs} WHERE started_at >= @since GROUP BY worker, unit, hour"), std::slice::from_ref(week)).await?;
    let mut heatmap: BTreeMap<(String, String), [(u32, u32); 24]> = BTreeMap::new();
    for (w, u, hour, n, f) in findings::rows(&q, |g| {
        let num = |c: &str| g(c).and_then(|v| v.parse::<u32>().ok()).unwrap_or(0);
        (
            g("worker").unwrap_or_default().to_string(),
            g("unit").unwrap_or_default().to_string(),
            num("hour"),
            num("runs"),
            num("failed"),
        )
    }) {
        heatmap.entry((w, u)).or_insert([(0, 0); 24])[(hour as usize).min(23)] = (n, f);
    }
    Ok(heatmap)
}

/// Checks passed and failed per mart and logical date, the newest result of each.
async fn dq_days(
    m: &Monitor,
    week: &Param,
) -> Result<BTreeMap<String, BTreeMap<String, (u32, u32)>>> {
    let q = m.bq.query(&format!(
        "SELECT mart, CAST(ds AS STRING) AS ds, COUNTIF(passed) AS passed, COUNTIF(NOT passed) AS failed FROM (\n\
         SELECT * FROM {} WHERE ds >= DATE_SUB(DATE(@since), INTERVAL 7 DAY)\n\
         QUALIFY ROW_NUMBER() OVER (PARTITION BY mart, check_name, ds ORDER BY recorded_at DESC) = 1) GROUP BY mart, ds",
        m.ops_table(sluice::ops::DQ_RESULTS.name)), std::slice::from_ref(week)).await?;
    let mut dq: BTreeMap<String, BTreeMap<String, (u32, u32)>> = BTreeMap::new();
    for (mart, ds, p, f) in findings::rows(&q, |g| {
        let num = |c: &str| g(c).and_then(|v| v.parse::<u32>().ok()).unwrap_or(0);
        (
            g("mart").unwrap_or_default().to_string(),
            g("ds").unwrap_or_default().to_string(),
            num("passed"),
            num("failed"),
        )
    }) {
        dq.entry(mart).or_default().insert(ds, (p, f));
    }
    Ok(dq)
}

/// Dead letters per day, event type and reason since `week`.
async fn dead_letters(m: &Monitor, week: Param) -> Result<Vec<(String, String, String, u64)>> {
    let q = m.bq.query(&format!(
        "SELECT CAST(DATE(received_at) AS STRING) AS day, IFNULL(event_type, '') AS event_type, reason_code, COUNT(DISTINCT message_id) AS n\n\
         FROM {} WHERE received_at >= @since GROUP BY day, event_type, reason_code ORDER BY day DESC, n DESC",
        m.ops_table(sluice::ops::DEAD_LETTER.name)), &[week]).await?;
    Ok(findings::rows(&q, |g| {
        (
            g("day").unwrap_or_default().to_string(),
            g("event_type").unwrap_or_default().to_string(),
            g("reason_code").unwrap_or_default().to_string(),
            g("n").and_then(|v| v.parse().ok()).unwrap_or(0),
        )
    }))
}

/// The columns of every table in `datasets` (as the target writes them), by `dataset.table`.
async fn columns(
    m: &Monitor,
    datasets: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, Vec<(String, String)>>> {
    let names: Vec<String> = datasets.values().cloned().collect();
    let q = m.bq.query(&format!(
        "SELECT table_schema, table_name, column_name, data_type FROM `{}.{}.INFORMATION_SCHEMA.COLUMNS` WHERE table_schema IN UNNEST(@datasets) ORDER BY table_schema, table_name, ordinal_position",
        m.bq.project(), crate::views::region(&m.pipeline.bigquery.location)), &[Param::strings("datasets", &names)]).await?;
    let mut columns: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for (t, c, ty) in findings::rows(&q, |g| {
        (
            format!(
                "{}.{}",
                g("table_schema").unwrap_or_default(),
                g("table_name").unwrap_or_default()
            ),
            g("column_name").unwrap_or_default().to_string(),
            g("data_type").unwrap_or_default().to_string(),
        )
    }) {
        columns.entry(t).or_default().push((c, ty));
    }
    Ok(columns)
}

/// Lineage edges of the pipeline: Postgres sources and the event topic to the tables they
/// land, tables to the marts that read them.
pub fn edges(m: &Monitor) -> Vec<(String, String)> {
    let mut out = BTreeSet::new();
    for t in &m.declared.tables {
        let name = format!("{}.{}", t.dataset, t.table);
        match t.worker {
            Worker::PgCopy | Worker::CdcSync => {
                out.insert((
                    format!("postgres:{}", t.source.clone().unwrap_or_default()),
                    name,
                ));
            }
            Worker::LogIngest => {
                let topic = m
                    .pipeline
                    .events
                    .as_ref()
                    .and_then(|e| e.topic.clone())
                    .unwrap_or_else(|| format!("{}-events", m.pipeline.name));
                out.insert((format!("pubsub:{topic}"), name.clone()));
                // Marts read the one-row-per-message view log-ingest keeps beside the table.
                out.insert((
                    name,
                    format!("{}.{}", t.dataset, sluice::catalog::dedup_view(&t.table)),
                ));
            }
            Worker::MartBuild | Worker::Monitor => {}
        }
    }
    for (id, mart) in &m.dag.marts {
        for r in &mart.references {
            out.insert((r.name.short(), id.clone()));
        }
    }
    out.into_iter().collect()
}

//! Jobs and queries: run a job under a deterministic id and wait for it, run a query and
//! page through its rows, and the query parameters both take.

use std::time::Duration;

use serde_json::{json, Value};

use super::errors::job_error;
use super::BigQuery;
use crate::error::Result;

/// The outcome of a finished job.
#[derive(Debug, Clone)]
pub struct JobResult {
    pub job_id: String,
    /// `statistics` of the job as BigQuery reports it.
    pub statistics: Value,
}

/// Rows of a query, each a list of cells as JSON (`null`, strings, nested for REPEATED).
#[derive(Debug, Clone, Default)]
pub struct QueryRows {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

impl QueryRows {
    /// Cell (row, column name) as text, None when NULL.
    pub fn get(&self, row: usize, column: &str) -> Option<&str> {
        let i = self.columns.iter().position(|c| c == column)?;
        self.rows.get(row)?.get(i)?.as_str()
    }
}

/// A named query parameter (`@ds`): a scalar, or an array of scalars when `array` is set.
#[derive(Debug, Clone)]
pub struct Param {
    pub name: String,
    /// The scalar type, or the element type of an array.
    pub ty: &'static str,
    pub value: String,
    pub array: Option<Vec<String>>,
}

impl Param {
    pub fn scalar(name: &str, ty: &'static str, value: impl Into<String>) -> Param {
        Param {
            name: name.into(),
            ty,
            value: value.into(),
            array: None,
        }
    }

    pub fn date(name: &str, value: &str) -> Param {
        Param::scalar(name, "DATE", value)
    }

    /// An `ARRAY<STRING>` parameter (`x IN UNNEST(@values)`).
    pub fn strings(name: &str, values: &[String]) -> Param {
        Param {
            name: name.into(),
            ty: "STRING",
            value: String::new(),
            array: Some(values.to_vec()),
        }
    }

    /// The parameter as the REST API takes it.
    pub fn to_json(&self) -> Value {
        match &self.array {
            None => json!({
                "name": self.name,
                "parameterType": {"type": self.ty},
                "parameterValue": {"value": self.value},
            }),
            Some(values) => json!({
                "name": self.name,
                "parameterType": {"type": "ARRAY", "arrayType": {"type": self.ty}},
                "parameterValue": {"arrayValues": values.iter().map(|v| json!({"value": v})).collect::<Vec<_>>()},
            }),
        }
    }
}

impl BigQuery {
    /// Runs a job with a caller-chosen id and waits for it. Inserting the same id again
    /// (a retried request, a rerun) finds the existing job instead of running it twice.
    pub async fn run_job(&self, job_id: &str, configuration: Value) -> Result<JobResult> {
        let ctx = format!("job {job_id}");
        let body = json!({
            "jobReference": {"projectId": self.project, "jobId": job_id, "location": self.location},
            "configuration": labelled(configuration, self.labels_json()),
        });
        let (status, inserted) = self
            .answered(reqwest::Method::POST, "/jobs", Some(&body), &ctx, &[409])
            .await?;
        let mut job = if status == 409 {
            self.get_job(job_id, &ctx).await?
        } else {
            inserted
        };
        let mut wait = Duration::from_millis(100);
        while job["status"]["state"].as_str() != Some("DONE") {
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(2));
            job = self.get_job(job_id, &ctx).await?;
        }
        if let Some(err) = job["status"].get("errorResult") {
            return Err(job_error(&ctx, err, &job["status"]["errors"]));
        }
        Ok(JobResult {
            job_id: job_id.to_string(),
            statistics: job["statistics"].clone(),
        })
    }

    async fn get_job(&self, job_id: &str, ctx: &str) -> Result<Value> {
        self.request(
            reqwest::Method::GET,
            &format!("/jobs/{job_id}?location={}", self.location),
            None,
            ctx,
        )
        .await
    }

    /// Runs GoogleSQL (a query, DML, or a script) with named parameters and returns its rows.
    pub async fn query(&self, sql: &str, params: &[Param]) -> Result<QueryRows> {
        let ctx = format!("query {}", first_line(sql));
        let body = json!({
            "query": sql,
            "useLegacySql": false,
            "location": self.location,
            "parameterMode": "NAMED",
            "queryParameters": params.iter().map(Param::to_json).collect::<Vec<_>>(),
            "timeoutMs": self.server_wait_ms(),
            "maxResults": 10_000,
            "labels": self.labels_json(),
        });
        // A query is not retried as a whole: DML may have run. Transient errors surface.
        let (status, mut resp) = self
            .call(reqwest::Method::POST, "/queries", Some(&body), &ctx)
            .await?;
        if !(200..300).contains(&status) {
            return Err(self.refused(&ctx, status, &resp).await);
        }
        let job_id = resp["jobReference"]["jobId"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let mut out = QueryRows::default();
        loop {
            if resp["jobComplete"].as_bool() == Some(false) {
                tokio::time::sleep(Duration::from_millis(200)).await;
                resp = self.query_results(&job_id, None, &ctx).await?;
                continue;
            }
            if let Some(errs) = resp
                .get("errors")
                .filter(|e| e.as_array().is_some_and(|a| !a.is_empty()))
            {
                return Err(job_error(&ctx, &errs[0], errs));
            }
            if out.columns.is_empty() {
                out.columns = resp["schema"]["fields"]
                    .as_array()
                    .map(|f| {
                        f.iter()
                            .map(|c| c["name"].as_str().unwrap_or("").to_string())
                            .collect()
                    })
                    .unwrap_or_default();
            }
            if let Some(rows) = resp["rows"].as_array() {
                out.rows.extend(rows.iter().map(|r| {
                    r["f"]
                        .as_array()
                        .map(|cells| cells.iter().map(|c| c["v"].clone()).collect())
                        .unwrap_or_default()
                }));
            }
            match resp["pageToken"].as_str() {
                Some(token) if !token.is_empty() => {
                    let token = token.to_string();
                    resp = self.query_results(&job_id, Some(&token), &ctx).await?;
                }
                _ => break,
            }
        }
        Ok(out)
    }

    /// The number a `SELECT COUNT(*) AS n …` query (`sql::count_rows`) returns.
    pub async fn count(&self, sql: &str, params: &[Param]) -> Result<u64> {
        let r = self.query(sql, params).await?;
        Ok(r.get(0, "n").and_then(|n| n.parse().ok()).unwrap_or(0))
    }

    async fn query_results(&self, job_id: &str, page: Option<&str>, ctx: &str) -> Result<Value> {
        let mut path = format!(
            "/queries/{job_id}?location={}&maxResults=10000&timeoutMs={}",
            self.location,
            self.server_wait_ms()
        );
        if let Some(p) = page {
            path.push_str(&format!("&pageToken={p}"));
        }
        self.request(reqwest::Method::GET, &path, None, ctx).await
    }
}

/// A job configuration with the client's labels, beside any it already has.
fn labelled(mut configuration: Value, labels: Value) -> Value {
    if let (Some(c), Value::Object(labels)) = (configuration.as_object_mut(), labels) {
        let own = c.entry("labels").or_insert_with(|| json!({}));
        if let Some(own) = own.as_object_mut() {
            for (k, v) in labels {
                own.entry(k).or_insert(v);
            }
        }
    }
    configuration
}

pub(super) fn first_line(sql: &str) -> String {
    let l = sql.trim().lines().next().unwrap_or("");
    if l.len() > 80 {
        format!(
            "{}…",
            &l[..l.char_indices().nth(80).map(|(i, _)| i).unwrap_or(l.len())]
        )
    } else {
        l.to_string()
    }
}

/// A BigQuery job id from parts: letters, digits, `_` and `-` only, at most 1,024 characters.
/// The same parts always give the same id, so a retried or repeated job is found, not rerun.
pub fn job_id(parts: &[&str]) -> String {
    let mut id: String = parts
        .join("_")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    id.truncate(1024);
    id
}

/// The part of a run id that goes into job ids and staging table names: its last eight
/// letters and digits, the random end of every run id format (a uuid, or cdc-sync's
/// `<time>-<random>`), so each run's jobs and staging tables are its own. (The first eight were
/// the date of a cdc-sync run id: a rerun on the same day found the killed run's load job by
/// its id and loaded nothing.)
pub fn run_tag(run_id: &str) -> String {
    let alnum: Vec<char> = run_id.chars().filter(char::is_ascii_alphanumeric).collect();
    alnum[alnum.len().saturating_sub(8)..].iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_are_stable_and_clean() {
        assert_eq!(
            job_id(&["sluice", "shop.orders", "2024-05-01"]),
            "sluice_shop_orders_2024-05-01"
        );
        assert_eq!(job_id(&["a"; 2000]).len(), 1024);
    }

    #[test]
    fn a_job_carries_the_clients_labels_beside_its_own() {
        let c = labelled(
            json!({"query": {"query": "SELECT 1"}, "labels": {"sluice_mart": "orders"}}),
            json!({"sluice_worker": "mart-build", "sluice_mart": "other"}),
        );
        assert_eq!(
            c["labels"],
            json!({"sluice_worker": "mart-build", "sluice_mart": "orders"})
        );
        assert_eq!(c["query"]["query"], "SELECT 1");
    }

    #[test]
    fn run_tags_differ_between_runs_of_the_same_second() {
        let a = run_tag("20261202T125638-14c42fda");
        let b = run_tag("20261202T125638-5a32c57d");
        assert_eq!((a.as_str(), b.as_str()), ("14c42fda", "5a32c57d"));
        assert_eq!(run_tag("936da01f-9abd-4d9d-80c7-02af85c822a8"), "85c822a8");
        assert_eq!(run_tag("x"), "x");
    }
}

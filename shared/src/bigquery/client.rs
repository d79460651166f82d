//! A small BigQuery REST v2 client: datasets, tables, jobs, queries, insertAll.
//!
//! Endpoint injectable (the emulator), no gzip bodies, errors classified transient/permanent.
//! Tokens come from the metadata server on Cloud Run, or none for the emulator.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::Mutex;

use super::schema::{self, Field};
use crate::config::{Target, Timeouts};
use crate::error::{Error, ErrorKind, Result};
use crate::retry;

const GOOGLE_ENDPOINT: &str = "https://bigquery.googleapis.com";
const METADATA_TOKEN: &str =
    "http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token";

/// How requests are authorised.
enum Auth {
    /// The emulator takes any token.
    None,
    /// The runtime's service account, through the metadata server; cached until near expiry.
    Metadata(Mutex<Option<(String, Instant)>>),
}

/// A BigQuery client bound to one project and location.
#[derive(Clone)]
pub struct BigQuery {
    http: reqwest::Client,
    base: String,
    /// The endpoint as configured, for messages.
    endpoint: String,
    timeouts: Timeouts,
    project: String,
    location: String,
    auth: Arc<Auth>,
}

impl std::fmt::Debug for BigQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BigQuery({} at {})", self.project, self.base)
    }
}

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
    /// A client for a target: its endpoint (or Google's) and its credentials.
    pub fn for_target(target: &Target) -> Result<BigQuery> {
        let base = target
            .bigquery_endpoint
            .clone()
            .unwrap_or_else(|| GOOGLE_ENDPOINT.to_string());
        let auth = if target.no_auth {
            Auth::None
        } else {
            Auth::Metadata(Mutex::new(None))
        };
        BigQuery::new(
            &base,
            &target.project,
            &target.location,
            auth,
            target.timeouts,
        )
    }

    /// A client for the emulator at `endpoint` (tests, local profile).
    pub fn emulator(endpoint: &str, project: &str) -> Result<BigQuery> {
        BigQuery::new(endpoint, project, "US", Auth::None, Timeouts::default())
    }

    fn new(
        base: &str,
        project: &str,
        location: &str,
        auth: Auth,
        timeouts: Timeouts,
    ) -> Result<BigQuery> {
        crate::install_crypto();
        let http = crate::http::client(&timeouts).map_err(|e| {
            Error::bigquery(
                "building the HTTP client",
                ErrorKind::Permanent,
                e.to_string(),
            )
        })?;
        let endpoint = base.trim_end_matches('/').to_string();
        Ok(BigQuery {
            http,
            base: format!("{endpoint}/bigquery/v2/projects/{project}"),
            endpoint,
            timeouts,
            project: project.to_string(),
            location: location.to_string(),
            auth: Arc::new(auth),
        })
    }

    pub fn project(&self) -> &str {
        &self.project
    }

    /// How long BigQuery may hold a query request open waiting for the job (`timeoutMs`): well
    /// inside the request timeout, so a slow job is polled, never taken for a silent endpoint.
    fn server_wait_ms(&self) -> u64 {
        (self.timeouts.request.as_millis() as u64 / 2).clamp(100, 10_000)
    }

    async fn token(&self) -> Result<Option<String>> {
        match self.auth.as_ref() {
            Auth::None => Ok(None),
            Auth::Metadata(cache) => {
                let mut c = cache.lock().await;
                if let Some((t, until)) = c.as_ref() {
                    if Instant::now() < *until {
                        return Ok(Some(t.clone()));
                    }
                }
                let resp: Value = self
                    .http
                    .get(METADATA_TOKEN)
                    .header("Metadata-Flavor", "Google")
                    .send()
                    .await
                    .map_err(|e| {
                        Error::bigquery(
                            "getting a token from the metadata server",
                            ErrorKind::Permanent,
                            format!("{}; outside Google Cloud use a target with `no_auth: true` (the emulator)", crate::http::describe(&e, &self.timeouts)),
                        )
                    })?
                    .json()
                    .await
                    .map_err(|e| Error::bigquery("reading the token", ErrorKind::Transient, e.to_string()))?;
                let token = resp["access_token"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let ttl = resp["expires_in"]
                    .as_u64()
                    .unwrap_or(300)
                    .saturating_sub(60);
                *c = Some((token.clone(), Instant::now() + Duration::from_secs(ttl)));
                Ok(Some(token))
            }
        }
    }

    /// One REST call; returns (status, body). Transport errors are transient.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        ctx: &str,
    ) -> Result<(u16, Value)> {
        let body = body.map(|b| serde_json::to_vec(b).unwrap_or_default());
        self.call_raw(method, path, body, ctx).await
    }

    /// One request with a body already serialized as JSON.
    async fn call_raw(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Vec<u8>>,
        ctx: &str,
    ) -> Result<(u16, Value)> {
        let started = Instant::now();
        let mut req = self
            .http
            .request(method.clone(), format!("{}{}", self.base, path));
        if let Some(t) = self.token().await? {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(b);
        }
        let unreachable = |e: reqwest::Error| {
            Error::bigquery(
                ctx,
                crate::http::kind(&e),
                format!(
                    "BigQuery at {}: {}",
                    self.endpoint,
                    crate::http::describe(&e, &self.timeouts)
                ),
            )
        };
        let resp = req.send().await.map_err(unreachable)?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(unreachable)?;
        tracing::debug!(%method, path, status, ms = started.elapsed().as_millis() as u64, "{ctx}");
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok((status, value))
    }

    /// A call whose non-2xx answer is an error, retried while transient.
    async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        ctx: &str,
    ) -> Result<Value> {
        let (_, v) = self.answered(method, path, body.as_ref(), ctx, &[]).await?;
        Ok(v)
    }

    /// A call retried while transient, whose answer is an error unless it is 2xx or one of
    /// `expected` (a 404 or 409 the caller handles); returns the status and body.
    async fn answered(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        ctx: &str,
        expected: &[u16],
    ) -> Result<(u16, Value)> {
        retry::transient(ctx, || async {
            let (status, v) = self.call(method.clone(), path, body, ctx).await?;
            if (200..300).contains(&status) || expected.contains(&status) {
                Ok((status, v))
            } else {
                Err(http_error(ctx, status, &v))
            }
        })
        .await
    }

    /// Creates a dataset unless it exists. `table_expiration` sets the default table lifetime.
    pub async fn ensure_dataset(
        &self,
        dataset: &str,
        table_expiration: Option<Duration>,
    ) -> Result<()> {
        let ctx = format!("creating dataset {dataset}");
        let mut body = json!({
            "datasetReference": {"projectId": self.project, "datasetId": dataset},
            "location": self.location,
        });
        if let Some(d) = table_expiration {
            body["defaultTableExpirationMs"] = json!(d.as_millis().to_string());
        }
        self.answered(
            reqwest::Method::POST,
            "/datasets",
            Some(&body),
            &ctx,
            &[409],
        )
        .await
        .map(|_| ())
    }

    /// Deletes a dataset and its tables (tests clean up with this).
    pub async fn delete_dataset(&self, dataset: &str) -> Result<()> {
        let ctx = format!("deleting dataset {dataset}");
        let path = format!("/datasets/{dataset}?deleteContents=true");
        self.answered(reqwest::Method::DELETE, &path, None, &ctx, &[404])
            .await
            .map(|_| ())
    }

    /// The table resource, or None if it does not exist.
    pub async fn get_table(&self, dataset: &str, table: &str) -> Result<Option<Value>> {
        let ctx = format!("reading table {dataset}.{table}");
        let path = format!("/datasets/{dataset}/tables/{table}");
        let (status, v) = self
            .answered(reqwest::Method::GET, &path, None, &ctx, &[404])
            .await?;
        Ok((status != 404).then_some(v))
    }

    /// The schema of a table, or None if it does not exist.
    pub async fn table_schema(&self, dataset: &str, table: &str) -> Result<Option<Vec<Field>>> {
        let Some(t) = self.get_table(dataset, table).await? else {
            return Ok(None);
        };
        schema::from_json(&t["schema"]["fields"])
            .map(Some)
            .map_err(|e| {
                Error::bigquery(
                    format!("reading table {dataset}.{table}"),
                    ErrorKind::Permanent,
                    e,
                )
            })
    }

    /// Creates a table from a REST table resource (schema, partitioning, clustering); true if
    /// it was created, false if it already existed.
    pub async fn create_table(
        &self,
        dataset: &str,
        table: &str,
        mut resource: Value,
    ) -> Result<bool> {
        let ctx = format!("creating table {dataset}.{table}");
        resource["tableReference"] =
            json!({"projectId": self.project, "datasetId": dataset, "tableId": table});
        let path = format!("/datasets/{dataset}/tables");
        let (status, _) = self
            .answered(reqwest::Method::POST, &path, Some(&resource), &ctx, &[409])
            .await?;
        Ok(status != 409)
    }

    /// Sets a table's description and its schema fields' descriptions (the catalog lives in the
    /// warehouse). `fields` is the table's schema with descriptions filled in.
    pub async fn patch_descriptions(
        &self,
        dataset: &str,
        table: &str,
        description: Option<&str>,
        fields: &[Field],
    ) -> Result<()> {
        let ctx = format!("describing table {dataset}.{table}");
        let mut body = json!({"schema": {"fields": schema::to_json(fields)}});
        if let Some(d) = description {
            body["description"] = json!(d);
        }
        self.request(
            reqwest::Method::PATCH,
            &format!("/datasets/{dataset}/tables/{table}"),
            Some(body),
            &ctx,
        )
        .await
        .map(|_| ())
    }

    /// Replaces a table's schema fields (adding columns).
    pub async fn patch_schema(&self, dataset: &str, table: &str, fields: &[Field]) -> Result<()> {
        let ctx = format!("adding columns to {dataset}.{table}");
        self.request(
            reqwest::Method::PATCH,
            &format!("/datasets/{dataset}/tables/{table}"),
            Some(json!({"schema": {"fields": schema::to_json(fields)}})),
            &ctx,
        )
        .await
        .map(|_| ())
    }

    pub async fn delete_table(&self, dataset: &str, table: &str) -> Result<()> {
        let ctx = format!("deleting table {dataset}.{table}");
        let path = format!("/datasets/{dataset}/tables/{table}");
        self.answered(reqwest::Method::DELETE, &path, None, &ctx, &[404])
            .await
            .map(|_| ())
    }

    /// Runs a job with a caller-chosen id and waits for it. Inserting the same id again
    /// (a retried request, a rerun) finds the existing job instead of running it twice.
    pub async fn run_job(&self, job_id: &str, configuration: Value) -> Result<JobResult> {
        let ctx = format!("job {job_id}");
        let body = json!({
            "jobReference": {"projectId": self.project, "jobId": job_id, "location": self.location},
            "configuration": configuration,
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
        });
        // A query is not retried as a whole: DML may have run. Transient errors surface.
        let (status, mut resp) = self
            .call(reqwest::Method::POST, "/queries", Some(&body), &ctx)
            .await?;
        if !(200..300).contains(&status) {
            return Err(http_error(&ctx, status, &resp));
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

    /// Streams rows with insertAll; `insert_id` deduplicates retries. Fails on any row error.
    pub async fn insert_all(
        &self,
        dataset: &str,
        table: &str,
        rows: &[(String, Value)],
    ) -> Result<()> {
        let ctx = format!("inserting {} rows into {dataset}.{table}", rows.len());
        let body = json!({
            "kind": "bigquery#tableDataInsertAllRequest",
            "rows": rows.iter().map(|(id, json)| json!({"insertId": id, "json": json})).collect::<Vec<_>>(),
        });
        let resp = self
            .request(
                reqwest::Method::POST,
                &format!("/datasets/{dataset}/tables/{table}/insertAll"),
                Some(body),
                &ctx,
            )
            .await?;
        if let Some(errs) = resp["insertErrors"].as_array().filter(|a| !a.is_empty()) {
            return Err(Error::bigquery(
                ctx,
                ErrorKind::Permanent,
                errs[0].to_string(),
            ));
        }
        Ok(())
    }
}

/// A row insertAll refused, by its index in the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub index: usize,
    /// BigQuery's reason: `invalid` for the row itself, `stopped` for a good row not written
    /// because another row of the request was refused.
    pub reason: String,
    pub message: String,
}

impl BigQuery {
    /// One insertAll request, not retried, from rows already serialized as JSON objects:
    /// `(insert id, row)`. Ok holds the rows BigQuery refused (none were written then).
    pub async fn insert_all_raw(
        &self,
        dataset: &str,
        table: &str,
        rows: &[(&str, &[u8])],
    ) -> Result<Vec<RowError>> {
        let ctx = format!("inserting {} rows into {dataset}.{table}", rows.len());
        let size: usize = rows.iter().map(|(id, r)| id.len() + r.len() + 32).sum();
        let mut body = Vec::with_capacity(size + 64);
        body.extend_from_slice(br#"{"kind":"bigquery#tableDataInsertAllRequest","rows":["#);
        for (i, (id, row)) in rows.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(br#"{"insertId":"#);
            serde_json::to_writer(&mut body, id).unwrap_or_default();
            body.extend_from_slice(br#","json":"#);
            body.extend_from_slice(row);
            body.push(b'}');
        }
        body.extend_from_slice(b"]}");
        let (status, resp) = self
            .call_raw(
                reqwest::Method::POST,
                &format!("/datasets/{dataset}/tables/{table}/insertAll"),
                Some(body),
                &ctx,
            )
            .await?;
        if !(200..300).contains(&status) {
            return Err(http_error(&ctx, status, &resp));
        }
        Ok(row_errors(&resp))
    }
}

fn row_errors(resp: &Value) -> Vec<RowError> {
    let empty = vec![];
    resp["insertErrors"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .map(|e| {
            let first = &e["errors"][0];
            let location = first["location"].as_str().unwrap_or("");
            let message = first["message"].as_str().unwrap_or("");
            RowError {
                index: e["index"].as_u64().unwrap_or(0) as usize,
                reason: first["reason"].as_str().unwrap_or("").to_string(),
                message: if location.is_empty() {
                    message.to_string()
                } else {
                    format!("{location}: {message}")
                },
            }
        })
        .collect()
}

fn first_line(sql: &str) -> String {
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

/// Reasons BigQuery gives for errors worth retrying.
fn reason_is_transient(reason: &str) -> bool {
    matches!(
        reason,
        "backendError"
            | "internalError"
            | "rateLimitExceeded"
            | "jobRateLimitExceeded"
            | "tableUnavailable"
    )
}

/// BigQuery aborts one of two transactions that change the same table at once; the statement
/// can be retried.
fn is_concurrent_update(message: &str) -> bool {
    message.contains("concurrent update") || message.contains("Could not serialize access")
}

fn http_error(ctx: &str, status: u16, body: &Value) -> Error {
    let message = body["error"]["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| body.to_string());
    let reason = body["error"]["errors"][0]["reason"].as_str().unwrap_or("");
    let kind = if status >= 500
        || status == 429
        || reason_is_transient(reason)
        || is_concurrent_update(&message)
    {
        ErrorKind::Transient
    } else {
        ErrorKind::Permanent
    };
    Error::bigquery(ctx, kind, format!("HTTP {status}: {message}"))
}

fn job_error(ctx: &str, err: &Value, all: &Value) -> Error {
    let reason = err["reason"].as_str().unwrap_or("");
    let kind = if reason_is_transient(reason)
        || is_concurrent_update(err["message"].as_str().unwrap_or(""))
    {
        ErrorKind::Transient
    } else {
        ErrorKind::Permanent
    };
    let mut message = format!("{}: {}", reason, err["message"].as_str().unwrap_or(""));
    if let Some(more) = all.as_array().filter(|a| a.len() > 1) {
        message.push_str(&format!(" (+{} more errors)", more.len() - 1));
    }
    Error::bigquery(ctx, kind, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_errors_are_classified() {
        let body =
            json!({"error": {"message": "Access Denied", "errors": [{"reason": "accessDenied"}]}});
        assert_eq!(http_error("x", 403, &body).kind(), ErrorKind::Permanent);
        let body =
            json!({"error": {"message": "slow down", "errors": [{"reason": "rateLimitExceeded"}]}});
        assert_eq!(http_error("x", 403, &body).kind(), ErrorKind::Transient);
        assert_eq!(
            http_error("x", 503, &Value::Null).kind(),
            ErrorKind::Transient
        );
        let e = http_error(
            "creating table d.t",
            400,
            &json!({"error": {"message": "Invalid field name"}}),
        );
        assert_eq!(
            e.to_string(),
            "bigquery (creating table d.t): HTTP 400: Invalid field name"
        );
    }

    #[test]
    fn row_errors_are_read() {
        let resp = json!({"insertErrors": [
            {"index": 0, "errors": [{"reason": "stopped", "location": "", "message": ""}]},
            {"index": 1, "errors": [{"reason": "invalid", "location": "id", "message": "bad value"}]}
        ]});
        let e = row_errors(&resp);
        assert_eq!(e[0].reason, "stopped");
        assert_eq!(
            e[1],
            RowError {
                index: 1,
                reason: "invalid".into(),
                message: "id: bad value".into()
            }
        );
        assert!(row_errors(&json!({})).is_empty());
    }

    #[test]
    fn job_errors_are_classified() {
        let e = job_error(
            "job j",
            &json!({"reason": "invalid", "message": "bad parquet"}),
            &json!([{}, {}]),
        );
        assert_eq!(e.kind(), ErrorKind::Permanent);
        assert!(e
            .to_string()
            .contains("invalid: bad parquet (+1 more errors)"));
        let e = job_error(
            "job j",
            &json!({"reason": "backendError", "message": "retry"}),
            &Value::Null,
        );
        assert!(e.is_retryable());
    }
}

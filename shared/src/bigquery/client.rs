//! A small BigQuery REST v2 client: the transport (endpoint, auth, timeouts, one `answered`
//! helper that matches a status and retries). Its calls live by what they touch: `tables`
//! (datasets and tables), `jobs` (jobs and queries), `insert` (insertAll); `errors` classifies
//! what BigQuery answers.
//!
//! Endpoint injectable (the emulator), no gzip bodies, errors classified transient/permanent.
//! Tokens come from the metadata server on Cloud Run, or none for the emulator.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::Mutex;

use super::errors::http_error;
use crate::config::{Target, Timeouts};
use crate::error::{Error, ErrorKind, Result};
use crate::retry;
const GOOGLE_ENDPOINT: &str = "https://bigquery.googleapis.com";

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
    pub(super) http: reqwest::Client,
    pub(super) base: String,
    /// The endpoint as configured, for messages.
    pub(super) endpoint: String,
    pub(super) timeouts: Timeouts,
    pub(super) project: String,
    pub(super) location: String,
    auth: Arc<Auth>,
}

impl std::fmt::Debug for BigQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BigQuery({} at {})", self.project, self.base)
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
    pub(super) fn server_wait_ms(&self) -> u64 {
        (self.timeouts.request.as_millis() as u64 / 2).clamp(100, 10_000)
    }

    pub(super) async fn token(&self) -> Result<Option<String>> {
        match self.auth.as_ref() {
            Auth::None => Ok(None),
            Auth::Metadata(cache) => {
                let mut c = cache.lock().await;
                if let Some((t, until)) = c.as_ref() {
                    if Instant::now() < *until {
                        return Ok(Some(t.clone()));
                    }
                }
                let (token, ttl) = crate::http::metadata_token(&self.http).await.map_err(|e| {
                    Error::bigquery(
                        "getting a token from the metadata server",
                        ErrorKind::Permanent,
                        format!("{}; outside Google Cloud use a target with `no_auth: true` (the emulator)", crate::http::describe(&e, &self.timeouts)),
                    )
                })?;
                // Renewed a minute before it expires.
                let ttl = ttl.saturating_sub(Duration::from_secs(60));
                *c = Some((token.clone(), Instant::now() + ttl));
                Ok(Some(token))
            }
        }
    }

    /// One REST call; returns (status, body). Transport errors are transient.
    pub(super) async fn call(
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
    pub(super) async fn call_raw(
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
    pub(super) async fn request(
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
    pub(super) async fn answered(
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
}

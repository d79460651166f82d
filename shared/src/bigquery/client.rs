//! A small BigQuery REST v2 client: the transport (endpoint, auth, timeouts, one `answered`
//! helper that matches a status and retries). Its calls live by what they touch: `tables`
//! (datasets and tables), `jobs` (jobs and queries), `insert` (insertAll); `errors` classifies
//! what BigQuery answers.
//!
//! Endpoint injectable (the emulator), no gzip bodies, errors classified transient/permanent.
//! Tokens come from `crate::auth` (Application Default Credentials), or none for the emulator;
//! a refusal (401, 403) names the principal refused.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;

use super::errors::http_error;
use crate::auth::Auth;
use crate::config::{Target, Timeouts};
use crate::error::{Error, ErrorKind, Result};
use crate::retry;
const GOOGLE_ENDPOINT: &str = "https://bigquery.googleapis.com";

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
    auth: Auth,
    /// Labels every job carries (`sluice_worker`, `sluice_target`, `sluice_run`, the table or
    /// mart), so its cost can be told apart in `INFORMATION_SCHEMA.JOBS` and billing exports.
    pub(super) labels: Arc<BTreeMap<String, String>>,
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
        let auth = Auth::for_target(target);
        BigQuery::new(
            &base,
            &target.project,
            &target.location,
            auth,
            target.timeouts,
        )
    }

    /// A client for one run of a worker: every job it runs is labelled with the worker, the
    /// target and the run (`sluice_worker`, `sluice_target`, `sluice_run`).
    pub fn for_run(target: &Target, worker: &str, run_id: &str) -> Result<BigQuery> {
        Ok(BigQuery::for_target(target)?
            .labelled("sluice_worker", worker)
            .labelled("sluice_target", &target.name)
            .labelled("sluice_run", run_id))
    }

    /// A client for the emulator at `endpoint`, without credentials (the tests and the bench;
    /// workers reach the emulator through their target).
    #[cfg(feature = "test-utils")]
    pub fn emulator(endpoint: &str, project: &str) -> Result<BigQuery> {
        BigQuery::new(endpoint, project, "US", Auth::none(), Timeouts::default())
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
            auth,
            labels: Arc::default(),
        })
    }

    /// Who its requests act as (the target's credentials), for the lake and other clients.
    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    pub fn project(&self) -> &str {
        &self.project
    }

    /// How long BigQuery may hold a query request open waiting for the job (`timeoutMs`): well
    /// inside the request timeout, so a slow job is polled, never taken for a silent endpoint.
    pub(super) fn server_wait_ms(&self) -> u64 {
        (self.timeouts.request.as_millis() as u64 / 2).clamp(100, 10_000)
    }

    /// This client with one more label on every job it runs; keys and values are cleaned to
    /// BigQuery's rules (lowercase letters, digits, `_` and `-`, at most 63 characters).
    pub fn labelled(&self, key: &str, value: &str) -> BigQuery {
        let mut labels = (*self.labels).clone();
        labels.insert(label_text(key), label_text(value));
        BigQuery {
            labels: Arc::new(labels),
            ..self.clone()
        }
    }

    /// The labels as the REST API takes them.
    pub(super) fn labels_json(&self) -> Value {
        serde_json::to_value(&*self.labels).unwrap_or_default()
    }

    /// The error for a non-2xx answer; a refusal names who was refused.
    pub(super) async fn refused(&self, ctx: &str, status: u16, body: &Value) -> Error {
        let e = http_error(ctx, status, body);
        if matches!(status, 401 | 403) && e.kind() == ErrorKind::Permanent {
            if let Error::BigQuery { message, .. } = &e {
                return Error::bigquery(
                    ctx,
                    ErrorKind::Permanent,
                    format!("{message} (as {})", self.auth.principal().await),
                );
            }
        }
        e
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
        if let Some(t) = self.auth.token().await? {
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
                Err(self.refused(ctx, status, &v).await)
            }
        })
        .await
    }
}

/// A label key or value as BigQuery takes it: lowercase letters, digits, `_` and `-`, at most
/// 63 characters (`billing.invoices` → `billing_invoices`).
pub fn label_text(s: &str) -> String {
    s.chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '_' | '-') => c,
            _ => '_',
        })
        .take(63)
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn labels_follow_bigquerys_rules() {
        assert_eq!(super::label_text("Billing.Invoices"), "billing_invoices");
        assert_eq!(super::label_text("pr-42"), "pr-42");
        assert_eq!(super::label_text(&"x".repeat(100)).len(), 63);
    }
}

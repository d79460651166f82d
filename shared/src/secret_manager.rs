//! Reading a secret from Secret Manager with the runtime's service account.

use base64::Engine as _;

use crate::config::Timeouts;
use crate::error::{Error, Result};
use crate::secret::Secret;

/// Fetches `projects/P/secrets/S[/versions/V]` (latest version when none is named), each
/// request bounded by `timeouts`.
pub async fn access(name: &str, timeouts: &Timeouts) -> Result<Secret> {
    let err = |m: String| Error::Secret {
        name: name.to_string(),
        message: m,
    };
    let resource = if name.contains("/versions/") {
        name.to_string()
    } else {
        format!("{name}/versions/latest")
    };
    let http = crate::http::client(timeouts).map_err(|e| err(e.to_string()))?;
    let (token, _) = crate::http::metadata_token(&http).await.map_err(|e| {
        err(format!(
            "no token from the metadata server ({}); use `dsn: {{env: …}}` outside Google Cloud",
            crate::http::describe(&e, timeouts)
        ))
    })?;
    let resp = http
        .get(format!(
            "https://secretmanager.googleapis.com/v1/{resource}:access"
        ))
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| {
            err(format!(
                "Secret Manager: {}",
                crate::http::describe(&e, timeouts)
            ))
        })?;
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.map_err(|e| err(e.to_string()))?;
    if !status.is_success() {
        return Err(err(format!(
            "HTTP {status}: {}",
            body["error"]["message"].as_str().unwrap_or("")
        )));
    }
    let data = body["payload"]["data"].as_str().unwrap_or_default();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|e| err(format!("payload is not base64: {e}")))?;
    String::from_utf8(bytes)
        .map(|s| Secret::new(s.trim_end().to_string()))
        .map_err(|_| err("payload is not UTF-8".into()))
}

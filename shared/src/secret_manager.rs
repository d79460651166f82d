//! Reading a secret (a source's DSN) from Secret Manager, through the official
//! `google-cloud-secretmanager-v1` crate, as the target's credentials (`crate::auth`).

use crate::auth::Auth;
use crate::config::Target;
use crate::error::{Error, Result};
use crate::secret::Secret;
use google_cloud_secretmanager_v1::client::SecretManagerService;

/// Fetches `projects/P/secrets/S[/versions/V]` (the latest version when none is named), each
/// attempt bounded by the target's request timeout.
pub async fn access(name: &str, target: &Target) -> Result<Secret> {
    let err = |m: String| Error::Secret {
        name: name.to_string(),
        message: m,
    };
    let resource = if name.contains("/versions/") {
        name.to_string()
    } else {
        format!("{name}/versions/latest")
    };
    crate::install_crypto();
    let auth = Auth::for_target(target);
    let mut builder = SecretManagerService::builder()
        .with_credentials(auth.credentials().await?)
        .with_attempt_timeout(target.timeouts.request);
    if let Some(endpoint) = &target.secret_manager_endpoint {
        builder = builder.with_endpoint(endpoint.clone());
    }
    let client = builder
        .build()
        .await
        .map_err(|e| err(format!("building the client: {e}")))?;
    // The whole call, its own retries included, within three attempts' time.
    let limit = target.timeouts.request * 3;
    let call = client.access_secret_version().set_name(&resource).send();
    let answer = match tokio::time::timeout(limit, call).await {
        Ok(answer) => answer,
        Err(_) => {
            return Err(err(format!(
                "Secret Manager did not answer within {} (3 × timeouts.request of the target)",
                crate::http::secs(limit)
            )))
        }
    };
    let version = match answer {
        Ok(v) => v,
        Err(e) => {
            let refused = matches!(e.http_status_code(), Some(401 | 403))
                || e.status().is_some_and(|s| {
                    matches!(
                        s.code,
                        google_cloud_gax::error::rpc::Code::PermissionDenied
                            | google_cloud_gax::error::rpc::Code::Unauthenticated
                    )
                });
            let said = match e.status() {
                Some(s) => format!("{:?}: {}", s.code, s.message),
                None => e.to_string(),
            };
            return Err(err(if refused {
                format!(
                    "{said} (as {}; it needs roles/secretmanager.secretAccessor on the secret)",
                    auth.principal().await
                )
            } else {
                said
            }));
        }
    };
    let data = version.payload.map(|p| p.data).unwrap_or_default();
    String::from_utf8(data.to_vec())
        .map(|s| Secret::new(s.trim_end().to_string()))
        .map_err(|_| err("payload is not UTF-8".into()))
}

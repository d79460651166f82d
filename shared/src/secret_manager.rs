//! Reading a secret (a source's DSN) from Secret Manager, through the official
//! `google-cloud-secretmanager-v1` crate, as the target's credentials (`crate::auth`), or from
//! the environment, as its `DsnRef` says (`resolve_dsn`); and counting a secret's enabled
//! versions without reading them (`monitor doctor`).

use crate::auth::Auth;
use crate::config::Target;
use crate::error::{Error, Result};
use crate::google;
use crate::secret::{DsnRef, Secret};

/// Resolves a DSN reference to the connection string (from Secret Manager as the target's
/// credentials, within its timeouts).
pub async fn resolve_dsn(r: &DsnRef, target: &Target) -> Result<Secret> {
    match r {
        DsnRef::Env(var) => match std::env::var(var) {
            Ok(v) if !v.is_empty() => Ok(Secret::new(v)),
            _ => Err(Error::config(format!(
                "environment variable {var} (the source's dsn) is not set"
            ))),
        },
        DsnRef::Secret(name) => access(name, target).await,
    }
}
use google_cloud_secretmanager_v1::client::SecretManagerService;

/// A client for the target's Secret Manager endpoint, as its principal.
async fn client(
    target: &Target,
    auth: &Auth,
    err: &dyn Fn(String) -> Error,
) -> Result<SecretManagerService> {
    crate::install_crypto();
    let mut builder = SecretManagerService::builder()
        .with_credentials(auth.credentials().await?)
        .with_attempt_timeout(target.timeouts.request);
    if let Some(endpoint) = &target.secret_manager_endpoint {
        builder = builder.with_endpoint(endpoint.clone());
    }
    builder
        .build()
        .await
        .map_err(|e| err(format!("building the client: {e}")))
}

/// Awaits a call within three attempts' time (its own retries included), and says a refusal
/// with who was refused and the role that `needs` names.
async fn answer<T>(
    call: impl std::future::Future<Output = google_cloud_secretmanager_v1::Result<T>>,
    target: &Target,
    auth: &Auth,
    needs: &str,
    err: &dyn Fn(String) -> Error,
) -> Result<std::result::Result<T, google_cloud_gax::error::Error>> {
    let answer = google::bounded(target.timeouts.request, call)
        .await
        .map_err(|m| err(format!("Secret Manager: {m}")))?;
    match answer {
        Ok(v) => Ok(Ok(v)),
        Err(e) if google::refused(&e) => Err(err(format!(
            "{} (as {}; it needs {needs})",
            google::describe(&e),
            auth.principal().await
        ))),
        Err(e) => Ok(Err(e)),
    }
}

fn error_for(name: &str) -> impl Fn(String) -> Error + '_ {
    move |m: String| Error::Secret {
        name: name.to_string(),
        message: m,
    }
}

/// Fetches `projects/P/secrets/S[/versions/V]` (the latest version when none is named), each
/// attempt bounded by the target's request timeout.
pub async fn access(name: &str, target: &Target) -> Result<Secret> {
    let err = error_for(name);
    let resource = if name.contains("/versions/") {
        name.to_string()
    } else {
        format!("{name}/versions/latest")
    };
    let auth = Auth::for_target(target);
    let client = client(target, &auth, &err).await?;
    let call = client.access_secret_version().set_name(&resource).send();
    let version = answer(
        call,
        target,
        &auth,
        "roles/secretmanager.secretAccessor on the secret",
        &err,
    )
    .await?
    .map_err(|e| err(google::describe(&e)))?;
    let data = version.payload.map(|p| p.data).unwrap_or_default();
    String::from_utf8(data.to_vec())
        .map(|s| Secret::new(s.trim_end().to_string()))
        .map_err(|_| err("payload is not UTF-8".into()))
}

/// How many enabled versions `projects/P/secrets/S` has (none: the secret is there but
/// empty), without reading any; `None` when the secret itself does not exist.
pub async fn enabled_versions(name: &str, target: &Target) -> Result<Option<usize>> {
    let err = error_for(name);
    let parent = name.split("/versions/").next().unwrap_or(name);
    let auth = Auth::for_target(target);
    let client = client(target, &auth, &err).await?;
    let call = client
        .list_secret_versions()
        .set_parent(parent)
        .set_filter("state:ENABLED")
        .send();
    match answer(
        call,
        target,
        &auth,
        "secretmanager.versions.list, e.g. roles/secretmanager.viewer",
        &err,
    )
    .await?
    {
        Ok(list) => Ok(Some(list.versions.len())),
        Err(e) if google::not_found(&e) => Ok(None),
        Err(e) => Err(err(google::describe(&e))),
    }
}

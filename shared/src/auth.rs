//! Who sluice acts as on Google Cloud: Application Default Credentials, through the official
//! `google-cloud-auth` crate, for every Google call (BigQuery, Secret Manager, Pub/Sub, the GCS
//! lake). In the order the crate looks: the file `GOOGLE_APPLICATION_CREDENTIALS` names (a
//! service-account key, an external account of workload identity federation, an impersonated
//! service account), `gcloud auth application-default login`'s user credentials, then the
//! metadata server (Cloud Run). Tokens are cached by the crate and refreshed before they expire.
//! A target with `no_auth: true` (the emulators) sends none.
//!
//! What is ours: one set of credentials per target, shared by all its clients (one token cache,
//! built on first use); a bound on the time a token may take (the target's `timeouts.request`);
//! and the principal named in words, so a refusal says who was refused (`Principal`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use google_cloud_auth::credentials::{self, AccessTokenCredentials, Credentials};

use crate::config::{Target, Timeouts};
use crate::error::{Error, ErrorKind, Result};

/// The scope of every token: IAM roles decide what each service account may do.
const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// Credentials for a target's Google calls, or none for the emulators. Cheap to clone.
#[derive(Clone)]
pub struct Auth {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    /// Built on first use, inside the runtime (the crate's token cache spawns its refresh task).
    tokens: tokio::sync::OnceCell<std::result::Result<AccessTokenCredentials, String>>,
    principal: Principal,
    timeouts: Timeouts,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            None => f.write_str("Auth(none)"),
            Some(i) => write!(f, "Auth({})", i.principal),
        }
    }
}

impl Auth {
    /// No credentials: the emulators take any request.
    pub fn none() -> Auth {
        Auth { inner: None }
    }

    /// A target's credentials: none with `no_auth`, its Application Default Credentials
    /// otherwise; built on the first call, then the same set for every client of the target
    /// (and of its clones), so they share one token cache.
    pub fn for_target(target: &Target) -> Auth {
        target.credentials(|t| {
            if t.no_auth {
                Auth::none()
            } else {
                Auth::application_default(&t.timeouts)
            }
        })
    }

    /// Application Default Credentials, each token fetched within `timeouts.request`. Which
    /// file (if any) they come from is read now; the credentials are built on first use.
    pub fn application_default(timeouts: &Timeouts) -> Auth {
        Auth {
            inner: Some(Arc::new(Inner {
                tokens: tokio::sync::OnceCell::new(),
                principal: Principal::find(),
                timeouts: *timeouts,
            })),
        }
    }

    /// Whether requests carry a token.
    pub fn is_none(&self) -> bool {
        self.inner.is_none()
    }

    /// A current access token (None without credentials), within the request timeout.
    pub async fn token(&self) -> Result<Option<String>> {
        let Some(inner) = &self.inner else {
            return Ok(None);
        };
        let limit = inner.timeouts.request;
        let tokens = inner.tokens().await?;
        match tokio::time::timeout(limit, tokens.access_token()).await {
            Ok(Ok(t)) => Ok(Some(t.token)),
            Ok(Err(e)) => Err(Error::Auth {
                message: format!("getting a token for {}: {}", inner.principal, chain(&e)),
                kind: if e.is_transient() {
                    ErrorKind::Unanswered
                } else {
                    ErrorKind::Permanent
                },
            }),
            Err(_) => Err(Error::Auth {
                message: format!(
                    "getting a token for {}: no answer within {} (timeouts.request of the target)",
                    inner.principal,
                    crate::time::secs(limit)
                ),
                kind: ErrorKind::Unanswered,
            }),
        }
    }

    /// The credentials for Google's own client crates (Pub/Sub, Secret Manager): these, or
    /// anonymous ones without credentials.
    pub async fn credentials(&self) -> Result<Credentials> {
        match &self.inner {
            Some(i) => Ok(i.tokens().await?.clone().into()),
            None => Ok(credentials::anonymous::Builder::new().build()),
        }
    }

    /// Who the requests are made as, in words, for messages; on the metadata server its
    /// service account's email, asked within the request timeout.
    pub async fn principal(&self) -> String {
        match &self.inner {
            None => "no credentials (no_auth)".to_string(),
            Some(i) => match &i.principal {
                Principal::Metadata => match metadata_email(&i.timeouts).await {
                    Some(email) => format!("{email} (the runtime's service account)"),
                    None => i.principal.to_string(),
                },
                p => p.to_string(),
            },
        }
    }
}

impl Inner {
    async fn tokens(&self) -> Result<&AccessTokenCredentials> {
        let built = self
            .tokens
            .get_or_init(|| async {
                crate::install_crypto();
                credentials::Builder::default()
                    .with_scopes([SCOPE])
                    .build_access_token_credentials()
                    .map_err(|e| chain(&e))
            })
            .await;
        built.as_ref().map_err(|e| Error::Auth {
            message: format!("{}: {e}", self.principal),
            kind: ErrorKind::Permanent,
        })
    }
}

/// Where the credentials come from, read from the same files the crate reads, to name them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A credentials file of the given `type`, with the account it names when it names one.
    File {
        path: PathBuf,
        kind: String,
        account: Option<String>,
        /// Set by `GOOGLE_APPLICATION_CREDENTIALS` (otherwise gcloud's well-known file).
        from_env: bool,
    },
    /// No file: the metadata server's service account.
    Metadata,
}

impl Principal {
    /// The credentials file in use, as google-cloud-auth looks for it.
    pub fn find() -> Principal {
        let (path, from_env) = match std::env::var_os("GOOGLE_APPLICATION_CREDENTIALS") {
            Some(p) => (PathBuf::from(p), true),
            None => match std::env::var_os("HOME") {
                Some(home) => (
                    PathBuf::from(home).join(".config/gcloud/application_default_credentials.json"),
                    false,
                ),
                None => return Principal::Metadata,
            },
        };
        if !from_env && !path.exists() {
            return Principal::Metadata;
        }
        let json: serde_json::Value = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        Principal::File {
            kind: json["type"].as_str().unwrap_or("unknown").to_string(),
            account: account_of(&json),
            path,
            from_env,
        }
    }
}

/// The account a credentials file acts as, where the file says it.
fn account_of(json: &serde_json::Value) -> Option<String> {
    if let Some(email) = json["client_email"].as_str() {
        return Some(email.to_string());
    }
    // External and impersonated accounts name the service account in their impersonation URL:
    // `…/serviceAccounts/<email>:generateAccessToken`.
    let impersonated = json["service_account_impersonation_url"]
        .as_str()
        .and_then(|url| url.rsplit("serviceAccounts/").next())
        .and_then(|tail| tail.split(':').next())
        .filter(|email| email.contains('@'));
    if let Some(email) = impersonated {
        return Some(email.to_string());
    }
    // A federated identity without impersonation acts as itself, in its pool.
    json["audience"]
        .as_str()
        .map(|pool| format!("an identity of {pool}"))
}

impl std::fmt::Display for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Principal::Metadata => f.write_str("the runtime's service account (metadata server)"),
            Principal::File {
                path,
                kind,
                account,
                from_env,
            } => {
                let what = match kind.as_str() {
                    "service_account" => "service-account key",
                    "authorized_user" => "gcloud user credentials",
                    "external_account" => "external account (workload identity federation)",
                    "impersonated_service_account" => "impersonated service account",
                    _ => "credentials",
                };
                if let Some(a) = account {
                    write!(f, "{a} ({what} ")?;
                } else {
                    write!(f, "{what} (")?;
                }
                if *from_env {
                    write!(
                        f,
                        "{}, from GOOGLE_APPLICATION_CREDENTIALS)",
                        path.display()
                    )
                } else {
                    write!(f, "{})", path.display())
                }
            }
        }
    }
}

/// The metadata server's service account email, if it answers in time.
async fn metadata_email(timeouts: &Timeouts) -> Option<String> {
    let host =
        std::env::var("GCE_METADATA_HOST").unwrap_or_else(|_| "metadata.google.internal".into());
    let http = crate::http::client(&Timeouts {
        request: timeouts.request.min(Duration::from_secs(5)),
        ..*timeouts
    })
    .ok()?;
    let resp = http
        .get(format!(
            "http://{host}/computeMetadata/v1/instance/service-accounts/default/email"
        ))
        .header("Metadata-Flavor", "Google")
        .send()
        .await
        .ok()?
        .error_for_status()
        .ok()?;
    resp.text().await.ok().filter(|t| t.contains('@'))
}

/// An error with its causes, each once.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    crate::error::causes(e).fold(e.to_string(), |message, s| {
        let s_text = s.to_string();
        if message.contains(&s_text) {
            message
        } else {
            format!("{message}: {s_text}")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_principal_is_named_by_its_file() {
        let p = Principal::File {
            path: "/k.json".into(),
            kind: "service_account".into(),
            account: account_of(&json!({"client_email": "pg-copy@p.iam.gserviceaccount.com"})),
            from_env: true,
        };
        assert_eq!(
            p.to_string(),
            "pg-copy@p.iam.gserviceaccount.com (service-account key /k.json, from GOOGLE_APPLICATION_CREDENTIALS)"
        );
        let p = Principal::File {
            path: "/h/.config/gcloud/application_default_credentials.json".into(),
            kind: "authorized_user".into(),
            account: None,
            from_env: false,
        };
        assert_eq!(
            p.to_string(),
            "gcloud user credentials (/h/.config/gcloud/application_default_credentials.json)"
        );
        assert_eq!(
            Principal::Metadata.to_string(),
            "the runtime's service account (metadata server)"
        );
    }

    #[test]
    fn an_external_account_is_named_by_the_account_it_impersonates() {
        let j = json!({
            "type": "external_account",
            "audience": "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/gh/providers/gh",
            "service_account_impersonation_url": "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/ci@p.iam.gserviceaccount.com:generateAccessToken",
        });
        assert_eq!(
            account_of(&j).as_deref(),
            Some("ci@p.iam.gserviceaccount.com")
        );
        let j = json!({"type": "external_account", "audience": "//iam.googleapis.com/pool"});
        assert_eq!(
            account_of(&j).as_deref(),
            Some("an identity of //iam.googleapis.com/pool")
        );
        assert_eq!(account_of(&json!({"type": "authorized_user"})), None);
    }
}

//! The OIDC token Pub/Sub attaches to push requests: a Google-signed RS256 JWT whose audience
//! is the one configured on the push subscription and whose `email` is its service account.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sluice::config::PushAuth;

const ISSUERS: [&str; 2] = ["https://accounts.google.com", "accounts.google.com"];
/// Keys are fetched again after this long, or sooner when a token names an unknown key
/// (Google rotates them), but not more often than `MIN_REFRESH`.
const KEYS_TTL: Duration = Duration::from_secs(3600);
const MIN_REFRESH: Duration = Duration::from_secs(30);

#[derive(Debug, Deserialize)]
struct Claims {
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    email_verified: Option<bool>,
}

/// Checks push tokens against a key set.
pub struct Verifier {
    config: PushAuth,
    http: reqwest::Client,
    keys: Mutex<Option<(JwkSet, Instant)>>,
}

/// Why a request was refused: 401 without a token, 403 with a bad one.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    Missing,
    Invalid(String),
}

impl Verifier {
    pub fn new(config: PushAuth) -> Verifier {
        let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
        sluice::install_crypto();
        Verifier {
            config,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
            keys: Mutex::new(None),
        }
    }

    /// Loads the key set now, so a wrong `jwks` setting fails at start-up.
    pub async fn preload(&self) -> sluice::Result<usize> {
        let set = self.fetch().await?;
        let n = set.keys.len();
        *self.keys.lock().unwrap_or_else(|p| p.into_inner()) = Some((set, Instant::now()));
        Ok(n)
    }

    async fn fetch(&self) -> sluice::Result<JwkSet> {
        let src = &self.config.jwks;
        let text = if src.starts_with("http://") || src.starts_with("https://") {
            let resp = self.http.get(src).send().await.map_err(|e| {
                sluice::Error::config(format!("fetching push token keys from {src}: {e}"))
            })?;
            if !resp.status().is_success() {
                return Err(sluice::Error::config(format!(
                    "fetching push token keys from {src}: HTTP {}",
                    resp.status()
                )));
            }
            resp.text().await.map_err(|e| {
                sluice::Error::config(format!("reading push token keys from {src}: {e}"))
            })?
        } else {
            tokio::fs::read_to_string(src).await.map_err(|e| {
                sluice::Error::config(format!("reading push token keys from {src}: {e}"))
            })?
        };
        serde_json::from_str(&text).map_err(|e| {
            sluice::Error::config(format!("push token keys at {src} are not a JWK set: {e}"))
        })
    }

    fn cached_key(&self, kid: &str) -> (Option<DecodingKey>, bool) {
        let guard = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        match guard.as_ref() {
            None => (None, true),
            Some((set, at)) => {
                let key = set.find(kid).and_then(|k| DecodingKey::from_jwk(k).ok());
                let stale =
                    at.elapsed() > KEYS_TTL || (key.is_none() && at.elapsed() > MIN_REFRESH);
                (key, stale)
            }
        }
    }

    /// Checks the `Authorization` header's bearer token.
    pub async fn verify(&self, authorization: Option<&str>) -> Result<(), Refused> {
        let token = authorization
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(Refused::Missing)?;
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| Refused::Invalid(format!("not a JWT: {e}")))?;
        if header.alg != Algorithm::RS256 {
            return Err(Refused::Invalid(format!(
                "algorithm {:?}, expected RS256",
                header.alg
            )));
        }
        let kid = header.kid.unwrap_or_default();
        let (mut key, stale) = self.cached_key(&kid);
        if stale {
            match self.fetch().await {
                Ok(set) => {
                    key = set.find(&kid).and_then(|k| DecodingKey::from_jwk(k).ok());
                    *self.keys.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some((set, Instant::now()));
                }
                Err(e) if key.is_some() => {
                    tracing::warn!(error = %e, "refreshing push token keys failed; keeping the old ones")
                }
                Err(e) => return Err(Refused::Invalid(e.into_message())),
            }
        }
        let key = key.ok_or_else(|| Refused::Invalid(format!("signed by unknown key `{kid}`")))?;
        let mut v = Validation::new(Algorithm::RS256);
        v.set_audience(&[&self.config.audience]);
        v.set_issuer(&ISSUERS);
        v.set_required_spec_claims(&["exp", "aud", "iss"]);
        let data = jsonwebtoken::decode::<Claims>(token, &key, &v)
            .map_err(|e| Refused::Invalid(e.to_string()))?;
        let c = data.claims;
        if c.email.as_deref() != Some(self.config.service_account.as_str()) {
            return Err(Refused::Invalid(format!(
                "token is for {}, not the push service account {}",
                c.email.as_deref().unwrap_or("no email"),
                self.config.service_account
            )));
        }
        if c.email_verified != Some(true) {
            return Err(Refused::Invalid("token's email is not verified".into()));
        }
        Ok(())
    }
}

//! The OIDC token Pub/Sub attaches to push requests: a Google-signed RS256 JWT whose audience
//! is the one configured on the push subscription and whose `email` is its service account.
//!
//! Which checks run where:
//! - **On Cloud Run** (`K_SERVICE` set) the service is private: Cloud Run checks the token's
//!   signature, expiry and audience and the caller's `run.invoker` role before the request
//!   arrives, then forwards the token with its signature replaced by
//!   `SIGNATURE_REMOVED_BY_GOOGLE`. Such a token's claims are still checked here: a Google
//!   issuer, the configured audience, `email` the push account (verified), not expired. A
//!   token that still carries a signature is verified as below.
//! - **Elsewhere** (a laptop, another host, `--lambda`) every token's RS256 signature is
//!   verified against `push.jwks` (Google's keys by default), then the same claims; a token
//!   without its signature is refused, since nothing here checked it.
//!
//! Why not `google-cloud-auth`'s ID-token verifier (feature `idtoken`): its key cache takes its
//! lock with `try_write` and fails the verification when another request holds it, which a
//! push service with 80 concurrent requests would hit; its key fetch has no timeout; it reads
//! keys from a URL only (tests and air-gapped hosts use a file); and it brings a second
//! jsonwebtoken major version.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sluice::config::PushAuth;

const ISSUERS: [&str; 2] = ["https://accounts.google.com", "accounts.google.com"];
/// What Cloud Run puts in place of the signature of a token it checked.
pub const SIGNATURE_REMOVED: &str = "SIGNATURE_REMOVED_BY_GOOGLE";
/// The header Cloud Run checks instead of `Authorization` when a request has it.
const CHECKED_HEADER: &str = "x-serverless-authorization";
/// Clock skew allowed on `exp` (jsonwebtoken's default leeway).
const LEEWAY_S: i64 = 60;
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

/// The claims Cloud Run leaves for the container to read (its signature already checked).
#[derive(Debug, Deserialize)]
struct ForwardedClaims {
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    aud: Option<Audience>,
    #[serde(default)]
    exp: Option<i64>,
    #[serde(flatten)]
    who: Claims,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

/// Who checks a token's signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    /// Cloud Run checked it and removed it: the claims are checked here.
    CloudRun,
    /// Nothing in front of the service checks tokens: the signature is verified here.
    Elsewhere,
}

impl Platform {
    /// Cloud Run sets `K_SERVICE` in every service container (its container contract). Knative
    /// sets it too, without an IAM check in front: there `SLUICE_PUSH_TOKEN_CHECK=signature`
    /// keeps every signature verified here.
    pub fn detect() -> Platform {
        Platform::from_env(
            std::env::var("SLUICE_PUSH_TOKEN_CHECK").ok().as_deref(),
            std::env::var_os("K_SERVICE").is_some_and(|v| !v.is_empty()),
        )
    }

    fn from_env(check: Option<&str>, k_service: bool) -> Platform {
        match check {
            Some("signature") => Platform::Elsewhere,
            _ if k_service => Platform::CloudRun,
            _ => Platform::Elsewhere,
        }
    }
}

/// Checks push tokens against a key set.
pub struct Verifier {
    config: PushAuth,
    platform: Platform,
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
    /// A verifier for the platform this process runs on (`Platform::detect`).
    pub fn new(config: PushAuth) -> Verifier {
        Verifier::on(config, Platform::detect())
    }

    pub fn on(config: PushAuth, platform: Platform) -> Verifier {
        let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
        sluice::install_crypto();
        Verifier {
            config,
            platform,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
            keys: Mutex::new(None),
        }
    }

    /// Who checks signatures for this verifier.
    pub fn platform(&self) -> Platform {
        self.platform
    }

    /// The `Bearer` header this service judges. Cloud Run checks `X-Serverless-Authorization`
    /// when a request has it and then passes `Authorization` through unchecked, so there that
    /// header wins; Pub/Sub sends only `Authorization`, the one read everywhere else.
    pub fn token_header<'h>(&self, headers: &'h axum::http::HeaderMap) -> Option<&'h str> {
        let serverless = match self.platform {
            Platform::CloudRun => headers.get(CHECKED_HEADER),
            Platform::Elsewhere => None,
        };
        serverless
            .or_else(|| headers.get(axum::http::header::AUTHORIZATION))
            .and_then(|h| h.to_str().ok())
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
        if token.rsplit('.').next() == Some(SIGNATURE_REMOVED) {
            return match self.platform {
                Platform::CloudRun => self.check_forwarded(token),
                Platform::Elsewhere => Err(Refused::Invalid(
                    "the token's signature was removed (as Cloud Run forwards a token it checked), but this service is not on Cloud Run (K_SERVICE is not set), so nothing checked it".into(),
                )),
            };
        }
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
        self.check_account(&data.claims)
    }

    /// A token Cloud Run checked and forwarded without its signature: its claims.
    fn check_forwarded(&self, token: &str) -> Result<(), Refused> {
        use base64::Engine;
        let payload = token.split('.').nth(1).unwrap_or_default();
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .map_err(|e| {
                Refused::Invalid(format!("not a JWT: its claims are not base64url ({e})"))
            })?;
        let c: ForwardedClaims = serde_json::from_slice(&bytes)
            .map_err(|e| Refused::Invalid(format!("not a JWT: its claims are not JSON ({e})")))?;
        if !c.iss.as_deref().is_some_and(|i| ISSUERS.contains(&i)) {
            return Err(Refused::Invalid(format!(
                "token issued by {}, not Google",
                c.iss.as_deref().unwrap_or("no issuer")
            )));
        }
        let audiences = match &c.aud {
            Some(Audience::One(a)) => vec![a.as_str()],
            Some(Audience::Many(v)) => v.iter().map(String::as_str).collect(),
            None => vec![],
        };
        if !audiences.contains(&self.config.audience.as_str()) {
            return Err(Refused::Invalid(format!(
                "token is for audience {}, not {} (events.push.audience)",
                if audiences.is_empty() {
                    "(none)".to_string()
                } else {
                    audiences.join(", ")
                },
                self.config.audience
            )));
        }
        let now = chrono::Utc::now().timestamp();
        match c.exp {
            Some(exp) if exp + LEEWAY_S >= now => {}
            Some(exp) => {
                return Err(Refused::Invalid(format!(
                    "token expired {} s ago",
                    now - exp
                )))
            }
            None => return Err(Refused::Invalid("token has no expiry (exp)".into())),
        }
        self.check_account(&c.who)
    }

    fn check_account(&self, c: &Claims) -> Result<(), Refused> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    const AUD: &str = "https://log-ingest-abc-uc.a.run.app/";
    const SA: &str = "push@p.iam.gserviceaccount.com";

    fn verifier(platform: Platform) -> Verifier {
        Verifier::on(
            PushAuth {
                audience: AUD.into(),
                service_account: SA.into(),
                jwks: "/nonexistent/jwks.json".into(),
            },
            platform,
        )
    }

    /// A token as Cloud Run forwards it: header and claims intact, the signature replaced.
    fn forwarded(claims: serde_json::Value) -> String {
        let b = |v: &serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let header = serde_json::json!({"alg": "RS256", "kid": "k1", "typ": "JWT"});
        format!("Bearer {}.{}.{SIGNATURE_REMOVED}", b(&header), b(&claims))
    }

    fn claims(aud: &str, email: &str, exp_in: i64) -> serde_json::Value {
        let now = chrono::Utc::now().timestamp();
        serde_json::json!({
            "iss": "https://accounts.google.com", "aud": aud, "email": email,
            "email_verified": true, "sub": "1", "iat": now, "exp": now + exp_in,
        })
    }

    async fn check(platform: Platform, token: &str) -> Result<(), Refused> {
        verifier(platform).verify(Some(token)).await
    }

    #[tokio::test]
    async fn on_cloud_run_a_forwarded_token_is_judged_by_its_claims() {
        let ok = forwarded(claims(AUD, SA, 300));
        assert_eq!(check(Platform::CloudRun, &ok).await, Ok(()));
        let refused = |r: Result<(), Refused>| match r {
            Err(Refused::Invalid(why)) => why,
            other => panic!("expected a refusal, got {other:?}"),
        };
        let why = refused(
            check(
                Platform::CloudRun,
                &forwarded(claims(AUD, "dev@p.iam.gserviceaccount.com", 300)),
            )
            .await,
        );
        assert_eq!(
            why,
            "token is for dev@p.iam.gserviceaccount.com, not the push service account push@p.iam.gserviceaccount.com"
        );
        let why = refused(
            check(
                Platform::CloudRun,
                &forwarded(claims("https://elsewhere/", SA, 300)),
            )
            .await,
        );
        assert!(
            why.starts_with("token is for audience https://elsewhere/, not https://log-ingest"),
            "{why}"
        );
        let why = refused(check(Platform::CloudRun, &forwarded(claims(AUD, SA, -600))).await);
        assert!(why.starts_with("token expired"), "{why}");
        let mut c = claims(AUD, SA, 300);
        c["iss"] = "https://evil.example".into();
        assert!(refused(check(Platform::CloudRun, &forwarded(c)).await).contains("not Google"));
        let mut c = claims(AUD, SA, 300);
        c["aud"] = serde_json::json!(["https://other/", AUD]);
        assert_eq!(check(Platform::CloudRun, &forwarded(c)).await, Ok(()));
        let mut c = claims(AUD, SA, 300);
        c["email_verified"] = false.into();
        assert!(refused(check(Platform::CloudRun, &forwarded(c)).await).contains("not verified"));
    }

    #[test]
    fn cloud_run_is_told_by_k_service_unless_signatures_are_asked_for() {
        assert_eq!(Platform::from_env(None, true), Platform::CloudRun);
        assert_eq!(Platform::from_env(None, false), Platform::Elsewhere);
        assert_eq!(
            Platform::from_env(Some("signature"), true),
            Platform::Elsewhere
        );
    }

    #[test]
    fn on_cloud_run_the_header_cloud_run_checked_is_the_one_read() {
        let mut h = axum::http::HeaderMap::new();
        h.insert("authorization", "Bearer pushed".parse().unwrap());
        assert_eq!(
            verifier(Platform::CloudRun).token_header(&h),
            Some("Bearer pushed")
        );
        h.insert(
            "x-serverless-authorization",
            "Bearer checked".parse().unwrap(),
        );
        assert_eq!(
            verifier(Platform::CloudRun).token_header(&h),
            Some("Bearer checked")
        );
        assert_eq!(
            verifier(Platform::Elsewhere).token_header(&h),
            Some("Bearer pushed")
        );
    }

    #[tokio::test]
    async fn elsewhere_a_token_without_its_signature_is_refused() {
        let why = match check(Platform::Elsewhere, &forwarded(claims(AUD, SA, 300))).await {
            Err(Refused::Invalid(why)) => why,
            other => panic!("expected a refusal, got {other:?}"),
        };
        assert!(
            why.contains("not on Cloud Run (K_SERVICE is not set)"),
            "{why}"
        );
    }
}

//! A stand-in for Cloud Run's front end before a private service, as Google documents it
//! (run/docs/authenticating/service-to-service, run/docs/securing/managing-access,
//! run/docs/troubleshooting#signature-removed): it checks the request's ID token — signed by
//! Google (here: the test's keys), not expired, issued by Google, for an audience the service
//! accepts (its URL or a custom audience) — and that its principal holds `run.invoker`; it
//! answers 401/403 itself otherwise. A request it lets through reaches the container with the
//! checked token's signature replaced by `SIGNATURE_REMOVED_BY_GOOGLE`. When a request has
//! both `X-Serverless-Authorization` and `Authorization`, only the first is checked (and
//! stripped); the other passes untouched.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

/// What the front end of one service accepts.
pub struct Front {
    /// Google's signing keys (the test's).
    pub keys: JwkSet,
    /// The audiences Cloud Run accepts: the service URL and its custom audiences.
    pub audiences: Vec<String>,
    /// Principals (e-mails) with `roles/run.invoker` on the service.
    pub invokers: Vec<String>,
    /// The container.
    pub upstream: String,
}

/// Starts the front end; returns its URL.
pub async fn start(front: Front) -> String {
    let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
    sluice::install_crypto();
    let app = axum::Router::new()
        .fallback(handle)
        .with_state(Arc::new((front, reqwest::Client::new())));
    format!("{}/", crate::proxy::serve(app).await)
}

impl Front {
    /// The email of a valid token's principal, or Cloud Run's answer.
    fn check(&self, token: &str) -> Result<String, (StatusCode, String)> {
        let unauthorized = |why: String| (StatusCode::UNAUTHORIZED, why);
        let header = jsonwebtoken::decode_header(token).map_err(|e| unauthorized(e.to_string()))?;
        let kid = header.kid.unwrap_or_default();
        let key = self
            .keys
            .find(&kid)
            .and_then(|k| DecodingKey::from_jwk(k).ok())
            .ok_or_else(|| unauthorized(format!("unknown key {kid}")))?;
        let mut v = Validation::new(Algorithm::RS256);
        v.set_audience(&self.audiences);
        v.set_issuer(&["https://accounts.google.com", "accounts.google.com"]);
        let claims = jsonwebtoken::decode::<serde_json::Value>(token, &key, &v)
            .map_err(|e| unauthorized(e.to_string()))?
            .claims;
        let email = claims["email"].as_str().unwrap_or_default().to_string();
        if !self.invokers.contains(&email) {
            return Err((
                StatusCode::FORBIDDEN,
                format!("{email} does not have run.invoker"),
            ));
        }
        Ok(email)
    }
}

fn strip(token: &str) -> String {
    let mut parts: Vec<&str> = token.splitn(3, '.').collect();
    if parts.len() == 3 {
        parts[2] = "SIGNATURE_REMOVED_BY_GOOGLE";
    }
    parts.join(".")
}

async fn handle(
    State(s): State<Arc<(Front, reqwest::Client)>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (front, http) = (&s.0, &s.1);
    let checked = if headers.contains_key("x-serverless-authorization") {
        "x-serverless-authorization"
    } else {
        "authorization"
    };
    let token = headers
        .get(checked)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::to_string);
    let Some(token) = token else {
        return (StatusCode::UNAUTHORIZED, "no token").into_response();
    };
    if let Err((status, why)) = front.check(&token) {
        return (status, why).into_response();
    }
    let url = format!(
        "{}{}",
        front.upstream.trim_end_matches('/'),
        uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
    );
    let mut req = http.request(method, url).body(body);
    for (k, v) in &headers {
        if k == "host" || k == "content-length" {
            continue;
        }
        let v = if k.as_str() == checked {
            HeaderValue::from_str(&format!("Bearer {}", strip(&token))).expect("a header value")
        } else {
            v.clone()
        };
        req = req.header(k, v);
    }
    match req.send().await {
        Ok(r) => {
            let status = r.status();
            (status, r.bytes().await.unwrap_or_default()).into_response()
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

//! Real credentials without Google: Application Default Credentials pointed at a token
//! endpoint, a metadata server and Secret Manager that the test serves on 127.0.0.1, and a
//! proxy in front of the BigQuery emulator that records what each request carried.
//!
//! nextest runs every test in its own process, so each test's credential variables are its own.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{json, Value};
use sluice::bigquery::BigQuery;
use sluice::config::Pipeline;
use sluice::secret::DsnRef;
use sluice::secret_manager::resolve_dsn;
use sluice_tests::proxy::{self, Request};
use sluice_tests::Stack;

/// What the imitation of Google saw and hands out.
#[derive(Default)]
struct Seen {
    /// Tokens the token endpoint (or metadata server) handed out.
    issued: Vec<String>,
    /// `Authorization` of each BigQuery request, and the body of each job or query.
    bearer: Vec<String>,
    bodies: Vec<Value>,
    /// Seconds of validity of each token handed out.
    expires_in: u64,
    /// Tokens BigQuery refuses with 403.
    denied: Vec<String>,
}

/// The imitation of Google's endpoints: its URL, and what it saw.
struct Google {
    url: String,
    seen: Arc<Mutex<Seen>>,
}

/// What the imitation of Google answers itself: the token endpoints, the metadata server and
/// Secret Manager; and a refusal of a denied token. Every other request (BigQuery's) is
/// recorded and passed on to the emulator.
fn answer(seen: &Mutex<Seen>, req: &Request) -> Option<Response> {
    let path = req.path();
    let auth = req.header("authorization").to_string();
    let issue = |seen: &Mutex<Seen>| {
        let mut s = seen.lock().unwrap();
        let token = format!("tok-{}", s.issued.len() + 1);
        s.issued.push(token.clone());
        (token, s.expires_in)
    };
    // The token endpoint of user credentials, and the metadata server's.
    if path == "/token" || path.ends_with("/service-accounts/default/token") {
        let (token, ttl) = issue(seen);
        return Some(
            axum::Json(json!({"access_token": token, "expires_in": ttl, "token_type": "Bearer"}))
                .into_response(),
        );
    }
    if path.ends_with("/service-accounts/default/email") {
        return Some("runner@p.iam.gserviceaccount.com".into_response());
    }
    if path.starts_with("/computeMetadata/") {
        return Some("".into_response());
    }
    let token = auth.strip_prefix("Bearer ").unwrap_or("").to_string();
    if path.starts_with("/v1/projects/") && path.ends_with(":access") {
        let denied = seen.lock().unwrap().denied.contains(&token);
        seen.lock().unwrap().bearer.push(auth);
        if denied || token.is_empty() {
            return Some(
                (
                    axum::http::StatusCode::FORBIDDEN,
                    axum::Json(json!({"error": {"code": 403, "status": "PERMISSION_DENIED",
                        "message": "Permission 'secretmanager.versions.access' denied"}})),
                )
                    .into_response(),
            );
        }
        let data = base64::engine::general_purpose::STANDARD.encode("postgres://u:pw@db/shop\n");
        return Some(
            axum::Json(
                json!({"name": path.trim_start_matches("/v1/").trim_end_matches(":access"),
                "payload": {"data": data}}),
            )
            .into_response(),
        );
    }
    let mut s = seen.lock().unwrap();
    s.bearer.push(auth);
    if let Ok(v) = serde_json::from_slice::<Value>(&req.body) {
        s.bodies.push(v);
    }
    if s.denied.contains(&token) {
        return Some(
            (
                axum::http::StatusCode::FORBIDDEN,
                axum::Json(json!({"error": {"code": 403, "message":
                    "Access Denied: Project p: User does not have bigquery.jobs.create permission in project p.",
                    "errors": [{"reason": "accessDenied"}]}})),
            )
                .into_response(),
        );
    }
    None
}

/// The token endpoint, metadata server, Secret Manager and BigQuery proxy, on one port.
async fn google(stack: &Stack, expires_in: u64) -> Google {
    let seen = Arc::new(Mutex::new(Seen {
        expires_in,
        ..Seen::default()
    }));
    let recorded = seen.clone();
    let url = proxy::http(stack.bq_endpoint.clone(), move |req| answer(&recorded, req)).await;
    Google { url, seen }
}

/// A `dev` target that writes to the emulator through the proxy, with credentials.
fn pipeline(stack: &Stack, g: &Google) -> Pipeline {
    pipeline_waiting(stack, g, 4)
}

/// The same, with `request_s` seconds for each request (and token).
fn pipeline_waiting(stack: &Stack, g: &Google, request_s: u64) -> Pipeline {
    let yaml = format!(
        "name: creds\nbigquery: {{ project: {p} }}\nlake: {{ bucket: unused }}\nsources: {{}}\n\
         targets:\n  dev:\n    project: {p}\n    bigquery_endpoint: {u}\n    secret_manager_endpoint: {u}\n    timeouts: {{ connect: 2s, request: {request_s}s }}\n",
        p = stack.bq_project,
        u = g.url
    );
    Pipeline::parse(&yaml, "test pipeline").unwrap()
}

/// Credentials come from `file` (written to a fresh directory) or, without one, the metadata
/// server at `g`; gcloud's well-known file is out of reach either way.
fn use_credentials(file: Option<Value>, g: &Google) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("sluice-creds-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    std::env::set_var("HOME", &dir);
    std::env::set_var("GCE_METADATA_HOST", g.url.trim_start_matches("http://"));
    std::env::remove_var("GOOGLE_CLOUD_QUOTA_PROJECT");
    let path = dir.join("adc.json");
    match file {
        Some(v) => {
            std::fs::write(&path, v.to_string()).unwrap();
            std::env::set_var("GOOGLE_APPLICATION_CREDENTIALS", &path);
        }
        None => std::env::remove_var("GOOGLE_APPLICATION_CREDENTIALS"),
    }
    path
}

fn user_credentials(token_uri: &str) -> Value {
    json!({"type": "authorized_user", "client_id": "cid.apps.googleusercontent.com",
           "client_secret": "s3cret", "refresh_token": "r3fresh", "token_uri": token_uri})
}

#[tokio::test]
async fn user_credentials_fetch_a_token_and_cache_it_across_requests() {
    let stack = Stack::from_env();
    // An hour: far outside the crate's four-minute refresh margin, so however slow the
    // machine, every request in this test is served by the first token.
    let g = google(&stack, 3600).await;
    use_credentials(Some(user_credentials(&format!("{}/token", g.url))), &g);
    let target = pipeline(&stack, &g).target("dev").unwrap();
    let bq = BigQuery::for_run(&target, "mart-build", "20261202T120000-ab12cd34")
        .unwrap()
        .labelled("sluice_mart", "marts.Daily_Orders");
    for _ in 0..3 {
        bq.query("SELECT 1 AS n", &[]).await.unwrap();
    }
    let s = g.seen.lock().unwrap();
    assert_eq!(s.issued, vec!["tok-1"], "one token for three requests");
    // A slow emulator may make a query poll for its results: count at least one per query.
    assert!(
        s.bearer.len() >= 3 && s.bearer.iter().all(|b| b == "Bearer tok-1"),
        "{:?}",
        s.bearer
    );
    assert_eq!(
        s.bodies[0]["labels"],
        json!({"sluice_worker": "mart-build", "sluice_target": "dev",
               "sluice_run": "20261202t120000-ab12cd34", "sluice_mart": "marts_daily_orders"})
    );
}

#[tokio::test]
async fn user_credentials_renew_a_token_before_it_expires() {
    let stack = Stack::from_env();
    // 241 s: inside the crate's four-minute refresh margin, so it is renewed within seconds
    // of being issued, long before it expires.
    let g = google(&stack, 241).await;
    use_credentials(Some(user_credentials(&format!("{}/token", g.url))), &g);
    let target = pipeline(&stack, &g).target("dev").unwrap();
    let bq = BigQuery::for_target(&target).unwrap();
    bq.query("SELECT 1 AS n", &[]).await.unwrap();
    // Wait (bounded) until a renewal has been issued, then the next request must use it.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while g.seen.lock().unwrap().issued.len() < 2 {
        assert!(std::time::Instant::now() < deadline, "no renewal in 30 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bq.query("SELECT 1 AS n", &[]).await.unwrap();
    let s = g.seen.lock().unwrap();
    assert_eq!(s.bearer[0], "Bearer tok-1");
    let last = s.bearer.last().unwrap().trim_start_matches("Bearer ");
    assert_ne!(last, "tok-1", "the renewed token is used: {:?}", s.bearer);
    assert!(s.issued.iter().any(|t| t == last), "{last} was issued");
}

#[tokio::test]
async fn an_expired_token_is_replaced_before_the_next_request() {
    let stack = Stack::from_env();
    let g = google(&stack, 1).await;
    use_credentials(Some(user_credentials(&format!("{}/token", g.url))), &g);
    // The crate retries a token that lasts under four minutes every 10 s; a request after it
    // expired waits for that renewal, so it is given longer than that.
    let target = pipeline_waiting(&stack, &g, 15).target("dev").unwrap();
    let bq = BigQuery::for_target(&target).unwrap();
    bq.query("SELECT 1 AS n", &[]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    bq.query("SELECT 1 AS n", &[]).await.unwrap();
    let s = g.seen.lock().unwrap();
    assert_eq!(s.bearer.first().unwrap(), "Bearer tok-1");
    let last = s.bearer.last().unwrap();
    assert_ne!(last, "Bearer tok-1", "an expired token was sent");
    assert!(s
        .issued
        .contains(&last.trim_start_matches("Bearer ").to_string()));
}

#[tokio::test]
async fn a_refusal_is_permanent_and_names_the_principal() {
    let stack = Stack::from_env();
    let g = google(&stack, 3600).await;
    g.seen.lock().unwrap().denied.push("tok-1".into());
    let file = use_credentials(Some(user_credentials(&format!("{}/token", g.url))), &g);
    let target = pipeline(&stack, &g).target("dev").unwrap();
    let bq = BigQuery::for_target(&target).unwrap();
    let started = Instant::now();
    let e = bq.query("SELECT 1 AS n", &[]).await.unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    let m = e.to_string();
    assert!(m.contains("HTTP 403"), "{m}");
    assert!(m.contains("bigquery.jobs.create permission"), "{m}");
    assert!(
        m.contains(&format!(
            "as gcloud user credentials ({}, from GOOGLE_APPLICATION_CREDENTIALS)",
            file.display()
        )),
        "{m}"
    );
    // Generous for a loaded machine; a retried refusal would back off for longer.
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(
        g.seen.lock().unwrap().bearer.len(),
        1,
        "a refusal is not retried"
    );
}

#[tokio::test]
async fn on_the_metadata_server_the_runtime_account_is_used_and_named() {
    let stack = Stack::from_env();
    let g = google(&stack, 3600).await;
    use_credentials(None, &g);
    let target = pipeline(&stack, &g).target("dev").unwrap();
    let bq = BigQuery::for_target(&target).unwrap();
    bq.query("SELECT 1 AS n", &[]).await.unwrap();
    let bearer = g.seen.lock().unwrap().bearer.clone();
    assert!(bearer.iter().all(|b| b == "Bearer tok-1"), "{bearer:?}");
    g.seen.lock().unwrap().denied.push("tok-1".into());
    let m = bq
        .query("SELECT 1 AS n", &[])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        m.contains("as runner@p.iam.gserviceaccount.com (the runtime's service account)"),
        "{m}"
    );
}

#[tokio::test]
async fn a_service_account_key_signs_its_own_token() {
    use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey};
    let stack = Stack::from_env();
    let g = google(&stack, 3600).await;
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
    let pem = key.to_pkcs8_pem(Default::default()).unwrap().to_string();
    let public = rsa::RsaPublicKey::from(&key)
        .to_public_key_pem(Default::default())
        .unwrap();
    let email = "pg-copy@p.iam.gserviceaccount.com";
    use_credentials(
        Some(
            json!({"type": "service_account", "project_id": "p", "private_key_id": "k1",
                    "private_key": pem, "client_email": email,
                    "token_uri": format!("{}/token", g.url)}),
        ),
        &g,
    );
    let target = pipeline(&stack, &g).target("dev").unwrap();
    BigQuery::for_target(&target)
        .unwrap()
        .query("SELECT 1 AS n", &[])
        .await
        .unwrap();
    let s = g.seen.lock().unwrap();
    // google-cloud-auth signs a JWT with the key (AIP-4111) instead of trading it at token_uri.
    assert!(
        s.issued.is_empty(),
        "the token endpoint was asked: {:?}",
        s.issued
    );
    let jwt = s.bearer[0].strip_prefix("Bearer ").unwrap();
    let mut check = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    check.validate_aud = false;
    check.set_required_spec_claims(&["exp", "iss"]);
    let claims = jsonwebtoken::decode::<Value>(
        jwt,
        &jsonwebtoken::DecodingKey::from_rsa_pem(public.as_bytes()).unwrap(),
        &check,
    )
    .expect("the bearer is a JWT signed by the key")
    .claims;
    assert_eq!(claims["iss"], email);
    assert_eq!(
        claims["scope"],
        "https://www.googleapis.com/auth/cloud-platform"
    );
}

#[tokio::test]
async fn a_dsn_is_read_from_secret_manager_as_the_targets_principal() {
    let stack = Stack::from_env();
    let g = google(&stack, 3600).await;
    use_credentials(Some(user_credentials(&format!("{}/token", g.url))), &g);
    let target = pipeline(&stack, &g).target("dev").unwrap();
    let dsn = resolve_dsn(
        &DsnRef::Secret("projects/p/secrets/shop-dsn".into()),
        &target,
    )
    .await
    .unwrap();
    assert_eq!(dsn.expose(), "postgres://u:pw@db/shop");
    assert_eq!(g.seen.lock().unwrap().bearer, vec!["Bearer tok-1"]);
    g.seen.lock().unwrap().denied.push("tok-1".into());
    let m = resolve_dsn(
        &DsnRef::Secret("projects/p/secrets/shop-dsn".into()),
        &target,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(m.starts_with("secret projects/p/secrets/shop-dsn:"), "{m}");
    assert!(m.contains("as gcloud user credentials"), "{m}");
    assert!(m.contains("roles/secretmanager.secretAccessor"), "{m}");
    assert!(!m.contains("pw"), "{m}");
}

#[tokio::test]
async fn a_silent_token_endpoint_is_an_error_in_bounded_time() {
    let stack = Stack::from_env();
    let g = google(&stack, 3600).await;
    // Accepts connections and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let uri = format!("http://{}/token", silent.local_addr().unwrap());
    use_credentials(Some(user_credentials(&uri)), &g);
    let target = pipeline(&stack, &g).target("dev").unwrap();
    let started = Instant::now();
    let e = BigQuery::for_target(&target)
        .unwrap()
        .query("SELECT 1 AS n", &[])
        .await
        .unwrap_err();
    let m = e.to_string();
    assert!(
        m.starts_with("credentials: getting a token for gcloud user credentials"),
        "{m}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    drop(silent);
}

//! Push tokens: checked when auth is on, and behind Cloud Run (whose front end forwards them
//! with their signature removed) judged by their claims.

use std::sync::Arc;

use serde_json::json;
use sluice_tests::tokens::{keys, token};
use sluice_tests::{binary, TestEnv};

use super::{click, click_schema, envelope, open, push_verifier, schema_dir, Service, EVENTS};

#[tokio::test]
async fn push_tokens_are_checked_when_auth_is_on() {
    let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
    let env = TestEnv::new().await;
    let schemas = schema_dir(&env, &[("click", click_schema())]);
    let (_, pipeline) = env.pipeline_with_events(&schemas, "");
    let target = pipeline.target("local").unwrap();
    let other = keys("k1");
    let (verifier, good, aud, sa) = push_verifier(&schemas).await;
    let svc = Service::start(open(&pipeline, &target).await, Some(Arc::new(verifier))).await;
    let http = reqwest::Client::new();
    let send = |tok: Option<String>, id: &str| {
        let mut req = http.post(&svc.url).json(&envelope(id, "click", &click(1)));
        if let Some(t) = tok {
            req = req.bearer_auth(t);
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(send(Some(token(&good, aud, sa, 300)), "ok").await, 204);
    assert_eq!(send(None, "missing").await, 401);
    assert_eq!(send(Some("garbage".into()), "garbage").await, 403);
    assert_eq!(
        send(Some(token(&good, "https://elsewhere/", sa, 300)), "aud").await,
        403
    );
    assert_eq!(
        send(
            Some(token(&good, aud, "intruder@x.iam.gserviceaccount.com", 300)),
            "email"
        )
        .await,
        403
    );
    assert_eq!(
        send(Some(token(&good, aud, sa, -600)), "expired").await,
        403
    );
    assert_eq!(send(Some(token(&other, aud, sa, 300)), "forged").await, 403);
    svc.stop().await;
    let ids = env
        .bq_query(&format!(
            "SELECT _message_id FROM {}",
            env.bq_table(EVENTS, "clicks")
        ))
        .await;
    assert_eq!(ids.rows, vec![vec![json!("ok")]]);
}

/// Behind Cloud Run's front end (imitated by `sluice_tests::cloud_run`: it checks the token and
/// the invoker role, then forwards the token with its signature removed), log-ingest on Cloud
/// Run (`K_SERVICE` set) stores events of the push account and refuses, with a log line that
/// says why, tokens Cloud Run let through for another invoker or another accepted audience.
/// The same log-ingest outside Cloud Run refuses the forwarded tokens: it cannot check them.
#[tokio::test]
async fn behind_cloud_run_forwarded_push_tokens_are_judged_by_their_claims() {
    let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
    let env = TestEnv::new().await;
    let schemas = schema_dir(&env, &[("click", click_schema())]);
    let google = keys("google-1");
    let jwks = schemas.join("jwks.keys");
    std::fs::write(&jwks, google.jwks.to_string()).unwrap();
    let (service_url, audience) = (
        "https://log-ingest-abc123-uc.a.run.app",
        "https://log-ingest.events.example/",
    );
    let (push, dev) = (
        "pubsub-push@proj.iam.gserviceaccount.com",
        "dev@proj.iam.gserviceaccount.com",
    );
    let events = format!(
        "push: {{ audience: \"{audience}\", service_account: {push}, jwks: {} }}",
        jwks.display()
    );
    let (yaml, _) = env.pipeline_with_events(&schemas, &events);
    let config = schemas.join("pipeline.yaml");
    std::fs::write(
        &config,
        yaml.replace("verify_push_tokens: false", "verify_push_tokens: true"),
    )
    .unwrap();
    let log = schemas.join("log-ingest.log");
    let (mut on_run, upstream) = sluice_tests::spawn_log_ingest_with(
        &binary("log-ingest"),
        &config,
        &[("K_SERVICE", "log-ingest")],
        Some(&log),
    )
    .await
    .expect("log-ingest starts");
    let (mut elsewhere, plain) = sluice_tests::spawn_log_ingest(&binary("log-ingest"), &config)
        .await
        .expect("log-ingest starts");
    let front = |upstream: &str| sluice_tests::cloud_run::Front {
        keys: serde_json::from_value(google.jwks.clone()).unwrap(),
        audiences: vec![service_url.to_string(), audience.to_string()],
        invokers: vec![push.to_string(), dev.to_string()],
        upstream: upstream.to_string(),
    };
    let run_url = sluice_tests::cloud_run::start(front(&upstream)).await;
    let plain_url = sluice_tests::cloud_run::start(front(&plain)).await;
    let http = reqwest::Client::new();
    let send = |url: &str, token: String, id: &str| {
        let req = http
            .post(url)
            .bearer_auth(token)
            .json(&envelope(id, "click", &click(1)));
        async move { req.send().await.unwrap().status().as_u16() }
    };
    // The push account, for the subscription's audience: stored.
    assert_eq!(
        send(&run_url, token(&google, audience, push, 300), "ok").await,
        204
    );
    // Another invoker: Cloud Run lets it in; log-ingest refuses it.
    assert_eq!(
        send(&run_url, token(&google, audience, dev, 300), "dev").await,
        403
    );
    // The service URL is an audience Cloud Run accepts, but not the subscription's.
    assert_eq!(
        send(&run_url, token(&google, service_url, push, 300), "aud").await,
        403
    );
    // Not an invoker, and a forged token: Cloud Run itself refuses; nothing reaches the service.
    let stranger = "stranger@other.iam.gserviceaccount.com";
    assert_eq!(
        send(&run_url, token(&google, audience, stranger, 300), "x").await,
        403
    );
    assert_eq!(
        send(&run_url, token(&keys("google-1"), audience, push, 300), "y").await,
        401
    );
    // A developer's valid token in X-Serverless-Authorization (which Cloud Run then checks
    // instead of Authorization) beside a forged, signature-stripped token of the push account
    // in Authorization: the one Cloud Run checked is the one judged.
    let forged = token(&keys("google-1"), audience, push, 300);
    let forged = format!(
        "{}.SIGNATURE_REMOVED_BY_GOOGLE",
        forged.rsplit_once('.').unwrap().0
    );
    let status = http
        .post(&run_url)
        .header(
            "x-serverless-authorization",
            format!("Bearer {}", token(&google, audience, dev, 300)),
        )
        .bearer_auth(forged)
        .json(&envelope("confused", "click", &click(1)))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    assert_eq!(status, 403);
    // Outside Cloud Run the forwarded token cannot be checked, so it is refused.
    assert_eq!(
        send(&plain_url, token(&google, audience, push, 300), "plain").await,
        403
    );
    for child in [&mut on_run, &mut elsewhere] {
        let _ = child.kill().await;
    }
    let ids = env
        .bq_query(&format!(
            "SELECT _message_id FROM {}",
            env.bq_table(EVENTS, "clicks")
        ))
        .await;
    assert_eq!(ids.rows, vec![vec![json!("ok")]]);
    let lines = std::fs::read_to_string(&log).unwrap();
    let refused: Vec<&str> = lines
        .lines()
        .filter(|l| l.contains("push request refused"))
        .collect();
    let expected = [
        format!("token is for {dev}, not the push service account {push}"),
        format!("token is for audience {service_url}, not {audience}"),
        format!("token is for {dev}, not the push service account {push}"),
    ];
    assert_eq!(refused.len(), expected.len(), "{lines}");
    for (line, why) in refused.iter().zip(&expected) {
        assert!(line.contains(why.as_str()), "{line} should say {why}");
    }
}

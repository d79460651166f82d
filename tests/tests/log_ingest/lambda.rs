//! On AWS Lambda: HTTP events go through the same router and token check as pushes.

use std::sync::Arc;

use serde_json::{json, Value};
use sluice_tests::tokens::token;
use sluice_tests::TestEnv;

use super::{click, click_schema, envelope, open, push_verifier, schema_dir, EVENTS};

/// An API Gateway v2 (HTTP API, function URL) event carrying `body` to `POST /`.
fn lambda_event(body: &str, headers: Value) -> String {
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/",
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "sluice",
            "domainName": "sluice.lambda-url.eu-west-1.on.aws",
            "domainPrefix": "sluice",
            "http": {"method": "POST", "path": "/", "protocol": "HTTP/1.1", "sourceIp": "10.0.0.1", "userAgent": "pubsub"},
            "requestId": "req-1",
            "routeKey": "$default",
            "stage": "$default",
            "time": "23/Nov/2026:10:00:00 +0000",
            "timeEpoch": 1795428000000u64,
        },
        "body": body,
        "isBase64Encoded": false,
    })
    .to_string()
}

#[tokio::test]
async fn lambda_http_events_go_through_the_same_router_and_token_check() {
    let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
    let env = TestEnv::new().await;
    let schemas = schema_dir(&env, &[("click", click_schema())]);
    let (_, pipeline) = env.pipeline_with_events(&schemas, "");
    let target = pipeline.target("local").unwrap();
    let (verifier, good, aud, sa) = push_verifier(&schemas).await;
    let ingest = open(&pipeline, &target).await;
    let (app, running) = log_ingest::push_app(&ingest, Some(Arc::new(verifier)))
        .await
        .unwrap();
    let send = |body: String, bearer: Option<String>| {
        let app = app.clone();
        let mut headers = json!({"content-type": "application/json"});
        if let Some(t) = bearer {
            headers["authorization"] = json!(format!("Bearer {t}"));
        }
        async move {
            let event = lambda_event(&body, headers);
            let r = log_ingest::lambda::handle(app, &event).await.unwrap();
            r.status().as_u16()
        }
    };
    let push = |id: &str| envelope(id, "click", &click(5)).to_string();
    assert_eq!(
        send(push("lambda-ok"), Some(token(&good, aud, sa, 300))).await,
        204
    );
    assert_eq!(send(push("lambda-no-token"), None).await, 401);
    assert_eq!(
        send("not json".into(), Some(token(&good, aud, sa, 300))).await,
        400
    );
    let err = log_ingest::lambda::handle(app.clone(), "{\"not\": \"an event\"}")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a Lambda HTTP event"), "{err}");
    drop(app);
    running.finish().await;
    let ids = env
        .bq_query(&format!(
            "SELECT _message_id FROM {}",
            env.bq_table(EVENTS, "clicks")
        ))
        .await;
    assert_eq!(ids.rows, vec![vec![json!("lambda-ok")]]);
}

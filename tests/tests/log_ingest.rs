//! log-ingest against the local stack: real HTTP into the service, the BigQuery emulator, and
//! the Pub/Sub emulator for push and pull delivery.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use log_ingest::ReplayFilter;
use log_ingest::{Ingest, ServeReport};
use log_ingest::{Platform, Verifier};
use serde_json::{json, Value};
use sluice::config::{Pipeline, PushAuth, Target};
use sluice_tests::faults::flaky_bigquery;
use sluice_tests::tokens::{keys, token, Keys};
use sluice_tests::{binary, TestEnv};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

const EVENTS: &str = "events";

fn click_schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "x-bigquery": {"table": "clicks", "partition_field": "ts", "clustering": ["user_id"]},
        "required": ["user_id", "ts", "button"],
        "properties": {
            "user_id": {"type": "integer"},
            "ts": {"type": "string", "format": "date-time"},
            "button": {"type": "string", "enum": ["buy", "save", "share"]},
            "note": {"type": "string"}
        }
    })
}

fn purchase_schema() -> Value {
    json!({
        "type": "object",
        "x-bigquery": {"table": "purchases"},
        "required": ["order_id", "amount"],
        "properties": {
            "order_id": {"type": "integer"},
            "amount": {"type": "number"},
            "items": {"type": "array", "items": {"type": "object", "properties": {"sku": {"type": "string"}, "qty": {"type": "integer"}}}}
        }
    })
}

/// A directory of event schemas for one test.
struct Schemas(PathBuf);

impl Schemas {
    fn new(env: &TestEnv, files: &[(&str, Value)]) -> Schemas {
        let dir = std::env::temp_dir().join(format!("sluice-schemas-{}", env.id));
        std::fs::create_dir_all(&dir).unwrap();
        let s = Schemas(dir);
        for (name, doc) in files {
            s.write(name, doc);
        }
        s
    }
    fn write(&self, event_type: &str, doc: &Value) {
        std::fs::write(self.0.join(format!("{event_type}.json")), doc.to_string()).unwrap();
    }
}

impl Drop for Schemas {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The service, in this process, on a free port.
struct Service {
    url: String,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<sluice::Result<ServeReport>>,
}

impl Service {
    async fn start(ingest: Arc<Ingest>, verifier: Option<Arc<Verifier>>) -> Service {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(log_ingest::serve(ingest, listener, verifier, async {
            let _ = stopped.await;
        }));
        Service {
            url,
            stop: Some(stop),
            task,
        }
    }

    /// Stops as on SIGTERM: in-flight batches are committed and the ledger written.
    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap().unwrap();
    }
}

async fn open(pipeline: &Pipeline, target: &Target) -> Arc<Ingest> {
    Arc::new(
        Ingest::open(pipeline, Path::new("/"), target)
            .await
            .unwrap_or_else(|e| panic!("{e}")),
    )
}

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

fn envelope(id: &str, event_type: &str, payload: &str) -> Value {
    json!({
        "message": {
            "data": b64(payload.as_bytes()),
            "attributes": {"event_type": event_type, "app": "web"},
            "messageId": id,
            "publishTime": "2026-11-23T10:00:00.123Z",
        },
        "subscription": "projects/sluice-local/subscriptions/events-push",
    })
}

fn click(user: u64) -> String {
    json!({"user_id": user, "ts": "2026-11-23T09:59:59Z", "button": "buy"}).to_string()
}

async fn post(http: &reqwest::Client, url: &str, body: &Value) -> u16 {
    http.post(url)
        .json(body)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

async fn count(env: &TestEnv, dataset: &str, table: &str, filter: &str) -> u64 {
    env.bq_count(dataset, table, filter).await
}

#[tokio::test]
async fn valid_events_land_and_malformed_requests_are_answered() {
    let env = TestEnv::new().await;
    let schemas = Schemas::new(
        &env,
        &[("click", click_schema()), ("purchase", purchase_schema())],
    );
    let (_, pipeline) = env.pipeline_with_events(&schemas.0, "max_payload_bytes: 1048576");
    let target = pipeline.target("local").unwrap();
    let svc = Service::start(open(&pipeline, &target).await, None).await;
    let http = reqwest::Client::new();

    for i in 0..3 {
        assert_eq!(
            post(
                &http,
                &svc.url,
                &envelope(&format!("c{i}"), "click", &click(i))
            )
            .await,
            204
        );
    }
    let purchase = json!({"order_id": 9, "amount": 12.5, "items": [{"sku": "a", "qty": 2}, {"sku": "b", "qty": 1}], "coupon": "X"});
    assert_eq!(
        post(
            &http,
            &svc.url,
            &envelope("p1", "purchase", &purchase.to_string())
        )
        .await,
        204
    );
    assert_eq!(
        post(
            &http,
            &svc.url,
            &envelope("p2", "purchase", r#"{"order_id": 10, "amount": 1}"#)
        )
        .await,
        204
    );

    // Requests that are not push envelopes: refused, Pub/Sub would retry then dead-letter them.
    let raw = |body: &'static str, ct: &'static str| {
        let http = http.clone();
        let url = svc.url.clone();
        async move {
            http.post(&url)
                .header("content-type", ct)
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(raw("not json", "application/json").await, 400);
    assert_eq!(
        raw(r#"{"subscription": "s"}"#, "application/json").await,
        400
    );
    assert_eq!(
        raw(r#"{"message": {"data": "e30="}}"#, "application/json").await,
        400
    );
    assert_eq!(raw("{}", "text/plain").await, 415);

    // Bad messages inside good envelopes: stored as dead letters and acked.
    let mut bad_b64 = envelope("bad-b64", "click", "");
    bad_b64["message"]["data"] = json!("***not base64***");
    assert_eq!(post(&http, &svc.url, &bad_b64).await, 204);
    let big = format!(r#"{{"note": "{}"}}"#, "x".repeat(10 * 1024 * 1024));
    assert_eq!(
        post(&http, &svc.url, &envelope("big", "click", &big)).await,
        204
    );
    let wrong = json!({"user_id": 1, "ts": "2026-11-23T10:00:00Z", "button": "delete"});
    assert_eq!(
        post(
            &http,
            &svc.url,
            &envelope("wrong", "click", &wrong.to_string())
        )
        .await,
        204
    );
    let late = json!({"user_id": 1, "ts": "last tuesday", "button": "buy"});
    assert_eq!(
        post(
            &http,
            &svc.url,
            &envelope("late", "click", &late.to_string())
        )
        .await,
        204
    );
    assert_eq!(
        post(&http, &svc.url, &envelope("unknown", "refund", "{}")).await,
        204
    );
    assert_eq!(
        post(&http, &svc.url, &envelope("nojson", "click", "{oops")).await,
        204
    );
    let mut untyped = envelope("untyped", "click", "{}");
    untyped["message"]["attributes"] = json!({});
    assert_eq!(post(&http, &svc.url, &untyped).await, 204);

    let health = http
        .get(format!("{}healthz", svc.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
    svc.stop().await;

    assert_eq!(count(&env, EVENTS, "clicks", "").await, 3);
    let p = env
        .bq_query(&format!(
            "SELECT order_id, ARRAY_LENGTH(items) AS n, items[OFFSET(0)].sku AS sku, JSON_VALUE(_extra, '$.coupon') AS coupon, JSON_VALUE(_attributes, '$.app') AS app, _message_id FROM {} ORDER BY order_id",
            env.bq_table(EVENTS, "purchases")
        ))
        .await;
    assert_eq!(p.rows.len(), 2);
    assert_eq!(p.get(0, "n"), Some("2"));
    assert_eq!(p.get(0, "sku"), Some("a"));
    assert_eq!(p.get(0, "coupon"), Some("X"));
    assert_eq!(p.get(0, "app"), Some("web"));
    assert_eq!(p.get(0, "_message_id"), Some("p1"));

    let dl = env
        .bq_query(&format!(
            "SELECT message_id, reason_code, reason, payload_size, LENGTH(payload) AS stored, event_type FROM {} ORDER BY message_id",
            env.bq_table("ops", "dead_letter")
        ))
        .await;
    let reason_of = |id: &str| -> (String, String) {
        let i = (0..dl.rows.len())
            .find(|&i| dl.get(i, "message_id") == Some(id))
            .unwrap_or_else(|| panic!("no dead letter for {id}: {:?}", dl.rows));
        (
            dl.get(i, "reason_code").unwrap().to_string(),
            dl.get(i, "reason").unwrap().to_string(),
        )
    };
    assert_eq!(dl.rows.len(), 7, "{:?}", dl.rows);
    assert_eq!(reason_of("bad-b64").0, "bad_base64");
    let (code, why) = reason_of("big");
    assert_eq!(code, "payload_too_large");
    assert!(why.contains("over the limit of 1048576"), "{why}");
    let i = (0..dl.rows.len())
        .find(|&i| dl.get(i, "message_id") == Some("big"))
        .unwrap();
    assert_eq!(dl.get(i, "stored"), Some("1048576"));
    let (code, why) = reason_of("wrong");
    assert_eq!(code, "schema_violation");
    assert!(why.starts_with("at /button:"), "{why}");
    assert!(reason_of("late").1.starts_with("at /ts:"));
    assert_eq!(reason_of("unknown").0, "unknown_type");
    assert_eq!(reason_of("nojson").0, "not_json");
    assert_eq!(reason_of("untyped").0, "missing_type");

    // The ledger has the window's counts: 5 loaded, 7 dead-lettered, 12 in.
    let l = env
        .bq_query(&format!(
            "SELECT SUM(rows_in) AS i, SUM(rows_loaded) AS l, SUM(rows_dead_lettered) AS d FROM {} WHERE worker = 'log-ingest'",
            env.bq_table("ops", "runs")
        ))
        .await;
    assert_eq!(
        (l.get(0, "i"), l.get(0, "l"), l.get(0, "d")),
        (Some("12"), Some("5"), Some("7"))
    );
}

/// A token checker for audience `https://log-ingest.example/` and account
/// `push@proj.iam.gserviceaccount.com`, trusting one key (returned, to sign tokens with).
async fn push_verifier(schemas: &Schemas) -> (Verifier, Keys, &'static str, &'static str) {
    let good = keys("k1");
    let jwks = schemas.0.join("jwks.keys");
    std::fs::write(&jwks, good.jwks.to_string()).unwrap();
    let (aud, sa) = (
        "https://log-ingest.example/",
        "push@proj.iam.gserviceaccount.com",
    );
    let verifier = Verifier::on(
        PushAuth {
            audience: aud.into(),
            service_account: sa.into(),
            jwks: jwks.display().to_string(),
        },
        Platform::Elsewhere,
    );
    verifier.preload().await.unwrap();
    (verifier, good, aud, sa)
}

#[tokio::test]
async fn push_tokens_are_checked_when_auth_is_on() {
    let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
    let env = TestEnv::new().await;
    let schemas = Schemas::new(&env, &[("click", click_schema())]);
    let (_, pipeline) = env.pipeline_with_events(&schemas.0, "");
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
    let schemas = Schemas::new(&env, &[("click", click_schema())]);
    let google = keys("google-1");
    let jwks = schemas.0.join("jwks.keys");
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
    let (yaml, _) = env.pipeline_with_events(&schemas.0, &events);
    let config = schemas.0.join("pipeline.yaml");
    std::fs::write(
        &config,
        yaml.replace("verify_push_tokens: false", "verify_push_tokens: true"),
    )
    .unwrap();
    let log = schemas.0.join("log-ingest.log");
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

#[tokio::test]
async fn concurrent_clients_lose_and_duplicate_nothing() {
    let env = TestEnv::new().await;
    let schemas = Schemas::new(
        &env,
        &[("click", click_schema()), ("purchase", purchase_schema())],
    );
    let (_, pipeline) = env.pipeline_with_events(&schemas.0, "");
    let target = pipeline.target("local").unwrap();
    let svc = Service::start(open(&pipeline, &target).await, None).await;
    const EVENTS_SENT: usize = 20_000;
    const CLIENTS: usize = 64;
    let is_invalid = |i: usize| i % 50 == 7; // 2%
    let body = move |i: usize| {
        let id = format!("m{i}");
        if is_invalid(i) {
            envelope(&id, "click", r#"{"user_id": "nobody"}"#)
        } else if i.is_multiple_of(3) {
            envelope(
                &id,
                "purchase",
                &json!({"order_id": i, "amount": 1.5}).to_string(),
            )
        } else {
            envelope(&id, "click", &click(i as u64))
        }
    };
    let http = reqwest::Client::new();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let http = http.clone();
            let url = svc.url.clone();
            tokio::spawn(async move {
                let mut failed = vec![];
                for i in (c..EVENTS_SENT).step_by(CLIENTS) {
                    let status = post(&http, &url, &body(i)).await;
                    if status != 204 {
                        failed.push((i, status));
                    }
                }
                // Redeliveries: a few messages sent again.
                for i in (c..300).step_by(CLIENTS) {
                    assert_eq!(post(&http, &url, &body(i)).await, 204);
                }
                failed
            })
        })
        .collect();
    for c in clients {
        let failed = c.await.unwrap();
        assert!(failed.is_empty(), "requests not acked: {failed:?}");
    }
    svc.stop().await;
    let invalid = (0..EVENTS_SENT).filter(|&i| is_invalid(i)).count() as u64;
    let purchases = (0..EVENTS_SENT)
        .filter(|&i| !is_invalid(i) && i.is_multiple_of(3))
        .count() as u64;
    let clicks = EVENTS_SENT as u64 - invalid - purchases;
    let distinct = |t: &str| {
        format!(
            "SELECT COUNT(DISTINCT _message_id) AS n FROM {}",
            env.bq_table(EVENTS, t)
        )
    };
    for (table, expected) in [("clicks", clicks), ("purchases", purchases)] {
        assert_eq!(
            count(&env, EVENTS, &format!("{table}_dedup"), "").await,
            expected,
            "{table}"
        );
        let n = env.bq_query(&distinct(table)).await;
        assert_eq!(n.get(0, "n"), Some(expected.to_string().as_str()));
        // insertId drops most redeliveries from the table itself, best effort (as in BigQuery).
        assert!(
            count(&env, EVENTS, table, "").await >= expected,
            "{table} raw"
        );
    }
    assert_eq!(count(&env, "ops", "dead_letter_open", "").await, invalid);
    assert_eq!(clicks + purchases + invalid, EVENTS_SENT as u64);
}

#[tokio::test]
async fn sigterm_in_the_middle_of_a_batch_loses_nothing() {
    let env = TestEnv::new().await;
    let schemas = Schemas::new(&env, &[("click", click_schema())]);
    // Long batches, so the signal lands while requests wait for their batch.
    let (yaml, _) =
        env.pipeline_with_events(&schemas.0, "batch: { max_wait_ms: 300, max_rows: 5000 }");
    let config = schemas.0.join("pipeline.yaml");
    std::fs::write(&config, yaml).unwrap();
    let (mut child, url) = sluice_tests::spawn_log_ingest(&binary("log-ingest"), &config)
        .await
        .expect("log-ingest binary (built by cargo nextest run --workspace)");
    let http = reqwest::Client::new();
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..32)
        .map(|c| {
            let (http, url, stop) = (http.clone(), url.clone(), stop.clone());
            tokio::spawn(async move {
                let mut acked = vec![];
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let id = format!("c{c}-{i}");
                    match post(&http, &url, &envelope(&id, "click", &click(i))).await {
                        204 => acked.push(id),
                        0 => break, // the server stopped taking connections
                        _ => {}
                    }
                    i += 1;
                }
                acked
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("log-ingest exits within Cloud Run's 10 s")
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    assert!(status.success(), "exit status {status}");
    let mut acked = BTreeSet::new();
    for c in clients {
        acked.extend(c.await.unwrap());
    }
    assert!(
        acked.len() > 100,
        "only {} requests before the signal",
        acked.len()
    );
    let stored: BTreeSet<String> = env
        .bq_query(&format!(
            "SELECT _message_id FROM {}",
            env.bq_table(EVENTS, "clicks")
        ))
        .await
        .rows
        .into_iter()
        .map(|r| r[0].as_str().unwrap().to_string())
        .collect();
    let lost: Vec<_> = acked.difference(&stored).collect();
    assert!(
        lost.is_empty(),
        "{} acked events not stored, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    // The last ledger window was written on the way out.
    let l = env
        .bq_query(&format!(
            "SELECT SUM(rows_loaded) AS n FROM {} WHERE worker = 'log-ingest'",
            env.bq_table("ops", "runs")
        ))
        .await;
    assert_eq!(l.get(0, "n"), Some(stored.len().to_string().as_str()));
}

#[tokio::test]
async fn schema_changes_add_columns_or_stop_start_up_by_name() {
    let env = TestEnv::new().await;
    let schemas = Schemas::new(&env, &[("click", click_schema())]);
    let (_, pipeline) = env.pipeline_with_events(&schemas.0, "");
    let target = pipeline.target("local").unwrap();
    open(&pipeline, &target).await;
    let mut v2 = click_schema();
    v2["properties"]["referrer"] = json!({"type": "string"});
    v2["properties"]["screen"] =
        json!({"type": "object", "properties": {"w": {"type": "integer"}}});
    schemas.write("click", &v2);
    open(&pipeline, &target).await;
    let t = env
        .bq
        .get_table(&env.dataset(EVENTS), "clicks")
        .await
        .unwrap()
        .unwrap();
    let names: Vec<&str> = t["schema"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"referrer") && names.contains(&"screen"),
        "{names:?}"
    );
    let mut v3 = v2.clone();
    v3["properties"]["user_id"] = json!({"type": "string"});
    schemas.write("click", &v3);
    let e = Ingest::open(&pipeline, Path::new("/"), &target)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("property `/user_id` changed from NULLABLE INTEGER to NULLABLE STRING"),
        "{e}"
    );
    assert!(e.contains("click.json"), "{e}");
}

#[tokio::test]
async fn replay_stores_dead_letters_that_pass_today() {
    let env = TestEnv::new().await;
    let schemas = Schemas::new(&env, &[("click", click_schema())]);
    let (_, pipeline) = env.pipeline_with_events(&schemas.0, "");
    let target = pipeline.target("local").unwrap();
    let svc = Service::start(open(&pipeline, &target).await, None).await;
    let http = reqwest::Client::new();
    let signup = json!({"user_id": 4, "plan": "pro"}).to_string();
    for i in 0..3 {
        assert_eq!(
            post(
                &http,
                &svc.url,
                &envelope(&format!("s{i}"), "signup", &signup)
            )
            .await,
            204
        );
    }
    assert_eq!(
        post(&http, &svc.url, &envelope("bad", "click", "{}")).await,
        204
    );
    svc.stop().await;

    // The app team ships the schema; the dead letters are replayed.
    schemas.write(
        "signup",
        &json!({"type": "object", "required": ["user_id"], "properties": {"user_id": {"type": "integer"}, "plan": {"type": "string"}}}),
    );
    let ingest = open(&pipeline, &target).await;
    let dry = log_ingest::replay(
        ingest.clone(),
        &ReplayFilter {
            dry_run: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(dry.considered, 4);
    assert_eq!(count(&env, EVENTS, "signup", "").await, 0);
    let report = log_ingest::replay(
        ingest.clone(),
        &ReplayFilter {
            reason: Some(log_ingest::Reason::UnknownType),
            since: Some(log_ingest::parse_since("2020-01-01").unwrap()),
            dry_run: false,
        },
    )
    .await
    .unwrap();
    assert_eq!(report.considered, 3);
    assert_eq!(report.replayed.get("signup"), Some(&3));
    assert_eq!(count(&env, EVENTS, "signup", "").await, 3);
    // Replayed ones are closed; the schema violation stays open and still fails.
    let again = log_ingest::replay(ingest, &ReplayFilter::default())
        .await
        .unwrap();
    assert_eq!(again.considered, 1);
    assert_eq!(again.still_failing.get("schema_violation"), Some(&1));
    assert_eq!(count(&env, "ops", "dead_letter_replays", "").await, 3);
}

/// The Pub/Sub emulator's REST API, on a project of this test's own.
struct PubSub {
    http: reqwest::Client,
    base: String,
    project: String,
    created: std::sync::Mutex<Vec<String>>,
}

impl Drop for PubSub {
    /// Deletes the subscriptions and topics: a push subscription left behind would keep the
    /// shared emulator busy pushing to a closed port.
    fn drop(&mut self) {
        let (base, names) = (
            self.base.clone(),
            std::mem::take(&mut *self.created.lock().unwrap()),
        );
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let http = reqwest::Client::new();
                for n in names.iter().rev() {
                    let _ = http.delete(format!("{base}/{n}")).send().await;
                }
            });
        })
        .join();
    }
}

impl PubSub {
    fn new(env: &TestEnv) -> PubSub {
        let host =
            std::env::var("PUBSUB_EMULATOR_HOST").unwrap_or_else(|_| "127.0.0.1:8085".into());
        PubSub {
            http: reqwest::Client::new(),
            base: format!("http://{host}/v1"),
            project: format!("p{}", env.id),
            created: Default::default(),
        }
    }
    fn topic(&self, t: &str) -> String {
        format!("projects/{}/topics/{t}", self.project)
    }
    fn subscription(&self, s: &str) -> String {
        format!("projects/{}/subscriptions/{s}", self.project)
    }
    async fn put(&self, path: &str, body: Value) {
        let r = self
            .http
            .put(format!("{}/{path}", self.base))
            .json(&body)
            .send()
            .await
            .expect("the Pub/Sub emulator is up (scripts/local-stack.sh up)");
        assert!(
            r.status().is_success(),
            "PUT {path}: {}",
            r.text().await.unwrap()
        );
        self.created.lock().unwrap().push(path.to_string());
    }
    async fn create_topic(&self, t: &str) {
        self.put(&self.topic(t), json!({})).await;
    }
    async fn create_subscription(&self, s: &str, body: Value) {
        self.put(&self.subscription(s), body).await;
    }
    async fn publish(&self, t: &str, messages: &[Value]) {
        for chunk in messages.chunks(1000) {
            let r = self
                .http
                .post(format!("{}/{}:publish", self.base, self.topic(t)))
                .json(&json!({"messages": chunk}))
                .send()
                .await
                .unwrap();
            assert!(
                r.status().is_success(),
                "publish: {}",
                r.text().await.unwrap()
            );
        }
    }
    /// Pulls and acks everything waiting on a pull subscription; returns how many.
    async fn drain(&self, s: &str) -> usize {
        let mut n = 0;
        loop {
            let r: Value = self
                .http
                .post(format!("{}/{}:pull", self.base, self.subscription(s)))
                .json(&json!({"maxMessages": 1000, "returnImmediately": true}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let msgs = r["receivedMessages"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if msgs.is_empty() {
                return n;
            }
            n += msgs.len();
            let ids: Vec<&Value> = msgs.iter().map(|m| &m["ackId"]).collect();
            self.http
                .post(format!(
                    "{}/{}:acknowledge",
                    self.base,
                    self.subscription(s)
                ))
                .json(&json!({"ackIds": ids}))
                .send()
                .await
                .unwrap();
        }
    }
}

/// A message as the publish API takes it; 1% invalid.
fn published(i: usize) -> Value {
    let payload = if i % 100 == 42 {
        r#"{"user_id": -1}"#.to_string()
    } else {
        click(i as u64)
    };
    json!({"data": b64(payload.as_bytes()), "attributes": {"event_type": "click", "seq": i.to_string()}})
}

async fn wait_for_total(
    env: &TestEnv,
    ps: &PubSub,
    dlq_sub: &str,
    expected: u64,
) -> (u64, u64, u64) {
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut on_dlq = 0u64;
    loop {
        on_dlq += ps.drain(dlq_sub).await as u64;
        let stored = count(env, EVENTS, "clicks_dedup", "").await;
        let dead = count(env, "ops", "dead_letter_open", "").await;
        if stored + dead + on_dlq >= expected || Instant::now() > deadline {
            return (stored, dead, on_dlq);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// One click schema, BigQuery behind a proxy that refuses inserts until told otherwise, and
/// a Pub/Sub topic `events` whose dead-letter topic is watched by `events-dlq-watch`.
struct Outage {
    ps: PubSub,
    ingest: Arc<Ingest>,
    failing: Arc<AtomicBool>,
    refused: Arc<std::sync::atomic::AtomicUsize>,
    _schemas: Schemas,
    env: TestEnv,
}

impl Outage {
    async fn start(events_yaml: &str) -> Outage {
        let env = TestEnv::new().await;
        let schemas = Schemas::new(&env, &[("click", click_schema())]);
        let (_, pipeline) = env.pipeline_with_events(&schemas.0, events_yaml);
        let mut target = pipeline.target("local").unwrap();
        let failing = Arc::new(AtomicBool::new(true));
        let refused = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        target.bigquery_endpoint = Some(
            flaky_bigquery(
                env.stack.bq_endpoint.clone(),
                failing.clone(),
                refused.clone(),
            )
            .await,
        );
        let ingest = open(&pipeline, &target).await;
        let ps = PubSub::new(&env);
        ps.create_topic("events").await;
        ps.create_topic("events-dlq").await;
        ps.create_subscription("events-dlq-watch", json!({"topic": ps.topic("events-dlq")}))
            .await;
        Outage {
            ps,
            ingest,
            failing,
            refused,
            _schemas: schemas,
            env,
        }
    }

    /// Ends the outage once BigQuery has refused `n` inserts (within a minute).
    async fn end_after_refusing(&self, n: usize, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.refused.load(Ordering::Relaxed) < n {
            assert!(
                Instant::now() < deadline,
                "{what}: {} inserts refused, {} rows stored",
                self.refused.load(Ordering::Relaxed),
                count(&self.env, EVENTS, "clicks", "").await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.failing.store(false, Ordering::Relaxed);
    }
}

#[tokio::test]
async fn pubsub_push_through_an_outage_adds_up() {
    let o = Outage::start("").await;
    let (env, ps) = (&o.env, &o.ps);
    let svc = Service::start(o.ingest.clone(), None).await;
    ps.create_subscription(
        "events-push",
        json!({
            "topic": ps.topic("events"),
            "pushConfig": {"pushEndpoint": svc.url},
            "ackDeadlineSeconds": 10,
            "deadLetterPolicy": {"deadLetterTopic": ps.topic("events-dlq"), "maxDeliveryAttempts": 5},
        }),
    )
    .await;
    // The emulator pushes one request at a time and each waits for its commit (about 0.1 s
    // against the BigQuery emulator, slower while other tests share it), so push runs 500
    // events; pull mode runs 10,000.
    const N: usize = 500;
    let messages: Vec<Value> = (0..N).map(published).collect();
    ps.publish("events", &messages).await;
    // BigQuery is down until it has refused 3 inserts: those pushes get 503 and come back.
    o.end_after_refusing(3, "pushes did not reach the service")
        .await;
    let (stored, dead, on_dlq) = wait_for_total(env, ps, "events-dlq-watch", N as u64).await;
    svc.stop().await;
    let invalid = (0..N).filter(|i| i % 100 == 42).count() as u64;
    assert_eq!(
        stored + dead + on_dlq,
        N as u64,
        "stored {stored} + dead-lettered {dead} + on the DLQ topic {on_dlq}"
    );
    assert!(
        dead <= invalid && dead + on_dlq >= invalid,
        "dead {dead}, dlq {on_dlq}"
    );
    let seqs = env
        .bq_query(&format!(
            "SELECT COUNT(DISTINCT JSON_VALUE(_attributes, '$.seq')) AS n FROM {}",
            env.bq_table(EVENTS, "clicks")
        ))
        .await;
    assert_eq!(seqs.get(0, "n"), Some(stored.to_string().as_str()));
    let outage = env
        .bq_query(&format!(
            "SELECT SUM(CAST(JSON_VALUE(details, '$.not_committed') AS INT64)) AS n FROM {} WHERE worker = 'log-ingest'",
            env.bq_table("ops", "runs")
        ))
        .await;
    let refused: u64 = outage.get(0, "n").unwrap_or("0").parse().unwrap();
    assert!(refused > 0, "the outage refused nothing: it did not happen");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pubsub_pull_through_an_outage_adds_up() {
    let o = Outage::start("batch: { max_rows: 1000 }").await;
    let (env, ps) = (&o.env, &o.ps);
    ps.create_subscription(
        "events-pull",
        json!({
            "topic": ps.topic("events"),
            "ackDeadlineSeconds": 30,
            "deadLetterPolicy": {"deadLetterTopic": ps.topic("events-dlq"), "maxDeliveryAttempts": 5},
        }),
    )
    .await;
    const N: usize = 10_000;
    let messages: Vec<Value> = (0..N).map(published).collect();
    ps.publish("events", &messages).await;
    let opts = log_ingest::PullOptions {
        subscription: ps.subscription("events-pull"),
        endpoint: Some(ps.base.trim_end_matches("/v1").to_string()),
        anonymous: true,
        max_duration: Some(Duration::from_secs(240)),
        idle_timeout: Some(Duration::from_secs(15)),
        max_outstanding: 5000,
    };
    let puller = tokio::spawn(log_ingest::pull(
        o.ingest.clone(),
        opts,
        std::future::pending(),
    ));
    // Long enough to outlast the writer's own retries (three tries per batch).
    o.end_after_refusing(12, "pull delivered nothing").await;
    let report = puller.await.unwrap().unwrap();
    assert!(report.nacked > 0, "the outage nacked nothing: {report:?}");
    let (stored, dead, on_dlq) = wait_for_total(env, ps, "events-dlq-watch", N as u64).await;
    let invalid = (0..N).filter(|i| i % 100 == 42).count() as u64;
    assert_eq!(
        stored + dead + on_dlq,
        N as u64,
        "stored {stored} + dead-lettered {dead} + on the DLQ topic {on_dlq}; {report:?}"
    );
    assert!(
        dead <= invalid && dead + on_dlq >= invalid,
        "dead {dead}, dlq {on_dlq}"
    );
}

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
    let schemas = Schemas::new(&env, &[("click", click_schema())]);
    let (_, pipeline) = env.pipeline_with_events(&schemas.0, "");
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

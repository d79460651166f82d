//! log-ingest against the local stack: real HTTP into the service, the BigQuery emulator, and
//! the Pub/Sub emulator for push and pull delivery.
//!
//! One file per feature: push requests, good and bad (`push`), push tokens, behind Cloud Run
//! too (`tokens`), Lambda's HTTP events (`lambda`), a SIGTERM mid-batch (`shutdown`), schema
//! changes (`schemas`), replaying dead letters (`replay`), Pub/Sub push and pull through a
//! BigQuery outage (`pubsub`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use log_ingest::{Ingest, Platform, ServeReport, Verifier};
use serde_json::{json, Value};
use sluice::config::{Pipeline, PushAuth, Target};
use sluice_tests::tokens::{keys, Keys};
use sluice_tests::TestEnv;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

mod lambda;
mod pubsub;
mod push;
mod replay;
mod schemas;
mod shutdown;
mod tokens;

/// The events dataset.
const EVENTS: &str = "events";

/// The `click` event: a user pressed a button, partitioned by its time.
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

/// The `purchase` event: an order with its items.
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

/// The test's event schemas, `(event type, JSON schema)`, written to its scratch directory,
/// which is returned (the test's other files, like its pipeline.yaml, go there too).
fn schema_dir(env: &TestEnv, files: &[(&str, Value)]) -> PathBuf {
    let dir = env.scratch_dir();
    for (event_type, doc) in files {
        write_schema(&dir, event_type, doc);
    }
    dir
}

/// Writes (or replaces) the schema of `event_type` in `dir`.
fn write_schema(dir: &Path, event_type: &str, doc: &Value) {
    std::fs::write(dir.join(format!("{event_type}.json")), doc.to_string()).unwrap();
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

/// The ingest of `pipeline` on `target`, opened (its tables made or migrated).
async fn open(pipeline: &Pipeline, target: &Target) -> Arc<Ingest> {
    Arc::new(
        Ingest::open(pipeline, Path::new("/"), target)
            .await
            .unwrap_or_else(|e| panic!("{e}")),
    )
}

/// Standard base64, as Pub/Sub encodes message data.
fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// A Pub/Sub push envelope of message `id` carrying `payload` of `event_type`.
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

/// A valid click of `user`.
fn click(user: u64) -> String {
    json!({"user_id": user, "ts": "2026-11-23T09:59:59Z", "button": "buy"}).to_string()
}

/// Posts `body` as JSON; the status, or 0 when the server did not answer.
async fn post(http: &reqwest::Client, url: &str, body: &Value) -> u16 {
    http.post(url)
        .json(body)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// A token checker for audience `https://log-ingest.example/` and account
/// `push@proj.iam.gserviceaccount.com`, trusting one key (returned, to sign tokens with) whose
/// JWK set it reads from `dir`.
async fn push_verifier(dir: &Path) -> (Verifier, Keys, &'static str, &'static str) {
    let good = keys("k1");
    let jwks = dir.join("jwks.keys");
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

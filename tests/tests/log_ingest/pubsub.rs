//! Pub/Sub push and pull through a BigQuery outage: what was published is stored,
//! dead-lettered or on the dead-letter topic, and adds up.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use log_ingest::Ingest;
use serde_json::{json, Value};
use sluice_tests::faults::flaky_bigquery;
use sluice_tests::TestEnv;

use super::{b64, click, click_schema, open, schema_dir, Service, EVENTS};

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

/// Drains the dead-letter topic until stored, dead-lettered and drained add up to `expected`
/// (or five minutes passed): (stored, dead-lettered, on the dead-letter topic).
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
        let stored = env.bq_count(EVENTS, "clicks_dedup", "").await;
        let dead = env.bq_count("ops", "dead_letter_open", "").await;
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
    env: TestEnv,
}

impl Outage {
    async fn start(events_yaml: &str) -> Outage {
        let env = TestEnv::new().await;
        let schemas = schema_dir(&env, &[("click", click_schema())]);
        let (_, pipeline) = env.pipeline_with_events(&schemas, events_yaml);
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
                self.env.bq_count(EVENTS, "clicks", "").await
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
        .bq_scalar(&format!(
            "SELECT COUNT(DISTINCT JSON_VALUE(_attributes, '$.seq')) AS n FROM {}",
            env.bq_table(EVENTS, "clicks")
        ))
        .await;
    assert_eq!(seqs.as_deref(), Some(stored.to_string().as_str()));
    let outage = env
        .bq_scalar(&format!(
            "SELECT SUM(CAST(JSON_VALUE(details, '$.not_committed') AS INT64)) AS n FROM {} WHERE worker = 'log-ingest'",
            env.bq_table("ops", "runs")
        ))
        .await;
    let refused: u64 = outage.as_deref().unwrap_or("0").parse().unwrap();
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

//! The log-ingest part of `make bench`: 1,000,000 recorded events of mixed sizes (2% invalid)
//! validated, routed and serialized on one core against plain `serde_json` parsing of the same
//! bytes (the ceiling); then push throughput and latency of the `log-ingest` binary with 64
//! concurrent clients on loopback into the emulator, and its peak memory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use base64::Engine;
use bytes::Bytes;
use log_ingest::{Incoming, Routed, Router};
use serde_json::{json, Value};
use sluice::config::Pipeline;

use crate::{env, median, RUNS};

const RECORDED: usize = 1_000_000;
const PUSHED: usize = 20_000;
const CLIENTS: usize = 64;

/// A small deterministic generator, so every run sees the same events.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The shop's event mix: page views (some with long paths and campaign data), cart adds with
/// tags, signups; one in fifty is invalid (wrong types, bad enum, not JSON, unknown type).
fn recorded(n: usize) -> Vec<Incoming> {
    let mut r = Lcg(42);
    let words = [
        "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
    ];
    (0..n)
        .map(|i| {
            let ts = format!("2026-11-{:02}T{:02}:{:02}:{:02}.{:03}Z", 1 + r.below(28), r.below(24), r.below(60), r.below(60), r.below(1000));
            let kind = r.below(100);
            let (event_type, payload) = if kind < 55 {
                let path: Vec<&str> = (0..1 + r.below(12)).map(|_| words[r.below(8) as usize]).collect();
                let mut v = json!({
                    "occurred_at": ts, "user_id": r.below(100_000), "session_id": format!("s{}", r.next()),
                    "path": format!("/{}", path.join("/")), "duration_ms": r.below(60_000),
                    "device": {"os": words[r.below(8) as usize], "browser": "firefox", "screen_width": 1280},
                });
                if r.below(4) == 0 {
                    v["utm"] = json!({"source": "newsletter", "campaign": words[r.below(8) as usize], "content": "x".repeat(r.below(2000) as usize)});
                }
                ("page_view", v.to_string())
            } else if kind < 90 {
                let tags: Vec<&str> = (0..r.below(6)).map(|_| words[r.below(8) as usize]).collect();
                let v = json!({
                    "occurred_at": ts, "user_id": r.below(100_000), "product_id": r.below(5000),
                    "quantity": 1 + r.below(5), "unit_price": format!("{}.{:02}", r.below(500), r.below(100)), "tags": tags,
                });
                ("add_to_cart", v.to_string())
            } else {
                let plan = ["free", "pro", "team"][r.below(3) as usize];
                let v = json!({"occurred_at": ts, "user_id": r.below(100_000), "plan": plan, "country": "DE"});
                ("signup", v.to_string())
            };
            let (event_type, payload) = if i % 50 == 17 {
                match r.below(4) {
                    0 => ("signup", json!({"occurred_at": ts, "user_id": "nobody", "plan": "free"}).to_string()),
                    1 => ("signup", json!({"occurred_at": ts, "user_id": 1, "plan": "gold"}).to_string()),
                    2 => (event_type, format!("{{{payload}")),
                    _ => ("refund", payload),
                }
            } else {
                (event_type, payload)
            };
            Incoming {
                message_id: format!("{i}"),
                subscription: Some("projects/bench/subscriptions/events".into()),
                data: Bytes::from(payload),
                attributes: [("event_type".to_string(), event_type.to_string())].into_iter().collect(),
                publish_time: Some("2026-11-23T10:00:00.000Z".into()),
                delivery_attempt: None,
                via: log_ingest::Via::Push,
                bad_base64: None,
            }
        })
        .collect()
}

fn schemas_dir() -> Result<PathBuf> {
    Ok(std::env::current_dir()?.join("schemas/events"))
}

fn pipeline_yaml() -> Result<String> {
    Ok(format!(
        "name: bench\nbigquery: {{ project: {project} }}\nlake: {{ bucket: sluice-bench }}\n\
         events:\n  schemas: {schemas}\n\
         targets:\n  local: {{ project: {project}, lake_bucket: sluice-bench, no_auth: true, verify_push_tokens: false, dataset_suffix: _bench }}\n",
        project = std::env::var("SLUICE_BQ_PROJECT").unwrap_or_else(|_| "sluice-bench".into()),
        schemas = schemas_dir()?.display(),
    ))
}

fn router() -> Result<Router> {
    let p = Pipeline::parse(&pipeline_yaml()?, "events bench pipeline")?;
    Ok(log_ingest::load_router(
        log_ingest::events_config(&p)?,
        Path::new("/"),
    )?)
}

/// Single-core rates (events/s): plain parsing, and validate + route + serialize. The two
/// alternate over slices of 50,000 events, so that a slow spell of a shared machine weighs on
/// both sides of the ratio alike.
fn single_core(events: &[Incoming], router: &Router) -> (f64, f64, u64) {
    let now = "2026-11-23T10:00:01.000000Z";
    let (mut parse_s, mut route_s, mut dead) = (0.0, 0.0, 0u64);
    for slice in events.chunks(50_000) {
        let t = Instant::now();
        let mut parsed = 0u64;
        for e in slice {
            if serde_json::from_slice::<Value>(&e.data).is_ok() {
                parsed += 1;
            }
        }
        parse_s += t.elapsed().as_secs_f64();
        std::hint::black_box(parsed);
        // Routing consumes its input, as the service does; the copy is made outside the clock.
        let batch = slice.to_vec();
        let t = Instant::now();
        for e in batch {
            match router.route(e, now) {
                Routed::Row(r) => {
                    std::hint::black_box(r.json.len());
                }
                Routed::Dead(_) => dead += 1,
            }
        }
        route_s += t.elapsed().as_secs_f64();
    }
    let n = events.len() as f64;
    (n / parse_s, n / route_s, dead)
}

struct Push {
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    rss_mib: f64,
}

/// Starts `log-ingest serve`, pushes `PUSHED` events from `CLIENTS` clients, stops it with
/// SIGTERM and checks that every event is in a table or the dead-letter table.
async fn push(events: &[Incoming]) -> Result<Push> {
    let bq = sluice::bigquery::BigQuery::emulator(
        &env("SLUICE_BQ_ENDPOINT")?,
        &env("SLUICE_BQ_PROJECT")?,
    )?;
    for ds in ["events_bench", "ops_bench"] {
        bq.delete_dataset(ds).await?;
    }
    let dir = PathBuf::from(".local/bench");
    std::fs::create_dir_all(&dir)?;
    let config = dir.join("events-pipeline.yaml");
    std::fs::write(&config, pipeline_yaml()?)?;
    let exe = std::env::current_exe()?.with_file_name("log-ingest");
    let (mut child, url) = sluice_tests::spawn_log_ingest(&exe, &config)
        .await
        .with_context(|| format!("starting {} (make bench builds it)", exe.display()))?;
    let pid = child.id().context("log-ingest pid")?;
    let http = reqwest::Client::new();
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new(
        events[..PUSHED]
            .iter()
            .map(|e| {
                serde_json::to_vec(&json!({
                    "message": {
                        "data": base64::engine::general_purpose::STANDARD.encode(&e.data),
                        "attributes": e.attributes, "messageId": e.message_id,
                        "publishTime": e.publish_time,
                    },
                    "subscription": e.subscription,
                }))
                .unwrap_or_default()
            })
            .collect(),
    );
    let t = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (http, url, bodies) = (http.clone(), url.clone(), bodies.clone());
            tokio::spawn(async move {
                let mut lat = vec![];
                for i in (c..bodies.len()).step_by(CLIENTS) {
                    let s = Instant::now();
                    let r = http
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(bodies[i].clone())
                        .send()
                        .await?;
                    if r.status().as_u16() != 204 {
                        bail!("push answered {}", r.status());
                    }
                    lat.push(s.elapsed().as_secs_f64() * 1000.0);
                }
                Ok(lat)
            })
        })
        .collect();
    let mut lat = vec![];
    for task in tasks {
        lat.extend(task.await??);
    }
    let secs = t.elapsed().as_secs_f64();
    let rss_kib = sluice_tests::peak_rss_kib_of(&pid.to_string());
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()?;
    let status = child.wait().await?;
    if !status.success() {
        bail!("log-ingest exited with {status}");
    }
    lat.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    // Every pushed event is in its table (once) or dead-lettered.
    let mut landed = 0u64;
    for t in ["page_views_dedup", "cart_adds_dedup", "signups_dedup"] {
        let r = bq
            .query(&format!("SELECT COUNT(*) AS n FROM events_bench.{t}"), &[])
            .await?;
        landed += r.get(0, "n").unwrap_or("0").parse::<u64>()?;
    }
    let r = bq
        .query("SELECT COUNT(*) AS n FROM ops_bench.dead_letter_open", &[])
        .await?;
    let dead: u64 = r.get(0, "n").unwrap_or("0").parse()?;
    if landed + dead != PUSHED as u64 {
        bail!("pushed {PUSHED} events but {landed} landed and {dead} were dead-lettered");
    }
    Ok(Push {
        rate: PUSHED as f64 / secs,
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
        rss_mib: rss_kib as f64 / 1024.0,
    })
}

/// Runs the log-ingest measurements and adds their figures; the push half only `with_push`.
pub async fn measure(figures: &mut BTreeMap<String, f64>, with_push: bool) -> Result<()> {
    let events = recorded(RECORDED);
    let bytes: usize = events.iter().map(|e| e.data.len()).sum();
    eprintln!(
        "bench: {RECORDED} recorded events, {:.0} MB of payload",
        bytes as f64 / 1e6
    );
    let router = router()?;
    let (mut ceilings, mut routes) = (vec![], vec![]);
    for run in 1..=RUNS {
        let (c, r, dead) = single_core(&events, &router);
        eprintln!("bench: events run {run}/{RUNS}: serde_json parse {c:.0} events/s, validate+route+serialize {r:.0} events/s ({dead} dead letters)");
        ceilings.push(c);
        routes.push(r);
    }
    let (c, r) = (median(ceilings), median(routes));
    figures.insert("events_parse_ceiling_per_s".into(), c.round());
    figures.insert("events_validate_route_per_s".into(), r.round());
    figures.insert(
        "events_ratio_to_parse".into(),
        (r / c * 100.0).round() / 100.0,
    );
    if !with_push {
        return Ok(());
    }
    let (mut rates, mut p50s, mut p99s, mut rss) = (vec![], vec![], vec![], vec![]);
    for run in 1..=RUNS {
        let p = push(&events).await?;
        eprintln!(
            "bench: push run {run}/{RUNS}: {:.0} events/s, p50 {:.1} ms, p99 {:.1} ms, peak {:.0} MiB",
            p.rate, p.p50_ms, p.p99_ms, p.rss_mib
        );
        rates.push(p.rate);
        p50s.push(p.p50_ms);
        p99s.push(p.p99_ms);
        rss.push(p.rss_mib);
    }
    figures.insert("events_push_per_s".into(), median(rates).round());
    figures.insert(
        "events_push_p50_ms".into(),
        (median(p50s) * 10.0).round() / 10.0,
    );
    figures.insert(
        "events_push_p99_ms".into(),
        (median(p99s) * 10.0).round() / 10.0,
    );
    figures.insert("events_push_peak_rss_mib".into(), median(rss).round());
    Ok(())
}

//! Push requests: valid events land, malformed requests are answered, bad messages are
//! dead-lettered with a reason, and concurrent clients lose and duplicate nothing.

use serde_json::json;
use sluice_tests::TestEnv;

use super::{
    click, click_schema, envelope, open, post, purchase_schema, schema_dir, Service, EVENTS,
};

#[tokio::test]
async fn valid_events_land_and_malformed_requests_are_answered() {
    let env = TestEnv::new().await;
    let schemas = schema_dir(
        &env,
        &[("click", click_schema()), ("purchase", purchase_schema())],
    );
    let (_, pipeline) = env.pipeline_with_events(&schemas, "max_payload_bytes: 1048576");
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

    assert_eq!(env.bq_count(EVENTS, "clicks", "").await, 3);
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

#[tokio::test]
async fn concurrent_clients_lose_and_duplicate_nothing() {
    let env = TestEnv::new().await;
    let schemas = schema_dir(
        &env,
        &[("click", click_schema()), ("purchase", purchase_schema())],
    );
    let (_, pipeline) = env.pipeline_with_events(&schemas, "");
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
            env.bq_count(EVENTS, &format!("{table}_dedup"), "").await,
            expected,
            "{table}"
        );
        let n = env.bq_scalar(&distinct(table)).await;
        assert_eq!(n.as_deref(), Some(expected.to_string().as_str()));
        // insertId drops most redeliveries from the table itself, best effort (as in BigQuery).
        assert!(
            env.bq_count(EVENTS, table, "").await >= expected,
            "{table} raw"
        );
    }
    assert_eq!(env.bq_count("ops", "dead_letter_open", "").await, invalid);
    assert_eq!(clicks + purchases + invalid, EVENTS_SENT as u64);
}

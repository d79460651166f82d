//! Replay: dead letters that pass today's schemas are stored, the others stay open.

use log_ingest::ReplayFilter;
use serde_json::json;
use sluice_tests::TestEnv;

use super::{click_schema, envelope, open, post, schema_dir, write_schema, Service, EVENTS};

#[tokio::test]
async fn replay_stores_dead_letters_that_pass_today() {
    let env = TestEnv::new().await;
    let schemas = schema_dir(&env, &[("click", click_schema())]);
    let (_, pipeline) = env.pipeline_with_events(&schemas, "");
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
    write_schema(
        &schemas,
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
    assert_eq!(env.bq_count(EVENTS, "signup", "").await, 0);
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
    assert_eq!(env.bq_count(EVENTS, "signup", "").await, 3);
    // Replayed ones are closed; the schema violation stays open and still fails.
    let again = log_ingest::replay(ingest, &ReplayFilter::default())
        .await
        .unwrap();
    assert_eq!(again.considered, 1);
    assert_eq!(again.still_failing.get("schema_violation"), Some(&1));
    assert_eq!(env.bq_count("ops", "dead_letter_replays", "").await, 3);
}

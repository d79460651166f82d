//! SIGTERM in the middle of a batch: every acked event is stored, and the ledger written.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sluice_tests::{binary, TestEnv};

use super::{click, click_schema, envelope, post, schema_dir, EVENTS};

#[tokio::test]
async fn sigterm_in_the_middle_of_a_batch_loses_nothing() {
    let env = TestEnv::new().await;
    let schemas = schema_dir(&env, &[("click", click_schema())]);
    // Long batches, so the signal lands while requests wait for their batch.
    let (yaml, _) =
        env.pipeline_with_events(&schemas, "batch: { max_wait_ms: 300, max_rows: 5000 }");
    let config = schemas.join("pipeline.yaml");
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
        .bq_scalar(&format!(
            "SELECT SUM(rows_loaded) AS n FROM {} WHERE worker = 'log-ingest'",
            env.bq_table("ops", "runs")
        ))
        .await;
    assert_eq!(l.as_deref(), Some(stored.len().to_string().as_str()));
}

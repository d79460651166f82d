//! Schema changes: a new property adds a column, a changed type stops start-up by name.

use std::path::Path;

use log_ingest::Ingest;
use serde_json::json;
use sluice_tests::TestEnv;

use super::{click_schema, open, schema_dir, write_schema, EVENTS};

#[tokio::test]
async fn schema_changes_add_columns_or_stop_start_up_by_name() {
    let env = TestEnv::new().await;
    let schemas = schema_dir(&env, &[("click", click_schema())]);
    let (_, pipeline) = env.pipeline_with_events(&schemas, "");
    let target = pipeline.target("local").unwrap();
    open(&pipeline, &target).await;
    let mut v2 = click_schema();
    v2["properties"]["referrer"] = json!({"type": "string"});
    v2["properties"]["screen"] =
        json!({"type": "object", "properties": {"w": {"type": "integer"}}});
    write_schema(&schemas, "click", &v2);
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
    write_schema(&schemas, "click", &v3);
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

//! `monitor doctor` on a cloud target, against an imitation of Google's APIs: what Terraform
//! made is read from Cloud Run, IAM and Secret Manager, and each gap is a ✗ with its fix.

use sluice_tests::{binary, TestEnv};

use super::doctor::{config_file, Doctor, CHANNELS};

/// Google's APIs as `monitor doctor` reads them, on 127.0.0.1, answering in their documented
/// JSON: the OAuth token endpoint (user credentials), Cloud Run Admin v2 (jobs and a service
/// with their image and secret environment), Resource Manager v3 `getIamPolicy`, Secret
/// Manager v1 (versions listed, a version accessed) and BigQuery (the emulator behind, each
/// dataset's `access` list added as BigQuery returns it).
mod google {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use axum::extract::{Request, State};
    use axum::http::StatusCode;
    use axum::response::{IntoResponse, Response};
    use base64::Engine;
    use serde_json::{json, Value};
    use sluice_tests::proxy;

    /// What the imitated project holds.
    #[derive(Default)]
    pub struct World {
        pub project: String,
        pub region: String,
        pub image: String,
        /// Jobs that exist, with their secret environment (variable → secret id).
        pub jobs: BTreeMap<String, BTreeMap<String, String>>,
        pub service: Option<String>,
        /// Members with `roles/run.invoker` on the service.
        pub invokers: Vec<String>,
        /// Secret id → (enabled versions, value).
        pub secrets: BTreeMap<String, (usize, String)>,
        /// Project role → members.
        pub bindings: BTreeMap<String, Vec<String>>,
        /// Dataset → access entries.
        pub access: BTreeMap<String, Vec<Value>>,
        pub bigquery: String,
    }

    fn not_found(what: &str) -> Response {
        (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": {"code": 404, "status": "NOT_FOUND", "message": format!("{what} not found")}})),
        )
            .into_response()
    }

    async fn handle(State(w): State<Arc<World>>, req: Request) -> Response {
        let req = proxy::Request::read(req).await;
        let path = req.path().to_string();
        if path == "/token" {
            return axum::Json(
                json!({"access_token": "tok", "expires_in": 3600, "token_type": "Bearer"}),
            )
            .into_response();
        }
        let jobs = format!("/v2/projects/{}/locations/{}/jobs/", w.project, w.region);
        if let Some(name) = path.strip_prefix(&jobs) {
            let Some(env) = w.jobs.get(name) else {
                return not_found(&path);
            };
            let env: Vec<Value> = env
                .iter()
                .map(|(k, s)| json!({"name": k, "valueSource": {"secretKeyRef": {"secret": s, "version": "latest"}}}))
                .collect();
            return axum::Json(json!({
                "name": path.trim_start_matches("/v2/"),
                "template": {"template": {"containers": [{"image": w.image, "env": env}]}}
            }))
            .into_response();
        }
        let services = format!(
            "/v2/projects/{}/locations/{}/services/",
            w.project, w.region
        );
        if let Some(rest) = path.strip_prefix(&services) {
            let (name, iam) = match rest.strip_suffix(":getIamPolicy") {
                Some(name) => (name, true),
                None => (rest, false),
            };
            if w.service.as_deref() != Some(name) {
                return not_found(&path);
            }
            if iam {
                return axum::Json(json!({"version": 1, "bindings": [
                    {"role": "roles/run.invoker", "members": &w.invokers}]}))
                .into_response();
            }
            return axum::Json(json!({"name": path.trim_start_matches("/v2/"),
                "invokerIamDisabled": false,
                "template": {"containers": [{"image": w.image}]}}))
            .into_response();
        }
        if path == format!("/v3/projects/{}:getIamPolicy", w.project) {
            let bindings: Vec<Value> = w
                .bindings
                .iter()
                .map(|(role, members)| json!({"role": role, "members": members}))
                .collect();
            return axum::Json(json!({"version": 1, "bindings": bindings})).into_response();
        }
        let secrets = format!("/v1/projects/{}/secrets/", w.project);
        if let Some(rest) = path.strip_prefix(&secrets) {
            let (id, tail) = rest.split_once('/').unwrap_or((rest, ""));
            let Some((versions, value)) = w.secrets.get(id) else {
                return not_found(&path);
            };
            if tail == "versions" {
                let list: Vec<Value> = (1..=*versions)
                    .map(|n| json!({"name": format!("projects/{}/secrets/{id}/versions/{n}", w.project), "state": "ENABLED"}))
                    .collect();
                return axum::Json(json!({"versions": list, "totalSize": versions}))
                    .into_response();
            }
            if tail.ends_with(":access") && *versions > 0 {
                let data = base64::engine::general_purpose::STANDARD.encode(value);
                return axum::Json(json!({"name": path.trim_start_matches("/v1/").trim_end_matches(":access"), "payload": {"data": data}}))
                    .into_response();
            }
            return not_found(&path);
        }
        // BigQuery: the emulator, with each dataset's access list as BigQuery returns it.
        let (status, bytes) = proxy::forward(&reqwest::Client::new(), &w.bigquery, req).await;
        let dataset = path.rsplit_once("/datasets/").map(|(_, d)| d.to_string());
        if let (Some(ds), true) = (dataset, status.is_success()) {
            if !ds.contains('/') {
                let mut v: Value = serde_json::from_slice(&bytes).unwrap_or_default();
                v["access"] = json!(w.access.get(&ds).cloned().unwrap_or_default());
                return (status, axum::Json(v)).into_response();
            }
        }
        (status, bytes).into_response()
    }

    /// Serves `world` on a free loopback port; returns its base URL.
    pub async fn serve(world: World) -> String {
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(Arc::new(world));
        proxy::serve(app).await
    }
}

/// A `prod` target against the imitation of Google's APIs: what Terraform made is read from
/// Cloud Run, IAM and Secret Manager, and each gap is a ✗ with its fix.
#[tokio::test]
async fn on_a_cloud_target_doctor_reads_what_terraform_deployed() {
    use serde_json::json;
    let env = TestEnv::new().await;
    env.sql("CREATE TABLE items (id int PRIMARY KEY, name text)")
        .await;
    let project = env.stack.bq_project.clone();
    let suffix = format!("-t{}", env.id);
    let account = |w: &str| format!("sluice-{w}{suffix}@{project}.iam.gserviceaccount.com");
    for ds in ["src", "ops"] {
        env.bq.ensure_dataset(&env.dataset(ds), None).await.unwrap();
    }
    let dsn_secret = format!("projects/{project}/secrets/src-dsn");
    let slack_secret = format!("projects/{project}/secrets/slack-url");
    let image = format!("us-central1-docker.pkg.dev/{project}/sluice/sluice:abc123");
    let mut world = google::World {
        project: project.clone(),
        region: "europe-west3".into(),
        image: image.clone(),
        bigquery: env.stack.bq_endpoint.clone(),
        ..Default::default()
    };
    let job_env = [
        (env.dsn_var().to_string(), dsn_secret.clone()),
        ("SLUICE_TEST_SLACK_URL".to_string(), slack_secret.clone()),
    ];
    // One Cloud Run job per worker, as Terraform makes them; cdc-sync's was never applied.
    world.jobs.insert(
        format!("pg-copy{suffix}"),
        job_env[..1].iter().cloned().collect(),
    );
    world.jobs.insert(
        format!("monitor{suffix}"),
        job_env[1..].iter().cloned().collect(),
    );
    world.service = Some(format!("log-ingest{suffix}"));
    world.invokers = vec![
        "serviceAccount:push@p.iam.gserviceaccount.com".into(),
        "allUsers".into(),
    ];
    // The DSN carries a password that must never be printed (the local server trusts any).
    let dsn = format!(
        "postgres://postgres:hunter2-doctor@{}:{}/{}",
        env.stack.pg_host, env.stack.pg_port, env.db
    );
    world.secrets.insert("src-dsn".into(), (1, dsn));
    world.secrets.insert("slack-url".into(), (0, String::new()));
    world.bindings.insert(
        "roles/bigquery.jobUser".into(),
        vec![
            format!("serviceAccount:{}", account("pg-copy")),
            format!("serviceAccount:{}", account("monitor")),
        ],
    );
    world.access.insert(
        env.dataset("src"),
        vec![json!({"role": "WRITER", "userByEmail": account("pg-copy")})],
    );
    world.access.insert(
        env.dataset("ops"),
        vec![
            json!({"role": "WRITER", "userByEmail": account("pg-copy")}),
            json!({"role": "READER", "userByEmail": account("monitor")}),
        ],
    );
    let url = google::serve(world).await;
    let home = env.scratch_dir().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let adc = home.join("adc.json");
    std::fs::write(
        &adc,
        json!({"type": "authorized_user", "client_id": "cid.apps.googleusercontent.com",
               "client_secret": "s", "refresh_token": "r", "token_uri": format!("{url}/token")})
        .to_string(),
    )
    .unwrap();
    let schemas = env.scratch_dir().join("schemas");
    std::fs::create_dir_all(&schemas).unwrap();
    std::fs::write(
        schemas.join("click.json"),
        json!({"type": "object", "properties": {"user_id": {"type": "integer"}}}).to_string(),
    )
    .unwrap();
    let yaml = format!(
        "name: test\nbigquery: {{ project: {project} }}\nlake: {{ bucket: unused }}\n\
         sources:\n  src:\n    dsn: {{ env: {dsn} }}\n    tables: {{ items: {{ mode: full }} }}\n    cdc: {{ tables: [items] }}\n\
         events:\n  schemas: schemas\n  push: {{ audience: \"https://log-ingest.example/\", service_account: push@p.iam.gserviceaccount.com }}\n{CHANNELS}\
         targets:\n  prod:\n    project: {project}\n    bigquery_endpoint: {url}\n    secret_manager_endpoint: {url}\n    run_endpoint: {url}\n    resource_manager_endpoint: {url}\n    lake: {lake}\n    lake_bucket: t{id}\n    dataset_suffix: _t{id}\n    timeouts: {{ connect: 2s, request: 5s }}\n",
        dsn = env.dsn_var(),
        lake = env.stack.lake_dir.display(),
        id = env.id,
    );
    let out = tokio::process::Command::new(binary("monitor"))
        .args(["--target", "prod", "--log-format", "json", "--config"])
        .arg(config_file(&env, &yaml))
        .args(["doctor", "--region", "europe-west3"])
        .env("GOOGLE_APPLICATION_CREDENTIALS", &adc)
        .env("HOME", &home)
        .env("GCE_METADATA_HOST", url.trim_start_matches("http://"))
        .env_remove(env.dsn_var())
        .env_remove("SLUICE_TEST_SLACK_URL")
        .output()
        .await
        .unwrap();
    let d = Doctor::from(out);
    assert!(!d.ok, "{}", d.out);
    d.assert_line("✓", "credentials", "user credentials");
    d.assert_line("✓", &format!("dataset {}", env.dataset("src")), "exists");
    d.assert_line(
        "✗",
        &format!("dataset {}", env.dataset("sluice_staging")),
        "missing — terraform -chdir=terraform workspace select prod && terraform -chdir=terraform apply -var-file=prod.tfvars",
    );
    d.assert_line(
        "✓",
        &format!("account {}", account("pg-copy")),
        "holds its dataset and project roles",
    );
    d.assert_line(
        "✗",
        &format!("account {}", account("monitor")),
        "lacks roles/bigquery.metadataViewer on the project",
    );
    d.assert_line(
        "✗",
        "Cloud Run jobs",
        &format!("cdc-sync{suffix} not found in europe-west3"),
    );
    d.assert_line("✓", "image", &format!("{image} on 3 resources"));
    d.assert_line(
        "✗",
        &format!("Cloud Run service log-ingest{suffix} invokers"),
        "allUsers may invoke it",
    );
    d.assert_line(
        "✓",
        "source src's DSN",
        &format!(
            "secret {dsn_secret} ({} of the Cloud Run jobs) has 1 enabled version",
            env.dsn_var()
        ),
    );
    d.assert_line(
        "✗",
        "alerts channel data-alerts's URL",
        "has no version yet — printf '%s' '<value>' | gcloud secrets versions add slack-url --data-file=-",
    );
    // The DSN read from the secret reaches the source.
    d.assert_line("✓", "source src", "reachable at");
    assert!(
        !d.out.contains("hunter2"),
        "the DSN's password was printed:\n{}",
        d.out
    );
}

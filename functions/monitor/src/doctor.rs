//! `monitor doctor`: before the first scheduled run, and whenever something is off, one line
//! per thing the pipeline needs of its project, ✓ or ✗ with the fix (`!` a warning, `–` a
//! check that could not run here, saying why).
//!
//! What it reads, and the right each read needs (a check the caller may not make is `–`, not
//! ✗): the credentials and the principal they resolve to; every dataset, ops table, the
//! staging dataset's expiry and the lake bucket (`bigquery.datasets.get`, `storage.objects.list`);
//! each worker account's dataset roles (the dataset's access list) and project roles
//! (`resourcemanager.projects.getIamPolicy`); the Cloud Run jobs and service Terraform
//! deployed, their image and the secrets their environment reads (`run.jobs.get`,
//! `run.services.get`); each secret's enabled versions, never their values
//! (`secretmanager.versions.list`); each source over its DSN's TLS mode, `wal_level`, the slot
//! and publication, the role's rights and the WAL the slot retains (the DSN, read as the
//! workers read it); each alert channel's URL. What Terraform should have made comes from the
//! same derivation as terraform/deployment.json (`sluice::deployment::deployment`), so the two agree.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use serde_json::Value;
use sluice::auth::Auth;
use sluice::config::{Pipeline, Target};
use sluice::google::{self, not_found};
use sluice::postgres::PgConnection;
use sluice::secret::DsnRef;
use sluice::secret_manager::resolve_dsn;
use sluice::Result;

use crate::Monitor;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Ok,
    /// Works, but something deserves attention (not a failure).
    Warn,
    Fail,
    /// Could not be checked here (no right to read it, or not on this target).
    Skip,
}

impl Mark {
    pub fn symbol(self) -> &'static str {
        match self {
            Mark::Ok => "✓",
            Mark::Warn => "!",
            Mark::Fail => "✗",
            Mark::Skip => "–",
        }
    }
}

/// One line of the report: what was checked and what was found (with the fix, for ✗).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub mark: Mark,
    pub what: String,
    pub found: String,
}

impl fmt::Display for Check {
    /// One line; what follows a line break (SQL to run) is indented under it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.mark.symbol(),
            self.what,
            self.found.replace('\n', "\n      ")
        )
    }
}

/// Every line, in the order they were checked.
#[derive(Debug, Default)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    fn add(&mut self, mark: Mark, what: impl Into<String>, found: impl Into<String>) {
        self.checks.push(Check {
            mark,
            what: what.into(),
            found: found.into(),
        });
    }

    pub fn count(&self, mark: Mark) -> usize {
        self.checks.iter().filter(|c| c.mark == mark).count()
    }

    /// `12 checks: 10 ✓, 1 ✗, 1 –`.
    pub fn summary(&self) -> String {
        let parts: Vec<String> = [Mark::Ok, Mark::Warn, Mark::Fail, Mark::Skip]
            .into_iter()
            .filter(|m| self.count(*m) > 0)
            .map(|m| format!("{} {}", self.count(m), m.symbol()))
            .collect();
        format!("{} checks: {}", self.checks.len(), parts.join(", "))
    }
}

/// What the caller says about the deployment that pipeline.yaml cannot.
#[derive(Debug, Clone)]
pub struct Options {
    /// Terraform's `region` (Cloud Run, Cloud Scheduler).
    pub region: String,
}

/// Where Terraform's service account of a worker is (modules/plan: `sluice-<worker><suffix>`).
pub fn worker_account(worker: &str, suffix: &str, project: &str) -> String {
    format!("sluice-{worker}{suffix}@{project}.iam.gserviceaccount.com")
}

/// Runs every check for the monitor's target.
pub async fn doctor(m: &Monitor, base: &Path, opts: &Options) -> Result<Report> {
    let p = &m.pipeline;
    let t = &m.target;
    let mut r = Report::default();
    let cloud = !t.no_auth;
    let all = sluice::deployment::deployment(p, &m.dag, base, std::slice::from_ref(&t.name))?;
    let d = &all["targets"][&t.name];

    let usable = credentials(&mut r, t).await;
    let mut accesses = BTreeMap::new();
    if usable {
        datasets(&mut r, m, d, cloud, &mut accesses).await;
        lake(&mut r, t).await;
    }
    let mut deployed = Deployed::default();
    if cloud && usable {
        grants(&mut r, m, d, &accesses).await;
        deployed = cloud_run(&mut r, t, d, opts).await;
    } else if !cloud {
        r.add(
            Mark::Skip,
            "IAM and Cloud Run",
            format!(
                "target {} uses the emulators (no_auth): nothing is deployed to check",
                t.name
            ),
        );
    }
    let resolved = secrets(&mut r, p, t, &deployed, usable).await;
    sources(&mut r, p, t, &resolved).await;
    Ok(r)
}

/// ✓ with the principal, or ✗ with how to log in. Returns whether Google calls can be made.
async fn credentials(r: &mut Report, t: &Target) -> bool {
    if t.no_auth {
        r.add(
            Mark::Ok,
            "credentials",
            format!(
                "none needed (target {} has no_auth: the local emulators)",
                t.name
            ),
        );
        return true;
    }
    match Auth::for_target(t).token().await {
        Ok(_) => {
            r.add(
                Mark::Ok,
                "credentials",
                Auth::for_target(t).principal().await,
            );
            true
        }
        Err(e) => {
            r.add(
                Mark::Fail,
                "credentials",
                format!(
                    "{} — run `gcloud auth application-default login`, or point GOOGLE_APPLICATION_CREDENTIALS at a key or workload identity file",
                    e.into_message()
                ),
            );
            false
        }
    }
}

/// A dataset's access list (`None`: the dataset does not exist); datasets whose list could
/// not be read are not in the map.
type Accesses = BTreeMap<String, Option<Vec<Value>>>;

/// Every dataset and ops table the target writes, and the staging dataset's expiry. Keeps
/// each dataset's access list for the grants.
async fn datasets(r: &mut Report, m: &Monitor, d: &Value, cloud: bool, accesses: &mut Accesses) {
    let made_by = if cloud {
        apply_hint(&m.target.name)
    } else {
        "the workers create it on their first run on this target".to_string()
    };
    let empty = serde_json::Map::new();
    for (id, spec) in d["datasets"].as_object().unwrap_or(&empty) {
        let what = format!("dataset {id}");
        match m.bq.get_dataset(id).await {
            Ok(Some(ds)) => {
                if let Some(a) = ds["access"].as_array() {
                    accesses.insert(id.clone(), Some(a.clone()));
                }
                let staging = spec["role"] == "staging";
                let expiry = ds["defaultTableExpirationMs"]
                    .as_str()
                    .and_then(|v| v.parse::<u64>().ok());
                match (staging, expiry) {
                    (true, None) if cloud => r.add(
                        Mark::Warn,
                        what,
                        "exists, but its tables never expire: staging tables would be kept (and billed) forever; set a default table expiration of a day",
                    ),
                    (true, Some(ms)) => r.add(
                        Mark::Ok,
                        what,
                        format!("exists; staging tables expire after {}", hours(ms)),
                    ),
                    _ => r.add(Mark::Ok, what, "exists"),
                }
            }
            Ok(None) if cloud => {
                accesses.insert(id.clone(), None);
                r.add(Mark::Fail, what, format!("missing — {made_by}"))
            }
            Ok(None) => r.add(Mark::Skip, what, format!("not there yet: {made_by}")),
            Err(e) => r.add(
                Mark::Skip,
                what,
                format!("cannot read it: {}", e.into_message()),
            ),
        }
    }
    let ops = m.ops.clone();
    let tables: Vec<String> = d["ops_tables"]
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    let mut missing = vec![];
    for table in &tables {
        match m.bq.get_table(&ops, table).await {
            Ok(Some(_)) => {}
            Ok(None) => missing.push(table.clone()),
            Err(e) => {
                r.add(
                    Mark::Skip,
                    format!("ops tables of {ops}"),
                    format!("cannot read them: {}", e.into_message()),
                );
                return;
            }
        }
    }
    let what = format!("ops tables of {ops}");
    if missing.is_empty() {
        r.add(Mark::Ok, what, format!("{} exist", tables.join(", ")));
    } else if cloud {
        r.add(
            Mark::Fail,
            what,
            format!(
                "{} missing — {made_by} (the monitor may not create them)",
                missing.join(", ")
            ),
        );
    } else {
        r.add(
            Mark::Skip,
            what,
            format!("{} not there yet: {made_by}", missing.join(", ")),
        );
    }
}

fn hours(ms: u64) -> String {
    match ms / 3_600_000 {
        24 => "a day".into(),
        h => format!("{h} h"),
    }
}

/// The lake can be listed with the target's credentials.
async fn lake(r: &mut Report, t: &Target) {
    let what = format!("lake {}", crate::page::lake_uri(&t.lake));
    let listed = match sluice::lake::Lake::open(&t.lake, &Auth::for_target(t)) {
        Ok(lake) => lake.list(&object_store::path::Path::from("status")).await,
        Err(e) => Err(e),
    };
    match listed {
        Ok(_) => r.add(Mark::Ok, what, "readable"),
        Err(e) => r.add(
            Mark::Fail,
            what,
            format!(
                "{} — terraform apply creates the bucket; the caller needs storage.objects.list on it",
                e.into_message()
            ),
        ),
    }
}

/// Dataset roles each worker account holds, from the access lists read, and its project
/// roles, from the project's IAM policy.
async fn grants(r: &mut Report, m: &Monitor, d: &Value, accesses: &Accesses) {
    let t = &m.target;
    let suffix = d["name_suffix"].as_str().unwrap_or_default();
    let empty = serde_json::Map::new();
    let policy = project_policy(t).await;
    for (worker, spec) in d["workers"].as_object().unwrap_or(&empty) {
        let email = worker_account(worker, suffix, &t.project);
        let what = format!("account {email}");
        let mut missing = vec![];
        let mut unreadable = vec![];
        for (datasets, role, accepted) in [
            (&spec["writes"], "dataEditor", &WRITE_ROLES[..]),
            (&spec["reads"], "dataViewer", &READ_ROLES[..]),
        ] {
            for ds in datasets
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                // Reads are `project.dataset`; only this project's are checked here.
                let ds = match ds.split_once('.') {
                    Some((project, _)) if project != t.project => continue,
                    Some((_, ds)) => ds,
                    None => ds,
                };
                match accesses.get(ds) {
                    None => unreadable.push(ds.to_string()),
                    // A missing dataset is its own ✗ above.
                    Some(None) => {}
                    Some(Some(entries)) if holds(entries, &email, accepted) => {}
                    Some(Some(_)) => missing.push(format!("{role} on {ds}")),
                }
            }
        }
        let mut project_roles = vec!["roles/bigquery.jobUser".to_string()];
        project_roles.extend(
            spec["project_roles"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_string),
        );
        match &policy {
            Ok(bindings) => {
                for role in &project_roles {
                    let member = format!("serviceAccount:{email}");
                    if !bindings
                        .get(role)
                        .is_some_and(|members| members.contains(&member))
                    {
                        missing.push(format!("{role} on the project"));
                    }
                }
            }
            Err(_) => unreadable.push("the project".into()),
        }
        if !missing.is_empty() {
            r.add(
                Mark::Fail,
                what,
                format!("lacks {} — {}", missing.join(", "), apply_hint(&t.name)),
            );
        } else if !unreadable.is_empty() {
            r.add(
                Mark::Skip,
                what,
                format!(
                    "roles not readable here on {} (reading IAM needs bigquery.datasets.get and resourcemanager.projects.getIamPolicy)",
                    unreadable.join(", ")
                ),
            );
        } else {
            r.add(Mark::Ok, what, "holds its dataset and project roles");
        }
    }
    if let Err(e) = policy {
        r.add(Mark::Skip, format!("project {} IAM policy", t.project), e);
    }
}

/// The roles that let a principal write a dataset's tables, as a dataset's access list names
/// them (the basic role, or the predefined one).
const WRITE_ROLES: [&str; 5] = [
    "WRITER",
    "OWNER",
    "roles/bigquery.dataEditor",
    "roles/bigquery.dataOwner",
    "roles/bigquery.admin",
];
const READ_ROLES: [&str; 7] = [
    "READER",
    "WRITER",
    "OWNER",
    "roles/bigquery.dataViewer",
    "roles/bigquery.dataEditor",
    "roles/bigquery.dataOwner",
    "roles/bigquery.admin",
];

/// Whether a dataset's access list gives `email` one of `roles` (as `userByEmail`, which
/// BigQuery uses for service accounts, or as an `iamMember`).
pub fn holds(access: &[Value], email: &str, roles: &[&str]) -> bool {
    let member = format!("serviceAccount:{email}");
    access.iter().any(|a| {
        roles.contains(&a["role"].as_str().unwrap_or_default())
            && (a["userByEmail"].as_str() == Some(email)
                || a["iamMember"].as_str() == Some(member.as_str()))
    })
}

/// The project's IAM bindings (role → members), or why they could not be read.
async fn project_policy(
    t: &Target,
) -> std::result::Result<BTreeMap<String, BTreeSet<String>>, String> {
    use google_cloud_resourcemanager_v3::client::Projects;
    sluice::install_crypto();
    let credentials = Auth::for_target(t)
        .credentials()
        .await
        .map_err(|e| e.into_message())?;
    let mut builder = Projects::builder()
        .with_credentials(credentials)
        .with_attempt_timeout(t.timeouts.request);
    if let Some(e) = &t.resource_manager_endpoint {
        builder = builder.with_endpoint(e.clone());
    }
    let client = builder
        .build()
        .await
        .map_err(|e| format!("building the Resource Manager client: {e}"))?;
    let call = client
        .get_iam_policy()
        .set_resource(format!("projects/{}", t.project))
        .send();
    let policy = bounded(t, call)
        .await?
        .map_err(|e| refusal(&e, "resourcemanager.projects.getIamPolicy"))?;
    Ok(policy
        .bindings
        .into_iter()
        .map(|b| (b.role, b.members.into_iter().collect()))
        .collect())
}

/// A Google client call within three attempts' time.
async fn bounded<T>(
    t: &Target,
    call: impl std::future::Future<Output = T>,
) -> std::result::Result<T, String> {
    google::bounded(t.timeouts.request, call).await
}

/// A refusal says the right the read needs; anything else as Google said it.
fn refusal(e: &google_cloud_gax::error::Error, needs: &str) -> String {
    let said = google::describe(e);
    if google::refused(e) {
        format!("not readable here ({said}; it needs {needs})")
    } else {
        said
    }
}

/// How to make what Terraform makes: the README's Deploy step 5, in the target's workspace.
fn apply_hint(target: &str) -> String {
    format!("terraform -chdir=terraform workspace select {target} && terraform -chdir=terraform apply -var-file={target}.tfvars -var image_tag=<tag>")
}

/// What Cloud Run runs: each job's and the service's image, and which secret each
/// environment variable of a job is read from.
#[derive(Debug, Default)]
struct Deployed {
    /// Environment variable → `projects/P/secrets/S`.
    secret_env: BTreeMap<String, String>,
}

async fn cloud_run(r: &mut Report, t: &Target, d: &Value, opts: &Options) -> Deployed {
    use google_cloud_run_v2::client::{Jobs, Services};
    let mut deployed = Deployed::default();
    let credentials = match Auth::for_target(t).credentials().await {
        Ok(c) => c,
        Err(e) => {
            r.add(Mark::Skip, "Cloud Run", e.into_message());
            return deployed;
        }
    };
    let parent = format!("projects/{}/locations/{}", t.project, opts.region);
    let mut jobs = Jobs::builder()
        .with_credentials(credentials.clone())
        .with_attempt_timeout(t.timeouts.request);
    let mut services = Services::builder()
        .with_credentials(credentials)
        .with_attempt_timeout(t.timeouts.request);
    if let Some(e) = &t.run_endpoint {
        jobs = jobs.with_endpoint(e.clone());
        services = services.with_endpoint(e.clone());
    }
    let (jobs, services) = match (jobs.build().await, services.build().await) {
        (Ok(j), Ok(s)) => (j, s),
        (Err(e), _) | (_, Err(e)) => {
            r.add(Mark::Skip, "Cloud Run", format!("building the client: {e}"));
            return deployed;
        }
    };
    // image → the resources running it
    let mut images: BTreeMap<String, Vec<String>> = BTreeMap::new();
    // One Cloud Run job per worker (modules/plan: `<worker><suffix>`); the schedules are
    // Cloud Scheduler jobs that run it with their own arguments.
    let suffix = d["name_suffix"].as_str().unwrap_or_default();
    let names: BTreeSet<String> = d["schedules"]
        .as_object()
        .into_iter()
        .flat_map(|o| o.values())
        .filter_map(|s| s["worker"].as_str())
        .map(|w| format!("{w}{suffix}"))
        .collect();
    let mut missing = vec![];
    for name in &names {
        let call = jobs
            .get_job()
            .set_name(format!("{parent}/jobs/{name}"))
            .send();
        match bounded(t, call).await {
            Ok(Ok(job)) => {
                let containers = job
                    .template
                    .and_then(|e| e.template)
                    .map(|t| t.containers)
                    .unwrap_or_default();
                for c in containers {
                    images
                        .entry(c.image.clone())
                        .or_default()
                        .push(format!("job {name}"));
                    for env in c.env {
                        if let Some(secret) = env
                            .value_source()
                            .and_then(|s| s.secret_key_ref.as_ref())
                            .map(|k| k.secret.clone())
                        {
                            let full = if secret.starts_with("projects/") {
                                secret
                            } else {
                                format!("projects/{}/secrets/{secret}", t.project)
                            };
                            deployed.secret_env.insert(env.name.clone(), full);
                        }
                    }
                }
            }
            Ok(Err(e)) if not_found(&e) => missing.push(name.clone()),
            Ok(Err(e)) => {
                r.add(
                    Mark::Skip,
                    format!("Cloud Run job {name}"),
                    refusal(&e, "run.jobs.get, e.g. roles/run.viewer"),
                );
            }
            Err(e) => r.add(Mark::Skip, format!("Cloud Run job {name}"), e),
        }
    }
    if !missing.is_empty() {
        r.add(
            Mark::Fail,
            "Cloud Run jobs",
            format!(
                "{} not found in {} — {} (or pass --region)",
                missing.join(", "),
                opts.region,
                apply_hint(&t.name)
            ),
        );
    }
    if let Some(service) = d["service"]["name"].as_str() {
        let call = services
            .get_service()
            .set_name(format!("{parent}/services/{service}"))
            .send();
        match bounded(t, call).await {
            Ok(Ok(s)) => {
                if s.invoker_iam_disabled {
                    r.add(
                        Mark::Fail,
                        format!("Cloud Run service {service}"),
                        format!("its invoker IAM check is disabled: anyone may call it, and on Cloud Run log-ingest trusts Cloud Run to have checked push tokens' signatures — re-enable it (gcloud run services update {service} --invoker-iam-check)"),
                    );
                }
                for c in s.template.map(|t| t.containers).unwrap_or_default() {
                    images
                        .entry(c.image)
                        .or_default()
                        .push(format!("service {service}"));
                }
                service_invokers(
                    r,
                    t,
                    &services,
                    &format!("{parent}/services/{service}"),
                    service,
                )
                .await;
            }
            Ok(Err(e)) if not_found(&e) => r.add(
                Mark::Fail,
                format!("Cloud Run service {service}"),
                format!("not found in {} — {}", opts.region, apply_hint(&t.name)),
            ),
            Ok(Err(e)) => r.add(
                Mark::Skip,
                format!("Cloud Run service {service}"),
                refusal(&e, "run.services.get, e.g. roles/run.viewer"),
            ),
            Err(e) => r.add(Mark::Skip, format!("Cloud Run service {service}"), e),
        }
    }
    match images.len() {
        0 => {}
        1 => {
            let (image, on) = images.iter().next().expect("one image");
            r.add(
                Mark::Ok,
                "image",
                format!("{image} on {} resources", on.len()),
            );
        }
        _ => {
            let list: Vec<String> = images
                .iter()
                .map(|(i, on)| format!("{i} ({})", on.join(", ")))
                .collect();
            r.add(
                Mark::Fail,
                "image",
                format!(
                    "the jobs run different images: {} — {}",
                    list.join("; "),
                    apply_hint(&t.name)
                ),
            );
        }
    }
    deployed
}

/// The push service is private: no `allUsers` or `allAuthenticatedUsers` may invoke it (on
/// Cloud Run log-ingest relies on Cloud Run's IAM check for the tokens' signatures).
async fn service_invokers(
    r: &mut Report,
    t: &Target,
    services: &google_cloud_run_v2::client::Services,
    resource: &str,
    service: &str,
) {
    let what = format!("Cloud Run service {service} invokers");
    let call = services.get_iam_policy().set_resource(resource).send();
    match bounded(t, call).await {
        Ok(Ok(policy)) => {
            let public: Vec<String> = policy
                .bindings
                .iter()
                .filter(|b| b.role == "roles/run.invoker")
                .flat_map(|b| b.members.iter())
                .filter(|m| *m == "allUsers" || *m == "allAuthenticatedUsers")
                .cloned()
                .collect();
            if public.is_empty() {
                r.add(
                    Mark::Ok,
                    what,
                    "private (run.invoker granted to no public member)",
                );
            } else {
                r.add(
                    Mark::Fail,
                    what,
                    format!(
                        "{} may invoke it: remove them (gcloud run services remove-iam-policy-binding {service} --member=allUsers --role=roles/run.invoker); only the push account should",
                        public.join(" and ")
                    ),
                );
            }
        }
        Ok(Err(e)) => r.add(
            Mark::Skip,
            what,
            refusal(&e, "run.services.getIamPolicy, e.g. roles/run.viewer"),
        ),
        Err(e) => r.add(Mark::Skip, what, e),
    }
}

/// Where each secret of the pipeline is (sources' DSNs, alert channels' URLs), checked;
/// returns, per source, where its DSN can be read from here (`None`: nowhere).
async fn secrets(
    r: &mut Report,
    p: &Pipeline,
    t: &Target,
    deployed: &Deployed,
    usable: bool,
) -> BTreeMap<String, Option<DsnRef>> {
    let mut readable = BTreeMap::new();
    for (name, source) in &p.sources {
        let what = format!("source {name}'s DSN");
        let dsn = secret_line(r, t, deployed, usable, &what, t.dsn_ref(name, source)).await;
        readable.insert(name.clone(), dsn);
    }
    if let Some(a) = &p.alerts {
        for (name, c) in &a.channels {
            let what = format!("alerts channel {name}'s URL");
            secret_line(r, t, deployed, usable, &what, &c.url).await;
        }
    }
    readable
}

/// One line about where `what` comes from: a variable set here, or a secret (named in
/// pipeline.yaml, or the one a Cloud Run job reads the variable from) with an enabled version.
/// Returns where the value can be read from here, if anywhere.
async fn secret_line(
    r: &mut Report,
    t: &Target,
    deployed: &Deployed,
    usable: bool,
    what: &str,
    dsn: &DsnRef,
) -> Option<DsnRef> {
    let (secret, via) = match dsn {
        DsnRef::Secret(s) => (s.clone(), String::new()),
        DsnRef::Env(var) if std::env::var(var).is_ok_and(|v| !v.is_empty()) => {
            r.add(Mark::Ok, what, format!("{var} is set here"));
            return Some(dsn.clone());
        }
        DsnRef::Env(var) => match deployed.secret_env.get(var) {
            Some(s) => (s.clone(), format!(" ({var} of the Cloud Run jobs)")),
            None if t.no_auth => {
                r.add(
                    Mark::Fail,
                    what,
                    format!("{var} is not set — export {var}=… before running the workers"),
                );
                return None;
            }
            None => {
                r.add(
                    Mark::Fail,
                    what,
                    format!(
                        "no Cloud Run job reads {var} from a secret, and it is not set here — add {var} = \"<secret id>\" to dsn_secrets in {}.tfvars, then {}",
                        t.name,
                        apply_hint(&t.name)
                    ),
                );
                return None;
            }
        },
    };
    if !usable {
        r.add(
            Mark::Skip,
            what,
            format!("secret {secret}{via}: no credentials to read it"),
        );
        return None;
    }
    let short = secret.rsplit('/').next().unwrap_or(&secret).to_string();
    match sluice::secret_manager::enabled_versions(&secret, t).await {
        Ok(Some(0)) => {
            r.add(
                Mark::Fail,
                what,
                format!(
                    "secret {secret}{via} has no version yet — printf '%s' '<value>' | gcloud secrets versions add {short} --data-file=-"
                ),
            );
            None
        }
        Ok(Some(n)) => {
            r.add(
                Mark::Ok,
                what,
                format!(
                    "secret {secret}{via} has {n} enabled version{}",
                    if n == 1 { "" } else { "s" }
                ),
            );
            Some(DsnRef::Secret(secret))
        }
        Ok(None) => {
            r.add(
                Mark::Fail,
                what,
                format!(
                    "secret {secret}{via} does not exist — {} creates it (dsn_secrets)",
                    apply_hint(&t.name)
                ),
            );
            None
        }
        Err(e) => {
            r.add(Mark::Skip, what, e.into_message());
            // The workers only need to read it; try that.
            Some(DsnRef::Secret(secret))
        }
    }
}

/// Each source: reachable over its TLS mode, and what its tables and CDC need.
async fn sources(
    r: &mut Report,
    p: &Pipeline,
    t: &Target,
    resolved: &BTreeMap<String, Option<DsnRef>>,
) {
    for (name, source) in &p.sources {
        let what = format!("source {name}");
        let Some(Some(dsn)) = resolved.get(name) else {
            r.add(
                Mark::Skip,
                &what,
                "its DSN is not available here (see above)",
            );
            continue;
        };
        let dsn = match resolve_dsn(dsn, t).await {
            Ok(d) => d,
            Err(e) => {
                r.add(
                    Mark::Skip,
                    &what,
                    format!("cannot read its DSN: {}", e.into_message()),
                );
                continue;
            }
        };
        if let Some(dir) = absent_socket(&dsn) {
            r.add(
                Mark::Skip,
                &what,
                format!(
                    "its DSN connects through the socket directory {dir}, which exists only where the Cloud SQL connector mounts it (the Cloud Run jobs); to check it from here, run `cloud-sql-proxy <PROJECT:REGION:INSTANCE>` and set the DSN's variable to postgres://USER:PASSWORD@127.0.0.1:5432/DB"
                ),
            );
            continue;
        }
        let conn = match sluice::postgres::connect(name, &dsn, "sluice-doctor", &t.timeouts).await {
            Ok(c) => c,
            Err(e) => {
                r.add(Mark::Fail, &what, e.into_message());
                continue;
            }
        };
        match tls_line(&conn).await {
            Ok((mark, text)) => r.add(mark, &what, text),
            Err(e) => r.add(Mark::Fail, &what, e.into_message()),
        }
        let tables: Vec<String> = source.tables.keys().cloned().collect();
        if !tables.is_empty() {
            match table_rights(&conn, source, &tables).await {
                Ok(missing) if missing.is_empty() => r.add(
                    Mark::Ok,
                    format!("{what} tables"),
                    format!("{} readable", tables.join(", ")),
                ),
                Ok(missing) => r.add(Mark::Fail, format!("{what} tables"), missing.join("; ")),
                Err(e) => r.add(Mark::Fail, format!("{what} tables"), e.into_message()),
            }
        }
        if let Some(cdc) = &source.cdc {
            for (mark, line) in cdc_lines(&conn, name, cdc).await {
                r.add(mark, format!("{what} cdc"), line);
            }
        }
    }
}

/// The DSN's Unix socket directory, when it has one and it is not on this machine.
fn absent_socket(dsn: &sluice::secret::Secret) -> Option<String> {
    let (config, _) = sluice::postgres::tls::parse(dsn.expose()).ok()?;
    config.get_hosts().iter().find_map(|h| match h {
        tokio_postgres::config::Host::Unix(dir) if !dir.exists() => Some(dir.display().to_string()),
        _ => None,
    })
}

/// Whether the session is encrypted, as the server sees it, and what the mode checked.
async fn tls_line(conn: &PgConnection) -> Result<(Mark, String)> {
    let row = conn
        .query_one(
            "reading the session's TLS",
            "SELECT COALESCE((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false),
                    (SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid())",
            &[],
        )
        .await?;
    let (ssl, version): (bool, Option<String>) = (row.get(0), row.get(1));
    let s = conn.tls();
    let at = format!("reachable at {}", conn.endpoint());
    Ok(if ssl {
        (
            Mark::Ok,
            format!(
                "{at} over {} ({})",
                version.unwrap_or_else(|| "TLS".into()),
                s.describe()
            ),
        )
    } else if s.unix_socket {
        (Mark::Ok, format!("{at} ({})", s.describe()))
    } else if loopback(conn.host()) {
        (
            Mark::Ok,
            format!(
                "{at} without TLS over loopback, where nothing crosses a network ({})",
                s.describe()
            ),
        )
    } else {
        (
            Mark::Warn,
            format!(
                "{at} without TLS ({}): the password and the data cross the network in clear — turn ssl on in the server and set sslmode=verify-full",
                s.describe()
            ),
        )
    })
}

/// The host is this machine.
fn loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Tables pg-copy reads that are missing or not readable by the role, each with its fix.
async fn table_rights(
    conn: &PgConnection,
    source: &sluice::config::Source,
    tables: &[String],
) -> Result<Vec<String>> {
    let mut missing = vec![];
    for table in tables {
        let schema = source.tables[table].schema.clone();
        let row = conn
            .query_one(
                "checking table rights",
                "SELECT c.oid IS NOT NULL,
                        c.oid IS NOT NULL AND has_table_privilege(c.oid, 'SELECT'),
                        current_user::text
                 FROM (SELECT 1) one
                 LEFT JOIN pg_class c ON c.relname = $2
                   AND c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = $1)",
                &[&schema, &table],
            )
            .await?;
        let (exists, select, user): (bool, bool, String) = (row.get(0), row.get(1), row.get(2));
        let q = format!(
            "{}.{}",
            sluice::postgres::catalog::quote_ident(&schema),
            sluice::postgres::catalog::quote_ident(table)
        );
        if !exists {
            missing.push(format!("{schema}.{table} does not exist"));
        } else if !select {
            missing.push(format!(
                "{user} may not read {schema}.{table} — GRANT SELECT ON {q} TO {};",
                sluice::postgres::catalog::quote_ident(&user)
            ));
        }
    }
    Ok(missing)
}

/// A CDC source's server settings, the role's rights (the assessment `cdc-sync init` makes,
/// with the SQL for whoever must run it), the publication, the slot and the WAL it retains.
async fn cdc_lines(
    conn: &PgConnection,
    source: &str,
    cdc: &sluice::config::CdcConfig,
) -> Vec<(Mark, String)> {
    use sluice::postgres::replication::{Facts, PublicationStep, Wanted};
    let wanted = Wanted::for_source(source, cdc);
    let facts = match Facts::read(conn, &wanted).await {
        Ok(f) => f,
        Err(e) => return vec![(Mark::Fail, e.into_message())],
    };
    let mut out = vec![];
    if facts.wal_level == "logical" {
        out.push((Mark::Ok, "wal_level = logical".to_string()));
    }
    let a = facts.assess(&wanted);
    let (publication, slot) = (&wanted.publication, &wanted.slot);
    if a.is_ready() {
        out.push((
            Mark::Ok,
            format!(
                "role {} has what cdc-sync needs (replication, and SELECT on the {} tables it replicates)",
                facts.role,
                facts.tables.len()
            ),
        ));
        match a.publication {
            PublicationStep::Adopt => out.push((Mark::Ok, format!("publication {publication} covers what pipeline.yaml replicates"))),
            PublicationStep::Create(_) => out.push((Mark::Fail, format!("publication {publication} does not exist — run `cdc-sync init --source {source}` (the role may create it)"))),
            PublicationStep::Add(missing) => {
                let what: Vec<String> = missing.into_iter().map(|(w, _)| w).collect();
                out.push((Mark::Fail, format!("publication {publication} lacks {} — run `cdc-sync init --source {source}`", what.join(", "))));
            }
        }
    } else {
        out.push((
            Mark::Fail,
            format!(
                "{} — as `cdc-sync init` prints it, run:\n{}",
                a.missing.join("; "),
                a.sql_block().trim_end()
            ),
        ));
    }
    match &facts.slot {
        None => out.push((
            Mark::Fail,
            format!("slot {slot} does not exist — run `cdc-sync init --source {source}` (the first run then snapshots every table)"),
        )),
        Some(s) if s.unusable(slot).is_some() => {
            out.push((Mark::Fail, s.unusable(slot).unwrap_or_default()))
        }
        Some(s) if s.wal_status.as_deref() == Some("lost") => out.push((
            Mark::Fail,
            format!("slot {slot} was invalidated by the server — SELECT pg_drop_replication_slot('{slot}'); then `cdc-sync init` and `cdc-sync resync --all`"),
        )),
        Some(_) => out.push(retained_wal(conn, slot, cdc.retained_wal_warn_mib).await),
    }
    out
}

/// The WAL the slot holds back, against the pipeline's warning level.
async fn retained_wal(conn: &PgConnection, slot: &str, warn_mib: u64) -> (Mark, String) {
    let row = conn
        .query_one(
            "reading the slot's retained WAL",
            &sluice::postgres::replication::retained_wal_sql(),
            &[&slot],
        )
        .await;
    match row {
        Err(e) => (Mark::Fail, e.into_message()),
        Ok(row) => {
            let bytes: Option<i64> = row.get(0);
            let mib = bytes.unwrap_or(0) as f64 / (1024.0 * 1024.0);
            if mib > warn_mib as f64 {
                (
                    Mark::Warn,
                    format!("slot {slot} retains {mib:.1} MiB of WAL, above retained_wal_warn_mib ({warn_mib}): is cdc-sync running?"),
                )
            } else {
                (Mark::Ok, format!("slot {slot} retains {mib:.1} MiB of WAL"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lines_read_as_a_checklist() {
        let mut r = Report::default();
        r.add(
            Mark::Ok,
            "credentials",
            "me@example.com (gcloud user credentials)",
        );
        r.add(Mark::Fail, "source shop", "no TLS");
        r.add(Mark::Skip, "project p IAM policy", "not readable here");
        assert_eq!(r.checks[1].to_string(), "✗ source shop: no TLS");
        assert_eq!(r.summary(), "3 checks: 1 ✓, 1 ✗, 1 –");
        assert_eq!(r.count(Mark::Fail), 1);
    }

    #[test]
    fn an_access_list_grants_by_email_or_iam_member() {
        let access = vec![
            json!({"role": "WRITER", "userByEmail": "sluice-pg-copy@p.iam.gserviceaccount.com"}),
            json!({"role": "roles/bigquery.dataViewer", "iamMember": "serviceAccount:sluice-monitor@p.iam.gserviceaccount.com"}),
            json!({"role": "OWNER", "specialGroup": "projectOwners"}),
        ];
        let pg = worker_account("pg-copy", "", "p");
        assert!(holds(&access, &pg, &WRITE_ROLES));
        let monitor = worker_account("monitor", "", "p");
        assert!(holds(&access, &monitor, &READ_ROLES));
        assert!(!holds(&access, &monitor, &WRITE_ROLES));
        let dsn = |s: &str| sluice::secret::Secret::new(s);
        assert_eq!(
            absent_socket(&dsn(
                "postgres://app:pw@/shop?host=/cloudsql/p:us-central1:shop"
            )),
            Some("/cloudsql/p:us-central1:shop".to_string())
        );
        assert_eq!(absent_socket(&dsn("postgres://app:pw@10.0.0.5/shop")), None);
        assert_eq!(
            absent_socket(&dsn("postgres://app:pw@/shop?host=/tmp")),
            None
        );
        assert!(loopback("127.0.0.1") && loopback("::1") && loopback("localhost"));
        assert!(!loopback("10.0.0.5") && !loopback("db.internal") && !loopback("/cloudsql/p:r:i"));
        assert_eq!(
            worker_account("cdc-sync", "-dev", "p"),
            "sluice-cdc-sync-dev@p.iam.gserviceaccount.com"
        );
    }
}

//! What Cloud Run runs: the workers' jobs and the push service Terraform deployed, their
//! image, the secrets the jobs' environment reads, and who may invoke the service.

use std::collections::{BTreeMap, BTreeSet};

use google_cloud_run_v2::client::{Jobs, Services};
use serde_json::Value;
use sluice::config::Target;
use sluice::google::not_found;

use super::reads::{bounded, refusal};
use super::report::{apply_hint, Mark, Report};

/// What Cloud Run runs: each job's and the service's image, and which secret each
/// environment variable of a job is read from.
#[derive(Debug, Default)]
pub(super) struct Deployed {
    /// Environment variable → `projects/P/secrets/S`.
    pub secret_env: BTreeMap<String, String>,
}

/// The Cloud Run jobs and service of the deployment `d` in `region`: each found, on one
/// image, the service private; returns which secret each job variable is read from.
pub(super) async fn cloud_run(r: &mut Report, t: &Target, d: &Value, region: &str) -> Deployed {
    let mut deployed = Deployed::default();
    let Some((jobs, services)) = clients(r, t).await else {
        return deployed;
    };
    let parent = format!("projects/{}/locations/{region}", t.project);
    // image → the resources running it
    let mut images: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let missing = read_jobs(r, t, d, &jobs, &parent, &mut images, &mut deployed).await;
    if !missing.is_empty() {
        r.add(
            Mark::Fail,
            "Cloud Run jobs",
            format!(
                "{} not found in {region} — {} (or pass --region)",
                missing.join(", "),
                apply_hint(&t.name)
            ),
        );
    }
    if let Some(service) = d["service"]["name"].as_str() {
        read_service(r, t, &services, &parent, service, region, &mut images).await;
    }
    one_image(r, t, &images);
    deployed
}

/// The Cloud Run clients, or None (said in the report) when they cannot be built.
async fn clients(r: &mut Report, t: &Target) -> Option<(Jobs, Services)> {
    let credentials = match sluice::auth::Auth::for_target(t).credentials().await {
        Ok(c) => c,
        Err(e) => {
            r.add(Mark::Skip, "Cloud Run", e.into_message());
            return None;
        }
    };
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
    match (jobs.build().await, services.build().await) {
        (Ok(j), Ok(s)) => Some((j, s)),
        (Err(e), _) | (_, Err(e)) => {
            r.add(Mark::Skip, "Cloud Run", format!("building the client: {e}"));
            None
        }
    }
}

/// Reads the job of every worker the deployment schedules: its images, and the secrets its
/// environment reads. Returns the jobs not found.
async fn read_jobs(
    r: &mut Report,
    t: &Target,
    d: &Value,
    jobs: &Jobs,
    parent: &str,
    images: &mut BTreeMap<String, Vec<String>>,
    deployed: &mut Deployed,
) -> Vec<String> {
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
    missing
}

/// Reads the push service: found, its invoker IAM check on, its images, its invokers.
async fn read_service(
    r: &mut Report,
    t: &Target,
    services: &Services,
    parent: &str,
    service: &str,
    region: &str,
    images: &mut BTreeMap<String, Vec<String>>,
) {
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
                services,
                &format!("{parent}/services/{service}"),
                service,
            )
            .await;
        }
        Ok(Err(e)) if not_found(&e) => r.add(
            Mark::Fail,
            format!("Cloud Run service {service}"),
            format!("not found in {region} — {}", apply_hint(&t.name)),
        ),
        Ok(Err(e)) => r.add(
            Mark::Skip,
            format!("Cloud Run service {service}"),
            refusal(&e, "run.services.get, e.g. roles/run.viewer"),
        ),
        Err(e) => r.add(Mark::Skip, format!("Cloud Run service {service}"), e),
    }
}

/// Every job and the service run one image.
fn one_image(r: &mut Report, t: &Target, images: &BTreeMap<String, Vec<String>>) {
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
}

/// The push service is private: no `allUsers` or `allAuthenticatedUsers` may invoke it (on
/// Cloud Run log-ingest relies on Cloud Run's IAM check for the tokens' signatures).
async fn service_invokers(
    r: &mut Report,
    t: &Target,
    services: &Services,
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

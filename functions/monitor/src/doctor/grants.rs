//! The roles each worker account holds: on the datasets, from their access lists, and on
//! the project, from its IAM policy.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use sluice::config::Target;

use super::project::Accesses;
use super::reads::{bounded, refusal};
use super::report::{apply_hint, Mark, Report};
use crate::context::Monitor;

/// Where Terraform's service account of a worker is (modules/plan: `sluice-<worker><suffix>`).
pub fn worker_account(worker: &str, suffix: &str, project: &str) -> String {
    format!("sluice-{worker}{suffix}@{project}.iam.gserviceaccount.com")
}

/// Dataset roles each worker account holds, from the access lists read, and its project
/// roles, from the project's IAM policy.
pub(super) async fn grants(r: &mut Report, m: &Monitor, d: &Value, accesses: &Accesses) {
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
    let credentials = sluice::auth::Auth::for_target(t)
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
        assert_eq!(
            worker_account("cdc-sync", "-dev", "p"),
            "sluice-cdc-sync-dev@p.iam.gserviceaccount.com"
        );
    }
}

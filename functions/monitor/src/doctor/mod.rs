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
//!
//! One file per concern: `project` (credentials, datasets, ops tables, the lake), `grants`,
//! `cloud_run`, `secrets`, `sources`; `report` is the checklist, `reads` the Google calls.

mod cloud_run;
mod grants;
mod project;
mod reads;
mod report;
mod secrets;
mod sources;

use std::collections::BTreeMap;
use std::path::Path;

use sluice::Result;

use crate::context::Monitor;
use cloud_run::Deployed;

pub use report::{Check, Mark, Report};

/// What the caller says about the deployment that pipeline.yaml cannot.
#[derive(Debug, Clone)]
pub struct Options {
    /// Terraform's `region` (Cloud Run, Cloud Scheduler).
    pub region: String,
}

/// Runs every check for the monitor's target.
pub async fn doctor(m: &Monitor, base: &Path, opts: &Options) -> Result<Report> {
    let p = &m.pipeline;
    let t = &m.target;
    let mut r = Report::default();
    let cloud = !t.no_auth;
    let all = sluice::deployment::deployment(p, &m.dag, base, std::slice::from_ref(&t.name))?;
    let d = &all["targets"][&t.name];

    let usable = project::credentials(&mut r, t).await;
    let mut accesses = BTreeMap::new();
    if usable {
        project::datasets(&mut r, m, d, cloud, &mut accesses).await;
        project::lake(&mut r, t).await;
    }
    let mut deployed = Deployed::default();
    if cloud && usable {
        grants::grants(&mut r, m, d, &accesses).await;
        deployed = cloud_run::cloud_run(&mut r, t, d, &opts.region).await;
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
    let resolved = secrets::secrets(&mut r, p, t, &deployed, usable).await;
    sources::sources(&mut r, p, t, &resolved).await;
    Ok(r)
}

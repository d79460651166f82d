//! `targets:`: the environments (`local`, `dev`, `prod`, pull-request targets), and a
//! `Target` with everything resolved for a run. A target carries the settings of its
//! credentials (`no_auth`, `timeouts`); `crate::auth` builds the credentials from them, and
//! `crate::secret_manager` reads the secrets a `DsnRef` names.

use std::any::Any;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::Deserialize;

use super::duration::timeout;
use super::source::Source;
use super::Pipeline;
use crate::error::{Error, Result};
use crate::secret::DsnRef;

/// Per-environment settings. Every field is optional; unset ones take the defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// BigQuery project to write to (default: `bigquery.project`).
    #[serde(default)]
    pub project: Option<String>,
    /// BigQuery REST base URL, for the emulator (default: Google's).
    #[serde(default)]
    pub bigquery_endpoint: Option<String>,
    /// BigQuery Storage Write gRPC URL, for the emulator (default: Google's).
    #[serde(default)]
    pub storage_write_endpoint: Option<String>,
    /// Appended to every dataset sluice writes (`_dev`); PR targets add their own name.
    #[serde(default)]
    pub dataset_suffix: Option<String>,
    /// The lake: a local directory, or `gs://bucket` (default: `gs://<lake.bucket>`).
    #[serde(default)]
    pub lake: Option<String>,
    /// Secret Manager's endpoint: a regional or private one (default: Google's).
    #[serde(default)]
    pub secret_manager_endpoint: Option<String>,
    /// The Cloud Run Admin API's endpoint, which `monitor doctor` asks what is deployed: a
    /// private one (default: Google's).
    #[serde(default)]
    pub run_endpoint: Option<String>,
    /// The Resource Manager API's endpoint, which `monitor doctor` asks for the project's IAM
    /// policy: a private one (default: Google's).
    #[serde(default)]
    pub resource_manager_endpoint: Option<String>,
    /// The bucket name that BigQuery load jobs use for a local lake directory (`gs://<name>/…`).
    #[serde(default)]
    pub lake_bucket: Option<String>,
    /// Use no credentials (the emulators); otherwise Application Default Credentials.
    #[serde(default)]
    pub no_auth: bool,
    /// Check the OIDC token of Pub/Sub push requests (default true; the local emulator sends none).
    #[serde(default)]
    pub verify_push_tokens: Option<bool>,
    /// Per-source connection overrides for this target.
    #[serde(default)]
    pub sources: BTreeMap<String, SourceOverride>,
    /// Marts of this target read the tables the pipeline lands in production (project
    /// `bigquery.project`, datasets unsuffixed) rather than this target's own. Default: true
    /// for `dev` and pull-request targets, false for the others.
    #[serde(default)]
    pub read_production_inputs: Option<bool>,
    /// How long to wait on Postgres, BigQuery and Google's other endpoints before they count as
    /// not answering (defaults fit Cloud Run: `{connect: 10s, request: 30s, statement: 5m}`).
    #[serde(default)]
    pub timeouts: Option<Timeouts>,
}

/// How long sluice waits on an endpoint before it counts as not answering. Each attempt gets
/// these; an attempt that gets no answer is tried twice more, then the run fails with one line
/// naming the endpoint and what it did not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    /// Opening a connection: TCP, then for Postgres the startup and authentication.
    #[serde(deserialize_with = "timeout")]
    pub connect: Duration,
    /// One HTTP request (BigQuery, Secret Manager, tokens), from sending it to the last byte of
    /// its answer.
    #[serde(deserialize_with = "timeout")]
    pub request: Duration,
    /// A Postgres statement's answer: its first row, and each next part of a long answer (COPY
    /// data, slot changes). A dead connection is noticed sooner, by TCP keepalives.
    #[serde(deserialize_with = "timeout")]
    pub statement: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            request: Duration::from_secs(30),
            statement: Duration::from_secs(300),
        }
    }
}

/// A target's override of a source's connection.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceOverride {
    /// Where the connection string comes from in this target.
    pub dsn: DsnRef,
}

/// Where the lake is for a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LakeLocation {
    /// A directory; BigQuery (the emulator) reads it as `gs://<bucket>/…`.
    Local { dir: PathBuf, bucket: String },
    /// A GCS bucket.
    Gcs { bucket: String },
}

/// A target with everything resolved.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub project: String,
    pub location: String,
    pub bigquery_endpoint: Option<String>,
    pub storage_write_endpoint: Option<String>,
    pub secret_manager_endpoint: Option<String>,
    pub run_endpoint: Option<String>,
    pub resource_manager_endpoint: Option<String>,
    pub dataset_suffix: String,
    pub lake: LakeLocation,
    /// No credentials (the emulators); otherwise Application Default Credentials.
    pub no_auth: bool,
    /// Whether log-ingest checks push tokens.
    pub verify_push_tokens: bool,
    /// Where marts read what pg-copy, cdc-sync and log-ingest land (and their run ledger):
    /// this target's project and suffix, or production's for `dev` and PR targets.
    pub inputs_project: String,
    pub inputs_suffix: String,
    /// How long to wait on endpoints.
    pub timeouts: Timeouts,
    /// The credentials built from `no_auth` and `timeouts`, once (`Target::credentials`).
    credentials: Credentials,
    source_overrides: BTreeMap<String, DsnRef>,
}

/// Where a target keeps the credentials built for it on first use, so that all of its clients,
/// and those of its clones, share one set (one token cache). The type is the builder's
/// (`crate::auth::Auth`): a target holds the settings, and the code that turns them into
/// credentials does not live here.
#[derive(Clone, Default)]
struct Credentials(Arc<OnceLock<Arc<dyn Any + Send + Sync>>>);

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0.get() {
            Some(_) => "Credentials(built)",
            None => "Credentials(not yet built)",
        })
    }
}

impl Target {
    /// The dataset a logical dataset name maps to in this target.
    pub fn dataset(&self, name: &str) -> String {
        format!("{name}{}", self.dataset_suffix)
    }

    /// Where `source`'s DSN comes from in this target.
    pub fn dsn_ref<'a>(&'a self, source_name: &str, source: &'a Source) -> &'a DsnRef {
        self.source_overrides
            .get(source_name)
            .unwrap_or(&source.dsn)
    }

    /// This target's credentials: built by `build` from its settings on first use, the same
    /// ones after (for its clones too). `crate::auth::Auth::for_target` is the one caller, so
    /// one type is kept (a `T` of another type would be built anew on every call).
    pub(crate) fn credentials<T>(&self, build: impl Fn(&Target) -> T) -> T
    where
        T: Clone + Send + Sync + 'static,
    {
        let kept = self.credentials.0.get_or_init(|| Arc::new(build(self)));
        kept.downcast_ref::<T>()
            .cloned()
            .unwrap_or_else(|| build(self))
    }
}

impl Pipeline {
    /// Resolves a target by name. Environment variables `SLUICE_BQ_ENDPOINT`,
    /// `SLUICE_BQ_GRPC_ENDPOINT` and `SLUICE_LAKE_DIR` (printed by `scripts/local-stack.sh env`)
    /// override the local target's endpoints, so the ports live in one place.
    pub fn target(&self, name: &str) -> Result<Target> {
        let (config, suffix) = match self.targets.get(name) {
            Some(t) => (t.clone(), t.dataset_suffix.clone().unwrap_or_default()),
            None if is_pr_target(name) => {
                let base = self.targets.get("dev").cloned().unwrap_or_default();
                let pr = name.replace('-', "_");
                let suffix = format!("{}_{pr}", base.dataset_suffix.clone().unwrap_or_default());
                (base, suffix)
            }
            None => {
                let known: Vec<&str> = self.targets.keys().map(String::as_str).collect();
                return Err(Error::config(format!(
                    "unknown target `{name}` (pipeline.yaml defines: {}; pull-request targets are named like pr-123)",
                    known.join(", ")
                )));
            }
        };
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let local = name == "local";
        let bigquery_endpoint = local
            .then(|| env("SLUICE_BQ_ENDPOINT"))
            .flatten()
            .or(config.bigquery_endpoint);
        let storage_write_endpoint = local
            .then(|| env("SLUICE_BQ_GRPC_ENDPOINT"))
            .flatten()
            .or(config.storage_write_endpoint);
        let lake_spec = local
            .then(|| env("SLUICE_LAKE_DIR"))
            .flatten()
            .or(config.lake.clone());
        let lake = match lake_spec {
            Some(spec) if spec.starts_with("gs://") => LakeLocation::Gcs {
                bucket: spec
                    .trim_start_matches("gs://")
                    .trim_end_matches('/')
                    .to_string(),
            },
            Some(dir) => {
                let bucket = config
                    .lake_bucket
                    .clone()
                    .unwrap_or_else(|| self.lake.bucket.clone());
                // A directory holds one folder per bucket, as the emulator's GCS_LOCAL_ROOT reads it.
                LakeLocation::Local {
                    dir: PathBuf::from(dir),
                    bucket,
                }
            }
            None => LakeLocation::Gcs {
                bucket: self.lake.bucket.clone(),
            },
        };
        let project = config
            .project
            .clone()
            .unwrap_or_else(|| self.bigquery.project.clone());
        let production_inputs = config
            .read_production_inputs
            .unwrap_or(name == "dev" || is_pr_target(name));
        let (inputs_project, inputs_suffix) = if production_inputs {
            (self.bigquery.project.clone(), String::new())
        } else {
            (project.clone(), suffix.clone())
        };
        let timeouts = config.timeouts.unwrap_or_default();
        Ok(Target {
            name: name.to_string(),
            project,
            inputs_project,
            inputs_suffix,
            location: self.bigquery.location.clone(),
            bigquery_endpoint,
            storage_write_endpoint,
            secret_manager_endpoint: config.secret_manager_endpoint,
            run_endpoint: config.run_endpoint,
            resource_manager_endpoint: config.resource_manager_endpoint,
            dataset_suffix: suffix,
            lake,
            no_auth: config.no_auth,
            verify_push_tokens: config.verify_push_tokens.unwrap_or(true),
            timeouts,
            credentials: Credentials::default(),
            source_overrides: config
                .sources
                .into_iter()
                .map(|(k, v)| (k, v.dsn))
                .collect(),
        })
    }
}

/// `pr-123`, `pr_45`: a pull-request target.
pub(super) fn is_pr_target(name: &str) -> bool {
    let rest = name
        .strip_prefix("pr-")
        .or_else(|| name.strip_prefix("pr_"));
    matches!(rest, Some(r) if !r.is_empty() && r.chars().all(|c| c.is_ascii_alphanumeric()))
}

//! `pipeline.yaml`: the team's pipeline in one file, read by every worker and by Terraform.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::secret::Secret;

/// The whole pipeline definition.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pipeline {
    /// A short name for this pipeline; it prefixes job ids and labels.
    pub name: String,
    /// Where the warehouse lives.
    pub bigquery: BigQueryConfig,
    /// Where Parquet files are staged and kept for replay.
    pub lake: LakeConfig,
    /// Postgres databases to copy from, by name.
    #[serde(default)]
    pub sources: BTreeMap<String, Source>,
    /// App events from Pub/Sub (log-ingest).
    #[serde(default)]
    pub events: Option<EventsConfig>,
    /// Environments: `local`, `dev`, `prod`; pull-request targets (`pr-123`) derive from `dev`.
    #[serde(default)]
    pub targets: BTreeMap<String, TargetConfig>,
}

/// What log-ingest does with the app's events.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsConfig {
    /// BigQuery dataset of the event tables (before the target's suffix).
    #[serde(default = "default_events_dataset")]
    pub dataset: String,
    /// Directory of the JSON Schemas, `<type>.json` each, relative to pipeline.yaml.
    #[serde(default = "default_events_schemas")]
    pub schemas: PathBuf,
    /// Message attribute that names the event type.
    #[serde(default = "default_type_attribute")]
    pub type_attribute: String,
    /// Top-level JSON field that names the type when the attribute is absent.
    #[serde(default)]
    pub type_field: Option<String>,
    /// Largest event payload (decoded message data) accepted; larger ones are dead-lettered.
    #[serde(default = "default_max_payload_bytes")]
    pub max_payload_bytes: usize,
    /// Group commit: a batch is written when it holds this many rows, this many bytes, or
    /// its first row has waited this long.
    #[serde(default)]
    pub batch: EventBatch,
    /// Seconds of counts per run-ledger row.
    #[serde(default = "default_ledger_window_s")]
    pub ledger_window_s: u64,
    /// Who may push: the OIDC token Pub/Sub signs for the push subscription.
    #[serde(default)]
    pub push: Option<PushAuth>,
    /// Pub/Sub subscription names, for Terraform and `log-ingest pull`.
    #[serde(default)]
    pub subscription: Option<String>,
}

/// Group-commit limits of log-ingest.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventBatch {
    #[serde(default = "default_batch_rows")]
    pub max_rows: usize,
    #[serde(default = "default_batch_bytes")]
    pub max_bytes: usize,
    #[serde(default = "default_batch_wait_ms")]
    pub max_wait_ms: u64,
}

impl Default for EventBatch {
    fn default() -> Self {
        EventBatch {
            max_rows: default_batch_rows(),
            max_bytes: default_batch_bytes(),
            max_wait_ms: default_batch_wait_ms(),
        }
    }
}

/// The push subscription's OIDC token: audience and signer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushAuth {
    /// The `aud` claim the push subscription is configured with (usually the service URL).
    pub audience: String,
    /// The service account whose token Pub/Sub attaches (`email` claim).
    pub service_account: String,
    /// Where the signing keys are: a JWKS URL (default Google's) or a file path.
    #[serde(default = "default_jwks")]
    pub jwks: String,
}

fn default_events_dataset() -> String {
    "events".into()
}
fn default_events_schemas() -> PathBuf {
    PathBuf::from("schemas/events")
}
fn default_type_attribute() -> String {
    "event_type".into()
}
fn default_max_payload_bytes() -> usize {
    1024 * 1024
}
fn default_batch_rows() -> usize {
    500
}
fn default_batch_bytes() -> usize {
    5 * 1024 * 1024
}
fn default_batch_wait_ms() -> u64 {
    25
}
fn default_ledger_window_s() -> u64 {
    60
}
fn default_jwks() -> String {
    "https://www.googleapis.com/oauth2/v3/certs".into()
}

/// BigQuery project and the datasets sluice itself owns.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BigQueryConfig {
    /// The Google Cloud project of the production warehouse.
    pub project: String,
    /// Location of datasets and jobs.
    #[serde(default = "default_location")]
    pub location: String,
    /// Dataset of the run ledger (`runs`) and other operational tables.
    #[serde(default = "default_ops_dataset")]
    pub ops_dataset: String,
    /// Dataset for staging tables; tables in it expire after a day.
    #[serde(default = "default_staging_dataset")]
    pub staging_dataset: String,
}

/// The lake in the cloud.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LakeConfig {
    /// GCS bucket that holds `raw/` and `cdc/`.
    pub bucket: String,
}

/// Where a connection string comes from; never written inline.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(try_from = "DsnSpec")]
pub enum DsnRef {
    /// The name of an environment variable holding the DSN.
    Env(String),
    /// A Secret Manager secret (`projects/P/secrets/S`, optionally `/versions/V`).
    Secret(String),
}

/// `dsn:` as written: `{env: VAR}` or `{secret: projects/P/secrets/S}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DsnSpec {
    /// The name of an environment variable holding the DSN.
    env: Option<String>,
    /// A Secret Manager secret name.
    secret: Option<String>,
}

impl TryFrom<DsnSpec> for DsnRef {
    type Error = String;

    fn try_from(s: DsnSpec) -> std::result::Result<Self, String> {
        match (s.env, s.secret) {
            (Some(e), None) => Ok(DsnRef::Env(e)),
            (None, Some(n)) => Ok(DsnRef::Secret(n)),
            _ => Err("give exactly one of `env: VAR` or `secret: projects/P/secrets/S`".into()),
        }
    }
}

/// One Postgres database.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// How to find the connection string.
    pub dsn: DsnRef,
    /// BigQuery dataset that receives this source's tables (default: the source's name).
    #[serde(default)]
    pub dataset: Option<String>,
    /// Tables to copy with pg-copy, by name.
    #[serde(default)]
    pub tables: BTreeMap<String, TableConfig>,
    /// Change data capture of this database into replica tables (cdc-sync).
    #[serde(default)]
    pub cdc: Option<CdcConfig>,
}

/// What cdc-sync replicates from a source, and how.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CdcConfig {
    /// Tables in the publication (`orders` or `schema.orders`); give this, `schemas`, or
    /// `all_tables`.
    #[serde(default)]
    pub tables: Vec<String>,
    /// Every table of these Postgres schemas, including tables created later.
    #[serde(default)]
    pub schemas: Vec<String>,
    /// Every table of the database, including tables created later (needs a superuser).
    #[serde(default)]
    pub all_tables: bool,
    /// Publication name (default `sluice_<source>`).
    #[serde(default)]
    pub publication: Option<String>,
    /// Replication slot name (default `sluice_<source>`).
    #[serde(default)]
    pub slot: Option<String>,
    /// BigQuery dataset of the replica tables (default `<source>_replica`).
    #[serde(default)]
    pub dataset: Option<String>,
    /// `soft` (default): deleted and truncated rows stay, flagged `_sluice_deleted`; `hard`:
    /// they are removed.
    #[serde(default)]
    pub deletes: DeleteMode,
    /// Tables that also keep an append-only `<table>_history` of every change.
    #[serde(default)]
    pub history: Vec<String>,
    /// Changes read from the slot per batch (whole transactions, so a batch may hold more).
    #[serde(default = "default_batch_changes")]
    pub batch_changes: u32,
    /// Warn when the slot retains more WAL than this many MiB.
    #[serde(default = "default_retained_wal_warn_mib")]
    pub retained_wal_warn_mib: u64,
    /// `error` (default) or `skip` columns of unsupported types.
    #[serde(default)]
    pub on_unsupported: OnUnsupported,
}

/// How deletes and truncates reach a replica.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DeleteMode {
    /// The row stays with `_sluice_deleted = TRUE` and `_sluice_deleted_at`.
    #[default]
    Soft,
    /// The row is removed.
    Hard,
}

fn default_batch_changes() -> u32 {
    50_000
}
fn default_retained_wal_warn_mib() -> u64 {
    1024
}

impl CdcConfig {
    pub fn publication(&self, source: &str) -> String {
        self.publication
            .clone()
            .unwrap_or_else(|| format!("sluice_{source}"))
    }
    pub fn slot(&self, source: &str) -> String {
        self.slot
            .clone()
            .unwrap_or_else(|| format!("sluice_{source}"))
    }
}

/// How a table is copied.
#[derive(Debug, Clone, Copy, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Replace the whole BigQuery table on every run.
    Full,
    /// Copy rows whose watermark falls on the logical date and replace that date's partition.
    Incremental,
}

/// What to do with a column whose type sluice cannot map.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OnUnsupported {
    /// Fail with a message naming table and column.
    #[default]
    Error,
    /// Leave the column out, with a warning.
    Skip,
}

pub use crate::schedule::Schedule;

/// One table of a source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableConfig {
    /// `full` or `incremental`.
    pub mode: Mode,
    /// Postgres schema of the table.
    #[serde(default = "default_schema")]
    pub schema: String,
    /// For `incremental`: the date, timestamp or timestamptz column that assigns rows to dates.
    #[serde(default)]
    pub watermark_column: Option<String>,
    /// When Cloud Scheduler starts the copy: `daily` (the day before) or `hourly` (today so far).
    #[serde(default)]
    pub schedule: Schedule,
    /// `numeric` columns to land as exact STRING instead of NUMERIC/BIGNUMERIC.
    #[serde(default)]
    pub numeric_as_string: Vec<String>,
    /// `error` (default) or `skip` columns of unsupported types.
    #[serde(default)]
    pub on_unsupported: OnUnsupported,
    /// BigQuery clustering columns.
    #[serde(default)]
    pub cluster_by: Vec<String>,
}

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
    #[serde(deserialize_with = "duration_value")]
    pub connect: Duration,
    /// One HTTP request (BigQuery, Secret Manager, tokens), from sending it to the last byte of
    /// its answer.
    #[serde(deserialize_with = "duration_value")]
    pub request: Duration,
    /// A Postgres statement's answer: its first row, and each next part of a long answer (COPY
    /// data, slot changes). A dead connection is noticed sooner, by TCP keepalives.
    #[serde(deserialize_with = "duration_value")]
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

/// A duration written like `10s`, `500ms`, `5m` (or plain seconds).
fn duration_value<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Spec {
        Seconds(u64),
        Text(String),
    }
    let parsed = match Spec::deserialize(d)? {
        Spec::Seconds(n) => Duration::from_secs(n),
        Spec::Text(t) => parse_duration(&t).map_err(serde::de::Error::custom)?,
    };
    if parsed.is_zero() {
        return Err(serde::de::Error::custom("must be more than 0"));
    }
    Ok(parsed)
}

/// A target's override of a source's connection.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceOverride {
    /// Where the connection string comes from in this target.
    pub dsn: DsnRef,
}

fn default_location() -> String {
    "US".into()
}
fn default_ops_dataset() -> String {
    "ops".into()
}
fn default_staging_dataset() -> String {
    "sluice_staging".into()
}
fn default_schema() -> String {
    "public".into()
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
    pub dataset_suffix: String,
    pub lake: LakeLocation,
    pub no_auth: bool,
    /// Whether log-ingest checks push tokens.
    pub verify_push_tokens: bool,
    /// Where marts read what pg-copy, cdc-sync and log-ingest land (and their run ledger):
    /// this target's project and suffix, or production's for `dev` and PR targets.
    pub inputs_project: String,
    pub inputs_suffix: String,
    /// How long to wait on endpoints.
    pub timeouts: Timeouts,
    source_overrides: BTreeMap<String, DsnRef>,
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
}

impl Pipeline {
    /// Reads and validates `pipeline.yaml`.
    pub fn load(path: &Path) -> Result<Pipeline> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::config(format!("cannot read {}: {e}", path.display())))?;
        Pipeline::parse(&text, &path.display().to_string())
    }

    /// Parses and validates pipeline YAML; `origin` names the file in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Pipeline> {
        refuse_duplicate_keys(text, origin)?;
        let p: Pipeline = serde_yaml::from_str(text).map_err(|e| {
            let msg = e.to_string();
            Error::config(format!("{origin}: {msg}"))
        })?;
        p.validate(text, origin)?;
        Ok(p)
    }

    fn validate(&self, text: &str, origin: &str) -> Result<()> {
        let at = |path: &[&str], msg: String| {
            let line = line_of(text, path)
                .map(|l| format!(" (line {l})"))
                .unwrap_or_default();
            Error::config(format!("{origin}: {}{line}: {msg}", path.join(".")))
        };
        for (sname, source) in &self.sources {
            check_name(sname).map_err(|m| at(&["sources", sname], m))?;
            if let Some(ds) = &source.dataset {
                check_name(ds).map_err(|m| at(&["sources", sname, "dataset"], m))?;
            }
            if let Some(cdc) = &source.cdc {
                let path = ["sources", sname.as_str(), "cdc"];
                let given = [
                    !cdc.tables.is_empty(),
                    !cdc.schemas.is_empty(),
                    cdc.all_tables,
                ];
                if given.iter().filter(|g| **g).count() != 1 {
                    return Err(at(
                        &path,
                        "give exactly one of `tables`, `schemas` or `all_tables: true`".into(),
                    ));
                }
                for (key, name) in [("slot", &cdc.slot), ("publication", &cdc.publication)] {
                    if let Some(n) = name {
                        if n.is_empty()
                            || !n
                                .chars()
                                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                        {
                            return Err(at(
                                &[&path[..], &[key]].concat(),
                                format!("`{n}`: use lowercase letters, digits and underscores"),
                            ));
                        }
                    }
                }
                if let Some(ds) = &cdc.dataset {
                    check_name(ds).map_err(|m| at(&[&path[..], &["dataset"]].concat(), m))?;
                }
                if cdc.batch_changes == 0 {
                    return Err(at(
                        &[&path[..], &["batch_changes"]].concat(),
                        "must be at least 1".into(),
                    ));
                }
            }
            for (tname, t) in &source.tables {
                let path = ["sources", sname.as_str(), "tables", tname.as_str()];
                check_name(tname).map_err(|m| at(&path, m))?;
                if let Schedule::Cron(c) = &t.schedule {
                    return Err(at(
                        &[&path[..], &["schedule"]].concat(),
                        format!("`{c}`: a copy runs daily (for the day before) or hourly (for today so far)"),
                    ));
                }
                match (t.mode, &t.watermark_column) {
                    (Mode::Incremental, None) => {
                        return Err(at(
                            &path,
                            "mode incremental needs `watermark_column` (the date or timestamp column that assigns rows to dates)".into(),
                        ))
                    }
                    (Mode::Full, Some(_)) => {
                        return Err(at(
                            &[&path[..], &["watermark_column"]].concat(),
                            "`watermark_column` applies to mode incremental only".into(),
                        ))
                    }
                    _ => {}
                }
            }
        }
        if let Some(ev) = &self.events {
            check_name(&ev.dataset).map_err(|m| at(&["events", "dataset"], m))?;
            let b = &ev.batch;
            if b.max_rows == 0 || b.max_rows > 50_000 {
                return Err(at(
                    &["events", "batch", "max_rows"],
                    "must be between 1 and 50000 (insertAll's limit)".into(),
                ));
            }
            if b.max_bytes == 0 || b.max_bytes > 9 * 1024 * 1024 {
                return Err(at(
                    &["events", "batch", "max_bytes"],
                    "must be between 1 and 9437184 (insertAll takes 10 MB per request)".into(),
                ));
            }
            if ev.max_payload_bytes == 0 || ev.max_payload_bytes > 8 * 1024 * 1024 {
                return Err(at(
                    &["events", "max_payload_bytes"],
                    "must be between 1 and 8388608 (a BigQuery row holds 10 MB)".into(),
                ));
            }
            if ev.ledger_window_s == 0 {
                return Err(at(
                    &["events", "ledger_window_s"],
                    "must be at least 1".into(),
                ));
            }
        }
        for (tname, t) in &self.targets {
            for s in t.sources.keys() {
                if !self.sources.contains_key(s) {
                    return Err(at(
                        &["targets", tname, "sources", s],
                        format!("no source named `{s}` in `sources`"),
                    ));
                }
            }
            if let Some(suffix) = &t.dataset_suffix {
                if !suffix
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
                {
                    return Err(at(
                        &["targets", tname, "dataset_suffix"],
                        "may hold letters, digits and underscores only".into(),
                    ));
                }
            }
        }
        Ok(())
    }

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
        Ok(Target {
            name: name.to_string(),
            project,
            inputs_project,
            inputs_suffix,
            location: self.bigquery.location.clone(),
            bigquery_endpoint,
            storage_write_endpoint,
            dataset_suffix: suffix,
            lake,
            no_auth: config.no_auth,
            verify_push_tokens: config.verify_push_tokens.unwrap_or(true),
            timeouts: config.timeouts.unwrap_or_default(),
            source_overrides: config
                .sources
                .into_iter()
                .map(|(k, v)| (k, v.dsn))
                .collect(),
        })
    }
}

/// A duration on the command line or in pipeline.yaml: `50m`, `300s`, `2h`, `500ms`, or plain
/// seconds.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}`: expected a number and a unit (ms, s, m, h)"))?;
    Ok(match unit {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => return Err(format!("`{s}`: unknown unit `{unit}` (use ms, s, m or h)")),
    })
}

/// `pr-123`, `pr_45`: a pull-request target.
fn is_pr_target(name: &str) -> bool {
    let rest = name
        .strip_prefix("pr-")
        .or_else(|| name.strip_prefix("pr_"));
    matches!(rest, Some(r) if !r.is_empty() && r.chars().all(|c| c.is_ascii_alphanumeric()))
}

/// BigQuery dataset and table names: letters, digits, underscores.
fn check_name(name: &str) -> std::result::Result<(), String> {
    if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a valid BigQuery name (letters, digits and underscores only)"
        ))
    }
}

/// A key written twice in one mapping of a YAML document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateKey {
    /// Path of the mapping (`sources.shop.tables`), empty at the top.
    pub mapping: String,
    pub key: String,
    /// Where the mapping starts (1-based).
    pub mapping_line: usize,
    /// The lines the key is on (1-based), when found.
    pub lines: Vec<usize>,
}

impl DuplicateKey {
    /// `sources.shop.tables: key `users` is given twice, at lines 11 and 13; keep one`, with
    /// `offset` added to every line (a document inside a larger file).
    pub fn describe(&self, offset: usize) -> String {
        let inside = if self.mapping.is_empty() {
            String::new()
        } else {
            format!("{}: ", self.mapping)
        };
        let lines = match self.lines.as_slice() {
            [a, b, ..] if a == b => format!("twice on line {}", a + offset),
            [a, b, ..] => format!("twice, at lines {} and {}", a + offset, b + offset),
            _ => format!(
                "twice in the mapping at line {}",
                self.mapping_line + offset
            ),
        };
        format!("{inside}key `{}` is given {lines}; keep one", self.key)
    }
}

/// The first key written twice in one mapping of `text` (serde would keep the second one
/// silently). A document that does not parse has none: the typed parse reports its error.
pub fn duplicate_key(text: &str) -> Option<DuplicateKey> {
    let e = serde_yaml::from_str::<serde_yaml::Value>(text).err()?;
    let msg = e.to_string();
    const DUP: &str = "duplicate entry with key ";
    let at = msg.find(DUP)?;
    let rest = &msg[at + DUP.len()..];
    let quoted = rest.split(" at line ").next().unwrap_or(rest);
    let key: String = serde_json::from_str(quoted).unwrap_or_else(|_| quoted.to_string());
    // serde_yaml places the error at the start of the mapping.
    let (line, column) = e
        .location()
        .map(|l| (l.line(), l.column()))
        .unwrap_or((1, 1));
    Some(DuplicateKey {
        mapping: msg[..at].trim_end_matches(": ").to_string(),
        lines: key_lines(text, line, column, &key),
        key,
        mapping_line: line,
    })
}

/// Refuses a key written twice in one mapping of pipeline.yaml, naming both lines.
fn refuse_duplicate_keys(text: &str, origin: &str) -> Result<()> {
    match duplicate_key(text) {
        None => Ok(()),
        Some(d) => Err(Error::config(format!("{origin}: {}", d.describe(0)))),
    }
}

/// The lines of `key` in the mapping that starts at (`line`, `column`), both 1-based: a block
/// mapping's keys at its indentation, or a flow mapping's (`{a: 1, a: 2}`) wherever they are.
fn key_lines(text: &str, line: usize, column: usize, key: &str) -> Vec<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let is_key = |s: &str| {
        let s = s.trim_start_matches(['{', ',', ' ']);
        [key.to_string(), format!("\"{key}\""), format!("'{key}'")]
            .iter()
            .any(|k| {
                s.strip_prefix(k.as_str())
                    .is_some_and(|r| r.trim_start().starts_with(':'))
            })
    };
    let first = lines.get(line.saturating_sub(1)).copied().unwrap_or("");
    let start = first
        .char_indices()
        .nth(column.saturating_sub(1))
        .map(|(i, _)| i)
        .unwrap_or(0);
    if first[start..].starts_with('{') {
        // A flow mapping: every `key:` after a `{` or `,`, on its lines up to the closing brace.
        let mut out = vec![];
        let mut depth = 0i32;
        for (i, l) in lines.iter().enumerate().skip(line - 1) {
            let l = if i == line - 1 { &l[start..] } else { l };
            for (j, c) in l.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                if depth == 1 && matches!(c, '{' | ',') && is_key(&l[j..]) {
                    out.push(i + 1);
                }
            }
            if depth <= 0 {
                break;
            }
        }
        return out;
    }
    let indent = column - 1;
    let mut out = vec![];
    for (i, l) in lines.iter().enumerate().skip(line - 1) {
        let trimmed = l.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        // The mapping's first line may start with `- ` (an item of a list).
        let (at, body) = if i == line - 1 {
            (indent, &l[start..])
        } else {
            (l.len() - trimmed.len(), trimmed)
        };
        if at < indent {
            break;
        }
        if at == indent && is_key(body) {
            out.push(i + 1);
        }
    }
    out
}

/// The 1-based line of a nested mapping key, found by indentation.
fn line_of(text: &str, path: &[&str]) -> Option<usize> {
    let mut depth = 0;
    let mut min_indent: isize = -1;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('#') || trimmed.is_empty() {
            continue;
        }
        let indent = (line.len() - trimmed.len()) as isize;
        if depth > 0 && indent <= min_indent {
            // Left the block of the previous key without finding the next one.
            return None;
        }
        let key = trimmed
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .trim_matches('"');
        if key == path[depth] && trimmed.contains(':') {
            depth += 1;
            min_indent = indent;
            if depth == path.len() {
                return Some(i + 1);
            }
        }
    }
    None
}

/// Resolves a DSN reference to the connection string (Secret Manager within `timeouts`).
pub async fn resolve_dsn(r: &DsnRef, timeouts: &Timeouts) -> Result<Secret> {
    match r {
        DsnRef::Env(var) => match std::env::var(var) {
            Ok(v) if !v.is_empty() => Ok(Secret::new(v)),
            _ => Err(Error::config(format!(
                "environment variable {var} (the source's dsn) is not set"
            ))),
        },
        DsnRef::Secret(name) => crate::secret_manager::access(name, timeouts).await,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations() {
        assert_eq!(parse_duration("50m").unwrap(), Duration::from_secs(3000));
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("5d").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("m").is_err());
    }

    use super::*;

    const SAMPLE: &str = r#"
name: shop
bigquery:
  project: acme-data
lake:
  bucket: acme-lake
sources:
  shop:
    dsn: { env: SHOP_DATABASE_URL }
    tables:
      users:
        mode: full
      orders:
        mode: incremental
        watermark_column: created_at
targets:
  local:
    project: sluice-local
    bigquery_endpoint: http://127.0.0.1:9050
    lake: .local/lake
    no_auth: true
  dev:
    dataset_suffix: _dev
  prod: {}
"#;

    #[test]
    fn parses_the_sample() {
        let p = Pipeline::parse(SAMPLE, "pipeline.yaml").unwrap();
        let orders = &p.sources["shop"].tables["orders"];
        assert_eq!(orders.mode, Mode::Incremental);
        assert_eq!(orders.schema, "public");
        assert_eq!(crate::catalog::raw_dataset(&p, "shop"), "shop");
        assert_eq!(p.bigquery.ops_dataset, "ops");
    }

    #[test]
    fn targets_resolve_datasets_and_lake() {
        let p = Pipeline::parse(SAMPLE, "pipeline.yaml").unwrap();
        let prod = p.target("prod").unwrap();
        assert_eq!(prod.dataset("shop"), "shop");
        assert_eq!(prod.project, "acme-data");
        assert_eq!(
            prod.lake,
            LakeLocation::Gcs {
                bucket: "acme-lake".into()
            }
        );
        let dev = p.target("dev").unwrap();
        assert_eq!(dev.dataset("shop"), "shop_dev");
        let pr = p.target("pr-42").unwrap();
        assert_eq!(pr.dataset("ops"), "ops_dev_pr_42");
        let err = p.target("prdo").unwrap_err().to_string();
        assert!(err.contains("unknown target `prdo`"), "{err}");
        assert!(err.contains("dev, local, prod"), "{err}");
    }

    #[test]
    fn timeouts_default_and_are_set_per_target() {
        let p = Pipeline::parse(SAMPLE, "pipeline.yaml").unwrap();
        assert_eq!(p.target("prod").unwrap().timeouts, Timeouts::default());
        let set = SAMPLE.replace(
            "    dataset_suffix: _dev",
            "    dataset_suffix: _dev\n    timeouts: { connect: 2s, statement: 10m }",
        );
        let p = Pipeline::parse(&set, "pipeline.yaml").unwrap();
        let t = p.target("pr-7").unwrap().timeouts;
        assert_eq!(
            (t.connect, t.request, t.statement),
            (
                Duration::from_secs(2),
                Timeouts::default().request,
                Duration::from_secs(600)
            )
        );
        let bad = SAMPLE.replace(
            "    dataset_suffix: _dev",
            "    dataset_suffix: _dev\n    timeouts: { connect: 0s }",
        );
        let e = Pipeline::parse(&bad, "pipeline.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("must be more than 0") && e.contains("line 24"),
            "{e}"
        );
    }

    #[test]
    fn unknown_keys_name_the_key_and_line() {
        let bad = SAMPLE.replace(
            "        mode: full",
            "        mode: full\n        modee: full",
        );
        let err = Pipeline::parse(&bad, "pipeline.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `modee`"), "{err}");
        assert!(err.contains("line 13"), "{err}");
    }

    #[test]
    fn bad_values_name_the_key_and_line() {
        let bad = SAMPLE.replace("mode: full", "mode: sometimes");
        let err = Pipeline::parse(&bad, "pipeline.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown variant `sometimes`"), "{err}");
        assert!(err.contains("line 12"), "{err}");
    }

    #[test]
    fn incremental_without_watermark_is_an_error_with_its_line() {
        let bad = SAMPLE.replace("        watermark_column: created_at\n", "");
        let err = Pipeline::parse(&bad, "pipeline.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("sources.shop.tables.orders (line 13)"),
            "{err}"
        );
        assert!(err.contains("watermark_column"), "{err}");
    }

    #[test]
    fn tables_are_copied_daily_or_hourly() {
        let hourly = SAMPLE.replace(
            "        mode: full\n",
            "        mode: full\n        schedule: hourly\n",
        );
        let p = Pipeline::parse(&hourly, "pipeline.yaml").unwrap();
        assert_eq!(p.sources["shop"].tables["users"].schedule, Schedule::Hourly);
        let cron = SAMPLE.replace(
            "        mode: full\n",
            "        mode: full\n        schedule: 0 3 * * *\n",
        );
        let e = Pipeline::parse(&cron, "pipeline.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(
                "sources.shop.tables.users.schedule (line 13): `0 3 * * *`: a copy runs daily"
            ),
            "{e}"
        );
        let bad = SAMPLE.replace(
            "        mode: full\n",
            "        mode: full\n        schedule: weekly\n",
        );
        let e = Pipeline::parse(&bad, "pipeline.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("schedule `weekly`"), "{e}");
    }

    #[test]
    fn inline_secrets_are_refused() {
        let bad = SAMPLE.replace(
            "dsn: { env: SHOP_DATABASE_URL }",
            "dsn: postgres://u:pw@h/db",
        );
        let err = Pipeline::parse(&bad, "pipeline.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("sources.shop.dsn"), "{err}");
    }

    #[test]
    fn bad_table_names_are_refused() {
        let bad = SAMPLE.replace("      users:", "      \"us-ers\":");
        let err = Pipeline::parse(&bad, "pipeline.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a valid BigQuery name"), "{err}");
    }

    #[test]
    fn cdc_blocks_are_checked() {
        let base = "name: x\nbigquery: { project: p }\nlake: { bucket: b }\nsources:\n  shop:\n    dsn: { env: X }\n    cdc:\n";
        let p = Pipeline::parse(
            &format!("{base}      tables: [orders, billing.invoices]\n      deletes: hard\n"),
            "t",
        )
        .unwrap();
        let cdc = p.sources["shop"].cdc.as_ref().unwrap();
        assert_eq!(cdc.deletes, DeleteMode::Hard);
        assert_eq!(
            (
                cdc.slot("shop"),
                cdc.publication("shop"),
                crate::catalog::replica_dataset(cdc, "shop")
            ),
            (
                "sluice_shop".into(),
                "sluice_shop".into(),
                "shop_replica".into()
            )
        );
        let both = Pipeline::parse(
            &format!("{base}      tables: [a]\n      all_tables: true\n"),
            "t",
        )
        .unwrap_err()
        .to_string();
        assert!(
            both.contains("sources.shop.cdc (line 7): give exactly one of"),
            "{both}"
        );
        let bad_slot = Pipeline::parse(
            &format!("{base}      tables: [a]\n      slot: My-Slot\n"),
            "t",
        )
        .unwrap_err()
        .to_string();
        assert!(
            bad_slot.contains("sources.shop.cdc.slot (line 9)"),
            "{bad_slot}"
        );
        let unknown = Pipeline::parse(
            &format!("{base}      tables: [a]\n      delete: hard\n"),
            "t",
        )
        .unwrap_err()
        .to_string();
        assert!(unknown.contains("unknown field `delete`"), "{unknown}");
    }

    #[test]
    fn duplicate_keys_name_both_lines() {
        let twice = SAMPLE.replace(
            "      users:\n        mode: full\n",
            "      users:\n        mode: full\n      users:\n        mode: incremental\n        watermark_column: at\n",
        );
        let e = Pipeline::parse(&twice, "pipeline.yaml")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "config: pipeline.yaml: sources.shop.tables: key `users` is given twice, at lines 11 and 13; keep one"
        );
        let top = format!("{SAMPLE}name: again\n");
        let e = Pipeline::parse(&top, "pipeline.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(": key `name` is given twice, at lines 2 and 25"),
            "{e}"
        );
        let flow = SAMPLE.replace("  prod: {}", "  prod: { no_auth: true, no_auth: false }");
        let e = Pipeline::parse(&flow, "pipeline.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("targets.prod: key `no_auth` is given twice on line 24"),
            "{e}"
        );
        let nested = SAMPLE.replace(
            "    dataset_suffix: _dev",
            "    dataset_suffix: _dev\n    sources:\n      shop: { dsn: { env: A } }\n    dataset_suffix: _dev2",
        );
        let e = Pipeline::parse(&nested, "pipeline.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("targets.dev: key `dataset_suffix` is given twice, at lines 23 and 26"),
            "{e}"
        );
    }

    #[test]
    fn line_of_follows_nesting() {
        assert_eq!(
            line_of(SAMPLE, &["sources", "shop", "tables", "orders"]),
            Some(13)
        );
        assert_eq!(
            line_of(SAMPLE, &["targets", "dev", "dataset_suffix"]),
            Some(23)
        );
        assert_eq!(line_of(SAMPLE, &["sources", "nope"]), None);
    }
}

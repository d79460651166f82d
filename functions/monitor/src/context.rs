//! The monitor's run context: the pipeline, its target, the marts, the declaration, the
//! BigQuery client of this run, and where the ops tables, the lake and the status page are.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde_json::Value;
use sluice::bigquery::BigQuery;
use sluice::config::{AlertsConfig, LakeLocation, Pipeline, Target};
use sluice::ledger::{Ledger, Worker};
use sluice::marts::Dag;
use sluice::Result;

use crate::declared::Declared;

/// Where the status page lives in the lake.
pub const PAGE_PATH: &str = "status/index.html";

/// Everything a command needs: the pipeline, its target, the marts, the declaration.
pub struct Monitor {
    pub pipeline: Pipeline,
    pub target: Target,
    pub dag: Dag,
    pub declared: Declared,
    pub alerts: AlertsConfig,
    pub bq: BigQuery,
    pub run_id: String,
    /// The ops dataset of the target.
    pub ops: String,
}

impl Monitor {
    /// Reads pipeline.yaml (relative paths from `base`) and the marts in `marts` (none when the
    /// directory does not exist), for `target`.
    pub fn open(pipeline: Pipeline, base: &Path, marts: &Path, target: &str) -> Result<Monitor> {
        let target = pipeline.target(target)?;
        // A pipeline without marts has no marts directory.
        let files = if marts.exists() {
            sluice::marts::load_dir(marts)?
        } else {
            vec![]
        };
        let dag = Dag::build(files, &sluice::marts::Landed::of(&pipeline, base))?;
        let declared = Declared::of(&pipeline, base, &dag);
        let run_id = sluice::ledger::new_run_id();
        let bq = BigQuery::for_run(&target, Worker::Monitor.as_str(), &run_id)?;
        let ops = target.dataset(&pipeline.bigquery.ops_dataset);
        Ok(Monitor {
            alerts: pipeline.alerts.clone().unwrap_or_default(),
            pipeline,
            target,
            dag,
            declared,
            bq,
            run_id,
            ops,
        })
    }

    /// `project.ops.name`, quoted.
    pub fn ops_table(&self, name: &str) -> String {
        sluice::bigquery::sql::table_ref(self.bq.project(), &self.ops, name)
    }

    /// Creates the ops tables the monitor writes, and the ledger's if no worker ran yet;
    /// returns the ledger.
    pub async fn ensure_tables(&self) -> Result<Ledger> {
        // The ops dataset and ops.runs.
        let ledger = Ledger::open(self.bq.clone(), &self.ops).await?;
        for t in [
            sluice::ops::DQ_RESULTS,
            sluice::ops::DEAD_LETTER,
            sluice::ops::ALERTS,
            sluice::ops::DECLARED_TABLES,
        ] {
            t.ensure(&self.bq, &self.ops).await?;
        }
        Ok(ledger)
    }

    /// Appends the declaration to `ops.declared_tables` (the views read the newest one).
    pub async fn write_declared(&self, now: DateTime<Utc>) -> Result<()> {
        let at = sluice::time::bigquery_timestamp(now);
        let rows: Vec<(String, Value)> = self
            .declared
            .rows(&self.target)
            .into_iter()
            .map(|mut r| {
                r["declared_at"] = Value::String(at.clone());
                let id = format!(
                    "{}:{}.{}",
                    self.run_id,
                    r["dataset"].as_str().unwrap_or(""),
                    r["table_name"].as_str().unwrap_or("")
                );
                (id, r)
            })
            .collect();
        if rows.is_empty() {
            return Ok(());
        }
        self.bq
            .insert_all(&self.ops, sluice::ops::DECLARED_TABLES.name, &rows)
            .await
    }

    /// The status page's address as messages link to it.
    pub fn status_page_url(&self) -> Option<String> {
        if let Some(u) = &self.alerts.status_page_url {
            return Some(u.clone());
        }
        match &self.target.lake {
            // The console's authenticated URL: opens for anyone who may read the object.
            LakeLocation::Gcs { bucket } => Some(format!(
                "https://storage.cloud.google.com/{bucket}/{PAGE_PATH}"
            )),
            LakeLocation::Local { .. } => None,
        }
    }

    /// Where the status page is written, as people write it.
    pub fn page_location(&self) -> String {
        match &self.target.lake {
            LakeLocation::Gcs { bucket } => format!("gs://{bucket}/{PAGE_PATH}"),
            LakeLocation::Local { dir, bucket } => {
                dir.join(bucket).join(PAGE_PATH).display().to_string()
            }
        }
    }
}

/// Where the lake is, as people write it: `gs://bucket` or the local directory.
pub fn lake_uri(l: &LakeLocation) -> String {
    match l {
        LakeLocation::Gcs { bucket } => format!("gs://{bucket}"),
        LakeLocation::Local { dir, bucket } => dir.join(bucket).display().to_string(),
    }
}

/// The marts directory: `--marts`, else `marts` beside pipeline.yaml.
pub fn marts_dir(base: &Path, marts: Option<PathBuf>) -> PathBuf {
    marts.unwrap_or_else(|| base.join("marts"))
}

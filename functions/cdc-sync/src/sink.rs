//! Where a source's replicas go (`Sink`): the replica and history tables created or brought up
//! to date with the source's columns, staging loads, and the job ids of a run. A batch applied
//! to them is `apply`; a snapshot, `snapshot`.

use serde_json::{json, Value as Json};
use sluice::bigquery::schema::{self, evolve, Field, Mode};
use sluice::bigquery::sql::table_ref;
use sluice::bigquery::staging::Staging;
use sluice::bigquery::{job_id, run_tag};
use sluice::bigquery::{BigQuery, Param};
use sluice::catalog;
use sluice::config::DeleteMode;
use sluice::error::ErrorKind;
use sluice::lake::Lake;
use sluice::types::BqType;
use sluice::{Error, Result};

use crate::layout;
use crate::tables::TableInfo;

/// Where a source's replicas go and how they behave.
#[derive(Debug, Clone)]
pub struct Sink {
    pub bq: BigQuery,
    pub lake: Lake,
    /// Replica dataset (target suffix applied).
    pub dataset: String,
    /// The target's staging dataset (made on the first load of a run).
    pub staging: Staging,
    pub source: String,
    pub slot: String,
    /// `<pipeline>_<target>`: keeps job ids of targets apart.
    pub job_prefix: String,
    pub deletes: DeleteMode,
    /// Tables (Postgres names, `table` or `schema.table`, as `tables:`) that keep a history.
    pub history: Vec<String>,
    /// Replica schemas already brought up to date in this run (with their dropped columns),
    /// and whether the staging dataset is made: each batch need not ask BigQuery again.
    pub checked: std::sync::Arc<std::sync::Mutex<Checked>>,
}

/// What a run has already verified in BigQuery.
#[derive(Debug, Default)]
pub struct Checked {
    replicas: std::collections::HashMap<String, (TableInfo, Vec<(String, String)>)>,
    staging_ready: bool,
}

/// What applying one table's changes did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Applied {
    pub table: String,
    pub changes: u64,
    pub bytes: u64,
    pub columns_added: Vec<String>,
    pub columns_widened: Vec<String>,
}

/// An INT64 query parameter.
pub fn int_param(name: &str, v: i64) -> Param {
    Param::scalar(name, "INT64", v.to_string())
}

impl Sink {
    /// A table of the replica dataset, as SQL names it.
    pub fn table(&self, name: &str) -> String {
        table_ref(self.bq.project(), &self.dataset, name)
    }

    pub fn keeps_history(&self, info: &TableInfo) -> bool {
        catalog::keeps_history(&self.history, &info.schema, &info.name)
    }

    /// Creates the replica (and history) table, or brings its columns up to date: new columns
    /// are added, types BigQuery can widen are widened, anything else stops with the fix.
    /// Returns the replica columns the source no longer has, and what changed.
    pub async fn ensure_replica(
        &self,
        info: &TableInfo,
    ) -> Result<(Vec<(String, String)>, Applied)> {
        self.ensure_replica_for(info, false).await
    }

    /// Like `ensure_replica`, for a snapshot that replaces every row anyway: a replica whose
    /// column types cannot hold the source's any more is dropped and made anew.
    pub async fn ensure_replica_for_snapshot(&self, info: &TableInfo) -> Result<()> {
        self.forget(&info.bq_name);
        self.ensure_replica_for(info, true).await.map(|_| ())
    }

    fn replica_resource(&self, info: &TableInfo, fields: &[Field], replica: bool) -> Json {
        let mut resource = json!({
            "schema": {"fields": schema::to_json(fields)},
            "description": format!("Replica of Postgres {} maintained by sluice cdc-sync.", info.qualified()),
        });
        let clusterable = info.key.len() <= 4
            && info.key.iter().all(|&k| {
                !info.columns[k].repeated
                    && !matches!(
                        info.columns[k].bq_type,
                        BqType::Float64 | BqType::Json | BqType::Bytes | BqType::Time
                    )
            });
        if replica && info.keyed() && clusterable {
            resource["clustering"] = json!({"fields": info.key_names()});
        }
        resource
    }

    async fn ensure_replica_for(
        &self,
        info: &TableInfo,
        rebuild_incompatible: bool,
    ) -> Result<(Vec<(String, String)>, Applied)> {
        self.bq.ensure_dataset(&self.dataset, None).await?;
        let mut applied = Applied::default();
        let mut dropped = vec![];
        let mut tables = vec![(info.bq_name.clone(), layout::replica_fields(info))];
        if self.keeps_history(info) && info.keyed() {
            tables.push((
                catalog::history_table(&info.schema, &info.name),
                layout::history_fields(info),
            ));
        }
        for (i, (name, fields)) in tables.into_iter().enumerate() {
            let replica = i == 0;
            let Some(existing) = self.bq.table_schema(&self.dataset, &name).await? else {
                let resource = self.replica_resource(info, &fields, replica);
                self.bq.create_table(&self.dataset, &name, resource).await?;
                tracing::info!(table = %name, "replica table created");
                continue;
            };
            let e = evolve(&existing, &fields, true);
            if let Some(bad) = e.incompatible.first() {
                let shape = |f: &Field| {
                    let repeated = if f.mode == Mode::Repeated {
                        "REPEATED "
                    } else {
                        ""
                    };
                    format!("{repeated}{}", f.ty.api_name())
                };
                let (from, to) = (shape(&bad.from), shape(&bad.to));
                let column = bad.path.join(".");
                if rebuild_incompatible && replica {
                    tracing::warn!(table = %name, column = %column, from = %from, to = %to, "column type changed: the replica is made anew");
                    self.bq.delete_table(&self.dataset, &name).await?;
                    let resource = self.replica_resource(info, &fields, true);
                    self.bq.create_table(&self.dataset, &name, resource).await?;
                    continue;
                }
                return Err(Error::bigquery(
                    format!("replicating {}", info.qualified()),
                    ErrorKind::Permanent,
                    format!(
                        "column {column} changed type from {from} to {to}, which BigQuery cannot convert in place; \
                         run `cdc-sync resync --table {}` to rebuild the replica",
                        info.qualified()
                    ),
                ));
            }
            for w in &e.widened {
                let sql = crate::sql::widen_column(&self.table(&name), &w.column, w.to);
                self.bq
                    .labelled("sluice_table", &name)
                    .query(&sql, &[])
                    .await?;
                applied.columns_widened.push(format!(
                    "{}: {} → {}",
                    w.column,
                    w.from.api_name(),
                    w.to.api_name()
                ));
            }
            if !e.added.is_empty() {
                self.bq
                    .patch_schema(&self.dataset, &name, &e.fields)
                    .await?;
                tracing::info!(table = %name, columns = %e.added.join(","), "columns added");
                if replica {
                    applied.columns_added = e.added.clone();
                }
            }
            if replica {
                for o in e
                    .missing
                    .iter()
                    .filter(|o| !layout::METADATA.contains(&o.name.as_str()))
                {
                    let ty = match o.scalar() {
                        Some(t) => t.sql_name().to_string(),
                        None => o.ty.api_name().to_string(),
                    };
                    let ty = if o.mode == Mode::Repeated {
                        format!("ARRAY<{ty}>")
                    } else {
                        ty
                    };
                    dropped.push((o.name.clone(), ty));
                }
            }
        }
        if !dropped.is_empty() {
            let names: Vec<&str> = dropped.iter().map(|(n, _)| n.as_str()).collect();
            tracing::warn!(table = %info.qualified(), columns = %names.join(","), "columns gone from the source stay in BigQuery, NULL in rows changed from now on");
        }
        self.lock()
            .replicas
            .insert(info.bq_name.clone(), (info.clone(), dropped.clone()));
        Ok((dropped, applied))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Checked> {
        self.checked.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets what was verified of a table (a snapshot replaced it).
    pub fn forget(&self, bq_name: &str) {
        self.lock().replicas.remove(bq_name);
    }

    /// Loads lake files holding `rows` rows into a fresh staging table; returns the staging
    /// table's reference. A load that reports another number of rows fails.
    pub async fn load_staging(
        &self,
        table: &str,
        staging: &str,
        fields: &[Field],
        uris: Vec<String>,
        rows: u64,
        job: &str,
    ) -> Result<String> {
        if !self.lock().staging_ready {
            self.staging.ensure().await?;
            self.lock().staging_ready = true;
        }
        self.staging
            .labelled("sluice_table", table)
            .load_parquet(staging, fields, uris, rows, job)
            .await
    }

    /// A job id of this pipeline, target and slot for `parts`, ending in the run's tag.
    pub fn job_id(&self, run_id: &str, parts: &[&str]) -> String {
        let tag = run_tag(run_id);
        let mut all = vec!["sluice", &self.job_prefix, "cdc", &self.slot];
        all.extend_from_slice(parts);
        all.push(&tag);
        job_id(&all)
    }
}

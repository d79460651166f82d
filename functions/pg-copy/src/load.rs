//! Lake → BigQuery: load the manifest's files into a fresh staging table, then swap them into
//! the target (a copy job for full tables, a DELETE+INSERT transaction for a date partition).
//! Until the swap the target keeps its previous data; every step can be repeated.

use serde_json::json;
use sluice::bigquery::schema::{self, evolve, Field};
use sluice::bigquery::sql::{count_rows, ident, partition_date, replace_partition, table_ref};
use sluice::bigquery::staging::Staging;
use sluice::bigquery::{job_id, run_tag};
use sluice::bigquery::{BigQuery, Param};
use sluice::config::{Mode, Pipeline, Target};
use sluice::error::ErrorKind;
use sluice::lake::{Lake, Manifest};
use sluice::types::BqType;
use sluice::{Error, Result};

use crate::plan::{Unit, UnitPlan};

/// What a load did.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// Rows in the target (the partition, for incremental) after the swap.
    pub rows: u64,
    pub job_ids: Vec<String>,
}

/// The watermark column's type, when it is one a partition can be cut by.
fn date_type_of(fields: &[Field], column: &str) -> Option<BqType> {
    fields
        .iter()
        .find(|f| f.name == column)
        .and_then(Field::scalar)
        .filter(|t| matches!(t, BqType::Date | BqType::Datetime | BqType::Timestamp))
}

/// Loads a unit's manifest into its target table.
pub async fn load(
    bq: &BigQuery,
    pipeline: &Pipeline,
    target: &Target,
    lake: &Lake,
    plan: &UnitPlan,
    manifest: &Manifest,
    run_id: &str,
) -> Result<Loaded> {
    let (unit, dataset, ds) = (&plan.unit, &plan.dataset, &plan.ds);
    let staging_ds = target.dataset(&pipeline.bigquery.staging_dataset);
    let project = bq.project().to_string();
    bq.ensure_dataset(dataset, None).await?;
    let area = Staging::open(bq, &staging_ds).await?;

    let run8 = run_tag(run_id);
    let staging = format!(
        "{}__{}__{}__{run8}",
        unit.source,
        unit.table,
        ds.replace('-', "")
    );
    let ids = |step: &str| {
        job_id(&[
            "sluice",
            &pipeline.name,
            &target.name,
            "pgcopy",
            &unit.source,
            &unit.table,
            ds,
            run_id,
            step,
        ])
    };
    let fields = &manifest.bigquery_fields;
    let mut job_ids = Vec::new();

    let uris: Vec<String> = manifest
        .files
        .iter()
        .map(|f| lake.gs_uri(&object_store::path::Path::from(f.path.as_str())))
        .collect();
    let load = ids("load");
    let staging_ref = area
        .load_parquet(&staging, fields, uris, manifest.rows, &load)
        .await?;
    if !manifest.files.is_empty() {
        job_ids.push(load);
    }

    let target_ref = table_ref(&project, dataset, &unit.table);
    let rows = match unit.config.mode {
        Mode::Full => {
            // A query job writing the target with WRITE_TRUNCATE swaps data and schema at once.
            let id = ids("swap");
            let mut query = json!({
                "query": format!("SELECT {} FROM {staging_ref}", select_list(fields)),
                "useLegacySql": false,
                "destinationTable": {"projectId": project, "datasetId": dataset, "tableId": unit.table},
                "writeDisposition": "WRITE_TRUNCATE",
                "createDisposition": "CREATE_IF_NEEDED",
            });
            if !unit.config.cluster_by.is_empty() {
                query["clustering"] = json!({"fields": unit.config.cluster_by});
            }
            bq.run_job(&id, json!({"query": query})).await?;
            job_ids.push(id);
            bq.count(&count_rows(&target_ref, None), &[]).await?
        }
        Mode::Incremental => {
            let wm = unit.config.watermark_column.clone().unwrap_or_default();
            let wm_type = date_type_of(fields, &wm).ok_or_else(|| {
                Error::config(format!(
                    "{}: watermark column {wm} is not in the copied columns",
                    unit.label()
                ))
            })?;
            ensure_partitioned(bq, dataset, unit, fields, &wm).await?;
            let columns = column_names(fields);
            let date = partition_date(&wm, wm_type);
            // Idempotent (delete, then insert the staging rows), so safe to retry on a conflict.
            let swap = replace_partition(&target_ref, &staging_ref, &date, &columns);
            let params = [Param::date("ds", ds)];
            sluice::retry::transient("replacing the partition", || bq.query(&swap, &params))
                .await?;
            bq.count(
                &count_rows(&target_ref, Some(&format!("{date} = @ds"))),
                &[Param::date("ds", ds)],
            )
            .await?
        }
    };
    area.drop(&staging).await?;
    Ok(Loaded { rows, job_ids })
}

/// Creates the date-partitioned target, or adds the columns the source gained.
async fn ensure_partitioned(
    bq: &BigQuery,
    dataset: &str,
    unit: &Unit,
    fields: &[Field],
    wm: &str,
) -> Result<()> {
    let table = &unit.table;
    match bq.table_schema(dataset, table).await? {
        None => {
            let mut resource = json!({
                "schema": {"fields": schema::to_json(fields)},
                "timePartitioning": {"type": "DAY", "field": wm},
            });
            if !unit.config.cluster_by.is_empty() {
                resource["clustering"] = json!({"fields": unit.config.cluster_by});
            }
            bq.create_table(dataset, table, resource).await?;
        }
        Some(old) => {
            let e = evolve(&old, fields, false);
            if !e.incompatible.is_empty() {
                let changed: Vec<String> = e.incompatible.iter().map(|i| i.to_string()).collect();
                return Err(Error::bigquery(
                    format!("loading {}", unit.label()),
                    ErrorKind::Permanent,
                    format!(
                        "column types changed in the source and BigQuery cannot change them in place: {}; \
                         drop {dataset}.{table} and backfill it, or cast in Postgres",
                        changed.join(", ")
                    ),
                ));
            }
            if e.changes() {
                bq.patch_schema(dataset, table, &e.fields).await?;
                tracing::info!(table = %unit.label(), columns = %e.added.join(","), "columns added");
            }
        }
    }
    Ok(())
}

fn column_names(fields: &[Field]) -> Vec<String> {
    fields.iter().map(|f| f.name.clone()).collect()
}

fn select_list(fields: &[Field]) -> String {
    fields
        .iter()
        .map(|f| ident(&f.name))
        .collect::<Vec<_>>()
        .join(", ")
}

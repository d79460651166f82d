//! The staging dataset: scratch tables, expiring after a day, that a load fills before it is
//! swapped into its target. pg-copy, cdc-sync and mart-build stage through it.

use std::time::Duration;

use serde_json::json;

use super::schema::{self, Field};
use super::sql::table_ref;
use super::BigQuery;
use crate::error::{Error, ErrorKind, Result};

/// A leftover of a crashed run expires on its own after this long.
pub const EXPIRY: Duration = Duration::from_secs(24 * 3600);

/// A target's staging dataset.
#[derive(Debug, Clone)]
pub struct Staging {
    bq: BigQuery,
    pub dataset: String,
}

impl Staging {
    /// The dataset, created with its expiry if missing.
    pub async fn open(bq: &BigQuery, dataset: &str) -> Result<Staging> {
        let s = Staging::new(bq, dataset);
        s.ensure().await?;
        Ok(s)
    }

    /// The dataset, without asking BigQuery: call `ensure` before the first load.
    pub fn new(bq: &BigQuery, dataset: &str) -> Staging {
        Staging {
            bq: bq.clone(),
            dataset: dataset.to_string(),
        }
    }

    /// The same dataset, its jobs carrying one more label (the table they stage for).
    pub fn labelled(&self, key: &str, value: &str) -> Staging {
        Staging {
            bq: self.bq.labelled(key, value),
            dataset: self.dataset.clone(),
        }
    }

    /// Creates the dataset with its expiry if it is missing.
    pub async fn ensure(&self) -> Result<()> {
        self.bq.ensure_dataset(&self.dataset, Some(EXPIRY)).await
    }

    /// `project.dataset.name` of a staging table, quoted.
    pub fn table_ref(&self, name: &str) -> String {
        table_ref(self.bq.project(), &self.dataset, name)
    }

    /// Loads Parquet files into a fresh table `name` of `fields`, with the load job `job`;
    /// returns the table's reference. A load that reports another number of rows than `rows`
    /// (what the files hold) fails. No files: an empty table.
    pub async fn load_parquet(
        &self,
        name: &str,
        fields: &[Field],
        uris: Vec<String>,
        rows: u64,
        job: &str,
    ) -> Result<String> {
        self.bq.delete_table(&self.dataset, name).await?;
        self.bq
            .create_table(
                &self.dataset,
                name,
                json!({"schema": {"fields": schema::to_json(fields)}}),
            )
            .await?;
        if !uris.is_empty() {
            let done = self
                .bq
                .run_job(
                    job,
                    json!({"load": {
                        "sourceUris": uris,
                        "sourceFormat": "PARQUET",
                        "destinationTable": {"projectId": self.bq.project(), "datasetId": self.dataset, "tableId": name},
                        "writeDisposition": "WRITE_APPEND",
                        "createDisposition": "CREATE_NEVER",
                        "parquetOptions": {"enableListInference": true},
                        // The emulator (DuckDB) reads `dt=<ds>` in a path as a hive column and
                        // adds it; BigQuery does not. Allowing the addition keeps both working:
                        // swaps select columns by name.
                        "schemaUpdateOptions": ["ALLOW_FIELD_ADDITION"],
                    }}),
                )
                .await?;
            let loaded = done.statistics["load"]["outputRows"]
                .as_str()
                .and_then(|n| n.parse::<u64>().ok());
            if let Some(got) = loaded.filter(|&n| n != rows) {
                return Err(Error::bigquery(
                    format!("job {job}"),
                    ErrorKind::Permanent,
                    format!(
                        "loaded {got} rows into {}.{name}, but the lake files hold {rows}",
                        self.dataset
                    ),
                ));
            }
        }
        Ok(self.table_ref(name))
    }

    /// Drops a staging table (gone already is fine).
    pub async fn drop(&self, name: &str) -> Result<()> {
        self.bq.delete_table(&self.dataset, name).await
    }
}

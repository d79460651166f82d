//! Datasets and tables: create (idempotently), read their schema, patch, delete.

use std::time::Duration;

use serde_json::{json, Value};

use super::schema::{self, Field};
use super::BigQuery;
use crate::error::Result;

impl BigQuery {
    /// Creates a dataset unless it exists. `table_expiration` sets the default table lifetime.
    pub async fn ensure_dataset(
        &self,
        dataset: &str,
        table_expiration: Option<Duration>,
    ) -> Result<()> {
        let ctx = format!("creating dataset {dataset}");
        let mut body = json!({
            "datasetReference": {"projectId": self.project, "datasetId": dataset},
            "location": self.location,
        });
        if let Some(d) = table_expiration {
            body["defaultTableExpirationMs"] = json!(d.as_millis().to_string());
        }
        self.answered(
            reqwest::Method::POST,
            "/datasets",
            Some(&body),
            &ctx,
            &[409],
        )
        .await
        .map(|_| ())
    }

    /// Deletes a dataset and its tables (tests clean up with this).
    pub async fn delete_dataset(&self, dataset: &str) -> Result<()> {
        let ctx = format!("deleting dataset {dataset}");
        let path = format!("/datasets/{dataset}?deleteContents=true");
        self.answered(reqwest::Method::DELETE, &path, None, &ctx, &[404])
            .await
            .map(|_| ())
    }

    /// The dataset resource (with its `access` entries where the caller may read them), or
    /// None if it does not exist.
    pub async fn get_dataset(&self, dataset: &str) -> Result<Option<Value>> {
        let ctx = format!("reading dataset {dataset}");
        let path = format!("/datasets/{dataset}");
        let (status, v) = self
            .answered(reqwest::Method::GET, &path, None, &ctx, &[404])
            .await?;
        Ok((status != 404).then_some(v))
    }

    /// The table resource, or None if it does not exist.
    pub async fn get_table(&self, dataset: &str, table: &str) -> Result<Option<Value>> {
        let ctx = format!("reading table {dataset}.{table}");
        let path = format!("/datasets/{dataset}/tables/{table}");
        let (status, v) = self
            .answered(reqwest::Method::GET, &path, None, &ctx, &[404])
            .await?;
        Ok((status != 404).then_some(v))
    }

    /// The schema of a table, or None if it does not exist.
    pub async fn table_schema(&self, dataset: &str, table: &str) -> Result<Option<Vec<Field>>> {
        let Some(t) = self.get_table(dataset, table).await? else {
            return Ok(None);
        };
        schema::from_json(&t["schema"]["fields"])
            .map(Some)
            .map_err(|e| e.within(&format!("table {dataset}.{table}")))
    }

    /// Creates a table from a REST table resource (schema, partitioning, clustering); true if
    /// it was created, false if it already existed.
    pub async fn create_table(
        &self,
        dataset: &str,
        table: &str,
        mut resource: Value,
    ) -> Result<bool> {
        let ctx = format!("creating table {dataset}.{table}");
        resource["tableReference"] =
            json!({"projectId": self.project, "datasetId": dataset, "tableId": table});
        let path = format!("/datasets/{dataset}/tables");
        let (status, _) = self
            .answered(reqwest::Method::POST, &path, Some(&resource), &ctx, &[409])
            .await?;
        Ok(status != 409)
    }

    /// Sets a table's description and its schema fields' descriptions (the catalog lives in the
    /// warehouse). `fields` is the table's schema with descriptions filled in.
    pub async fn patch_descriptions(
        &self,
        dataset: &str,
        table: &str,
        description: Option<&str>,
        fields: &[Field],
    ) -> Result<()> {
        let ctx = format!("describing table {dataset}.{table}");
        let mut body = json!({"schema": {"fields": schema::to_json(fields)}});
        if let Some(d) = description {
            body["description"] = json!(d);
        }
        self.request(
            reqwest::Method::PATCH,
            &format!("/datasets/{dataset}/tables/{table}"),
            Some(body),
            &ctx,
        )
        .await
        .map(|_| ())
    }

    /// Replaces a table's schema fields (adding columns).
    pub async fn patch_schema(&self, dataset: &str, table: &str, fields: &[Field]) -> Result<()> {
        let ctx = format!("adding columns to {dataset}.{table}");
        self.request(
            reqwest::Method::PATCH,
            &format!("/datasets/{dataset}/tables/{table}"),
            Some(json!({"schema": {"fields": schema::to_json(fields)}})),
            &ctx,
        )
        .await
        .map(|_| ())
    }

    pub async fn delete_table(&self, dataset: &str, table: &str) -> Result<()> {
        let ctx = format!("deleting table {dataset}.{table}");
        let path = format!("/datasets/{dataset}/tables/{table}");
        self.answered(reqwest::Method::DELETE, &path, None, &ctx, &[404])
            .await
            .map(|_| ())
    }
}

//! The ops views in the warehouse: `ensure` creates them in the target's ops dataset (`monitor
//! views`, and `monitor check` creates the missing ones). What they are (the SQL files, their
//! parsing and placing, the export for Terraform) is in the shared library
//! (`sluice::deployment::views`), re-exported here.

pub use sluice::deployment::views::{create_sql, dag, reads_jobs, region, FILES};
use sluice::Result;

use crate::Monitor;

/// What `ensure` did with one view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Made {
    Created(String),
    Skipped(String, &'static str),
}

/// Creates every view (`all`), or only those missing; stops at the first the warehouse
/// refuses, naming it.
pub async fn ensure(m: &Monitor, all: bool) -> Result<Vec<Made>> {
    let dag = dag()?;
    let emulator = m.target.bigquery_endpoint.is_some();
    let mut made = vec![];
    for view in dag.marts.values() {
        let name = format!("{}.{}", m.ops, view.id.table);
        if emulator && reads_jobs(view) {
            made.push(Made::Skipped(name, "the emulator's INFORMATION_SCHEMA.JOBS lacks its columns; monitor test-views checks it on fixture rows"));
            continue;
        }
        if !all && m.bq.get_table(&m.ops, &view.id.table).await?.is_some() {
            continue;
        }
        let sql = create_sql(view, m.bq.project(), &m.ops, &m.pipeline.bigquery.location);
        m.bq.query(&sql, &[])
            .await
            .map_err(|e| e.within(&format!("creating the view {name}")))?;
        made.push(Made::Created(name));
    }
    Ok(made)
}

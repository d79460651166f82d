//! `cdc-sync status`: per source, the slot's health and each published table's rows in
//! Postgres and in its replica.

use sluice::catalog;
use sluice::config::Pipeline;
use sluice::Result;

use crate::source::{cdc_sources, source_ctx};
use crate::{slot, tables};

/// One replicated table compared with its source.
#[derive(Debug, Clone)]
pub struct TableStatus {
    pub table: String,
    pub postgres_rows: i64,
    /// Live rows of the replica (not soft-deleted), or every change of an append-only table.
    pub replica_rows: Option<u64>,
    pub append_only: bool,
    pub last_synced: Option<String>,
}

/// Per source: the slot's health and each published table's row counts in Postgres and in
/// its replica (equal when the slot is drained and nothing writes meanwhile).
pub async fn status(
    pipeline: &Pipeline,
    target_name: &str,
    only: Option<&str>,
) -> Result<Vec<(String, slot::SlotHealth, Vec<TableStatus>)>> {
    let target = pipeline.target(target_name)?;
    let mut out = vec![];
    for (name, source, cdc) in cdc_sources(pipeline, only)? {
        let ctx = source_ctx(pipeline, &target, name, source, cdc, "status").await?;
        let health = slot::health(&ctx.stream, &ctx.slot).await?;
        let mut tables_out = vec![];
        for (s, t) in slot::publication_tables(&ctx.stream, &ctx.publication).await? {
            let qualified = format!("{s}.{t}");
            let postgres_rows: i64 = ctx
                .stream
                .query_one(
                    &format!("counting {qualified}"),
                    &sluice::postgres::catalog::count_rows_sql(&s, &t),
                    &[],
                )
                .await?
                .get(0);
            let bq_name = catalog::replica_table(&s, &t);
            let state = tables::read_state(&ctx.sink.lake, name, &bq_name).await?;
            let append_only = state.as_ref().is_some_and(|st| st.key.is_empty());
            let (replica_rows, last_synced) = if state.is_none() {
                (None, None)
            } else {
                let replica = sluice::bigquery::sql::table_ref(
                    ctx.sink.bq.project(),
                    &ctx.sink.dataset,
                    &bq_name,
                );
                let r = ctx
                    .sink
                    .bq
                    .query(&crate::sql::replica_status(&replica, append_only), &[])
                    .await?;
                (
                    r.get(0, "n").and_then(|n| n.parse().ok()),
                    r.get(0, "t").map(String::from),
                )
            };
            tables_out.push(TableStatus {
                table: qualified,
                postgres_rows,
                replica_rows,
                append_only,
                last_synced,
            });
        }
        out.push((name.clone(), health, tables_out));
    }
    Ok(out)
}

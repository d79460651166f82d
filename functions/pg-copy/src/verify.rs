//! `--verify`: counts a unit's rows in Postgres with the same selection, to compare with BigQuery.

use sluice::postgres::{connect, table_columns};
use sluice::Result;

use crate::extract::table_plan;
use crate::plan::Unit;
use crate::Ctx;

pub(crate) async fn postgres_rows(ctx: &Ctx, unit: &Unit) -> Result<u64> {
    let dsn = ctx.dsn(unit).await?;
    let conn = connect(
        &unit.source,
        &dsn,
        "sluice-pg-copy-verify",
        &ctx.target.timeouts,
    )
    .await?;
    let cat = table_columns(&conn, &unit.config.schema, &unit.table).await?;
    let plan = table_plan(unit, &cat)?;
    let row = conn
        .query_one(
            &format!("counting {}", unit.label()),
            &format!("SELECT count(*) FROM ({}) q", plan.select),
            &[],
        )
        .await?;
    Ok(row.get::<_, i64>(0) as u64)
}

//! `--verify`: counts a unit's rows in Postgres with the same selection, to compare with BigQuery.

use sluice::config::Timeouts;
use sluice::postgres::{connect, table_columns};
use sluice::secret::Secret;
use sluice::Result;

use crate::extract::table_plan;
use crate::plan::UnitPlan;

/// The rows Postgres has now for a unit, selected as the copy selects them, on a connection
/// of its own.
pub(crate) async fn postgres_rows(
    dsn: &Secret,
    timeouts: &Timeouts,
    plan: &UnitPlan,
) -> Result<u64> {
    let unit = &plan.unit;
    let conn = connect(&unit.source, dsn, "sluice-pg-copy-verify", timeouts).await?;
    let cat = table_columns(&conn, &unit.config.schema, &unit.table).await?;
    let select = table_plan(plan, &cat)?.select;
    let row = conn
        .query_one(
            &format!("counting {}", unit.label()),
            &format!("SELECT count(*) FROM ({select}) q"),
            &[],
        )
        .await?;
    Ok(row.get::<_, i64>(0) as u64)
}

//! `cdc-sync init`: a source's publication and slot made (or adopted), and a new slot's
//! stream remembered (`continuity`) with every table to be snapshotted again.

use sluice::config::Pipeline;
use sluice::lake::Lake;
use sluice::postgres::connect;
use sluice::secret_manager::resolve_dsn;
use sluice::{Error, Result};

use crate::source::cdc_sources;
use crate::{continuity, slot, tables};

/// Creates the publication and slot of every CDC source (or one), idempotently; adopts a
/// publication the tables' owner made. A role without the rights fails naming what it lacks,
/// with the SQL for whoever has them.
pub async fn init(
    pipeline: &Pipeline,
    target_name: &str,
    only: Option<&str>,
) -> Result<Vec<(String, slot::InitReport)>> {
    let target = pipeline.target(target_name)?;
    let mut out = vec![];
    for (name, source, cdc) in cdc_sources(pipeline, only)? {
        let dsn = resolve_dsn(target.dsn_ref(name, source), &target).await?;
        let conn = connect(name, &dsn, "sluice-cdc-sync", &target.timeouts).await?;
        let report = slot::init(&conn, name, cdc).await?;
        if let Some(lsn) = report.slot_lsn.as_deref().filter(|_| report.slot_created) {
            // A new slot starts a new stream: replicas made from an older one need new
            // snapshots, which the next run takes for every table without state.
            let lake = Lake::open(&target.lake, &sluice::auth::Auth::for_target(&target))?;
            let forgotten = tables::forget_all(&lake, name).await?;
            if forgotten > 0 {
                tracing::info!(source = %name, tables = forgotten, "new slot: every table will be snapshotted again");
            }
            let at = lsn
                .parse()
                .map_err(|e: sluice::postgres::pgoutput::DecodeError| {
                    Error::config(format!("slot {} created at {lsn}: {}", cdc.slot(name), e.0))
                })?;
            let origin = continuity::origin(&conn).await?;
            continuity::start(&lake, name, &cdc.slot(name), origin, at, "init").await?;
        }
        out.push((name.clone(), report));
    }
    Ok(out)
}

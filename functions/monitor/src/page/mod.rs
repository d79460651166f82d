//! The status page: one self-contained HTML file (no external scripts, fonts or styles)
//! written to the lake at `status/index.html` by each `check`. Sections: where everything
//! lives, open alerts, freshness against each SLA, the run heatmap, DQ results over time,
//! dead letters, the lineage (inline SVG), and the catalog with a search box.
//!
//! `data` reads what the page shows (taking what the check already read), `render` is a pure
//! function of it, section by section; `publish` writes the file.

mod data;
mod render;

use chrono::{DateTime, Utc};
use sluice::Result;

use crate::alerts::{self, Incident};
use crate::context::{Monitor, PAGE_PATH};
use crate::findings::Observed;

pub use render::SECTION_IDS;

/// Renders the page from what a check read (`observed`) and the incidents as it left them,
/// and writes it to the lake; returns where it is.
pub async fn publish(
    m: &Monitor,
    now: DateTime<Utc>,
    observed: &Observed,
    incidents: Vec<Incident>,
) -> Result<String> {
    let html = render::render(&data::data(m, now, observed, incidents).await?);
    let lake =
        sluice::lake::Lake::open(&m.target.lake, &sluice::auth::Auth::for_target(&m.target))?;
    let path = object_store::path::Path::from(PAGE_PATH);
    lake.put(&path, bytes::Bytes::from(html)).await?;
    Ok(m.page_location())
}

/// `monitor page`: reads the ops tables and the incidents as of `now`, then publishes.
pub async fn refresh(m: &Monitor, now: DateTime<Utc>) -> Result<String> {
    m.ensure_tables().await?;
    let observed = Observed::read(&m.bq, &m.pipeline, &m.target, &m.alerts, now).await?;
    let incidents = alerts::read_state(&m.bq, &m.ops_table(sluice::ops::ALERTS.name), now).await?;
    publish(m, now, &observed, incidents.into_values().collect()).await
}

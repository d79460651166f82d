//! `monitor looker-url`: a Looker Studio Linking API URL that creates one report over the
//! ops views, one BigQuery data source per view (aliases `ds0`, `ds1`, ... as in the
//! template, or a blank report when none is given).

use sluice::config::Pipeline;
use sluice::Result;

use crate::message::percent_encode as enc;
use crate::views;

/// The views a report reads, in alias order.
pub const REPORT_VIEWS: &[&str] = &[
    "freshness",
    "run_heatmap",
    "dq_daily",
    "dead_letter_daily",
    "cost_daily",
    "table_usage_daily",
    "catalog_tables",
    "storage_cost",
];

/// `monitor looker-url`: the URL over the ops views of `target`.
pub fn for_target(p: &Pipeline, target: &str, template: Option<&str>) -> Result<String> {
    let target = p.target(target)?;
    let ops = target.dataset(&p.bigquery.ops_dataset);
    Ok(url(&target.project, &ops, &p.name, template))
}

/// The URL: `template` is a report to copy (its data sources aliased `ds0`...), else blank.
pub fn url(project: &str, ops_dataset: &str, pipeline: &str, template: Option<&str>) -> String {
    let mut params = vec![];
    if let Some(t) = template {
        params.push(format!("c.reportId={}", enc(t)));
    }
    params.push("c.mode=edit".to_string());
    params.push(format!(
        "r.reportName={}",
        enc(&format!("sluice: {pipeline}"))
    ));
    for (i, v) in REPORT_VIEWS.iter().enumerate() {
        debug_assert!(views::FILES.iter().any(|(n, _)| n == v));
        let ds = format!("ds.ds{i}");
        params.push(format!("{ds}.connector=bigQuery"));
        params.push(format!("{ds}.type=TABLE"));
        params.push(format!("{ds}.projectId={}", enc(project)));
        params.push(format!("{ds}.datasetId={}", enc(ops_dataset)));
        params.push(format!("{ds}.tableId={}", enc(v)));
        params.push(format!(
            "{ds}.datasourceName={}",
            enc(&format!("sluice {v}"))
        ));
    }
    format!(
        "https://lookerstudio.google.com/reporting/create?{}",
        params.join("&")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_data_source_per_view() {
        let u = url("acme-shop-data", "ops", "shop", None);
        assert!(u.starts_with("https://lookerstudio.google.com/reporting/create?c.mode=edit&r.reportName=sluice%3A%20shop&ds.ds0.connector=bigQuery&ds.ds0.type=TABLE&ds.ds0.projectId=acme-shop-data&ds.ds0.datasetId=ops&ds.ds0.tableId=freshness"), "{u}");
        assert!(u.contains("ds.ds7.tableId=storage_cost"));
        assert!(url("p", "ops", "s", Some("abc")).contains("?c.reportId=abc&"));
        for v in REPORT_VIEWS {
            assert!(views::FILES.iter().any(|(n, _)| n == v), "{v}");
        }
    }
}

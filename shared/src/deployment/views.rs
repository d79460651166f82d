//! The ops views for the BigQuery console and Looker Studio: `shared/views/ops/<name>.sql`,
//! written like marts (a YAML header, one SELECT) and tested like marts (`<name>.test.yaml`,
//! run by the mart fixture runner, `monitor test-views`). They are compiled into the library,
//! so the image needs no extra files, and placed for a target: `ops.x` is the target's ops
//! dataset, `` `region-us`.INFORMATION_SCHEMA.x `` the region of `bigquery.location`.
//! `sluice-deploy export-views` writes them for Terraform (`terraform/views.json`); the
//! monitor creates those it may (`monitor views`).

use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use crate::catalog::{Landed, Producer};
use crate::config::Pipeline;
use crate::marts::{Dag, Mart, TableName};
use crate::Result;

/// The views' files, by name.
pub const FILES: &[(&str, &str)] = &[
    (
        "catalog_tables",
        include_str!("../../views/ops/catalog_tables.sql"),
    ),
    (
        "catalog_columns",
        include_str!("../../views/ops/catalog_columns.sql"),
    ),
    ("freshness", include_str!("../../views/ops/freshness.sql")),
    (
        "run_heatmap",
        include_str!("../../views/ops/run_heatmap.sql"),
    ),
    ("dq_daily", include_str!("../../views/ops/dq_daily.sql")),
    (
        "dead_letter_daily",
        include_str!("../../views/ops/dead_letter_daily.sql"),
    ),
    (
        "table_usage_daily",
        include_str!("../../views/ops/table_usage_daily.sql"),
    ),
    ("cost_daily", include_str!("../../views/ops/cost_daily.sql")),
    (
        "storage_cost",
        include_str!("../../views/ops/storage_cost.sql"),
    ),
];

/// Where the view files are in the source tree (their unit tests are read from there).
pub fn source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("views")
}

/// The views, parsed and checked as marts of the dataset `ops`.
pub fn dag() -> Result<Dag> {
    let dir = source_dir().join("ops");
    let mut marts = vec![];
    for (name, text) in FILES {
        let file = dir.join(format!("{name}.sql"));
        marts.push(
            Mart::parse(text, &file, "ops", name)
                .map_err(|e| e.within(&file.display().to_string()))?,
        );
    }
    let mut landed = Landed::default();
    landed.open_datasets.insert("ops".into(), Producer::Ops);
    Dag::build(marts, &landed)
}

/// `region-us`, `region-eu`, `region-europe-west3`: the INFORMATION_SCHEMA qualifier of a
/// location.
pub fn region(location: &str) -> String {
    format!("region-{}", location.to_ascii_lowercase())
}

/// A reference placed for a project, ops dataset and location.
pub fn place(name: &TableName, project: &str, ops: &str, location: &str) -> TableName {
    match &name.project {
        Some(p) if p.starts_with("region-") => TableName {
            project: Some(format!("{project}.{}", region(location))),
            dataset: name.dataset.clone(),
            table: name.table.clone(),
        },
        Some(_) => name.clone(),
        None => TableName {
            project: Some(project.to_string()),
            dataset: if name.dataset == "ops" {
                ops.to_string()
            } else {
                name.dataset.clone()
            },
            table: name.table.clone(),
        },
    }
}

/// One view's SELECT, placed for a project, ops dataset and location.
pub fn view_query(m: &Mart, project: &str, ops: &str, location: &str) -> String {
    format!(
        "{:#}",
        crate::marts::placed_query(m, |n| place(n, project, ops, location))
    )
}

/// `CREATE OR REPLACE VIEW` of one view, for a project, ops dataset and location.
pub fn create_sql(m: &Mart, project: &str, ops: &str, location: &str) -> String {
    let description = m
        .header
        .description
        .clone()
        .unwrap_or_default()
        .replace('\\', "\\\\")
        .replace('\'', "\\'");
    format!(
        "CREATE OR REPLACE VIEW {} OPTIONS (description = '{description}') AS\n{}",
        crate::bigquery::sql::table_ref(project, ops, &m.id.table),
        view_query(m, project, ops, location)
    )
}

/// `sluice-deploy export-views`: for each cloud target (each without `no_auth`), every view's
/// query and description, for Terraform to create (`terraform/views.json`). The monitor
/// itself may not create tables in ops.
pub fn export(p: &Pipeline) -> Result<Value> {
    let dag = dag()?;
    let mut targets = Map::new();
    for (name, c) in &p.targets {
        if c.no_auth {
            continue;
        }
        let t = p.target(name)?;
        let ops = t.dataset(&p.bigquery.ops_dataset);
        let views: Map<String, Value> = dag
            .marts
            .values()
            .map(|v| {
                (
                    v.id.table.clone(),
                    json!({
                        "query": view_query(v, &t.project, &ops, &t.location),
                        "description": v.header.description.clone().unwrap_or_default(),
                    }),
                )
            })
            .collect();
        targets.insert(name.clone(), json!({"dataset": ops, "views": views}));
    }
    Ok(json!({
        "generated_by": format!("sluice-deploy export-views {}", super::GENERATED_BY),
        "targets": targets,
    }))
}

/// Whether a view reads the jobs views, which the BigQuery emulator has only in part (no
/// labels, referenced tables, bytes billed or slot time): on an emulator target such a view is
/// skipped, and its SQL is checked by its unit tests against fixture rows instead.
pub fn reads_jobs(m: &Mart) -> bool {
    m.references.iter().any(|r| {
        r.name.dataset.eq_ignore_ascii_case("INFORMATION_SCHEMA")
            && r.name.table.eq_ignore_ascii_case("JOBS")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_parse_and_place_the_ops_dataset_and_region() {
        let dag = dag().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(dag.marts.len(), FILES.len());
        let sql = create_sql(&dag.marts["ops.freshness"], "acme", "ops_dev", "EU");
        assert!(
            sql.starts_with(
                "CREATE OR REPLACE VIEW `acme.ops_dev.freshness` OPTIONS (description = 'How fresh"
            ),
            "{sql}"
        );
        assert!(sql.contains("`acme.ops_dev.runs`"), "{sql}");
        let sql = create_sql(&dag.marts["ops.cost_daily"], "acme", "ops", "us-central1");
        assert!(
            sql.contains("`acme.region-us-central1.INFORMATION_SCHEMA.JOBS`"),
            "{sql}"
        );
        // Every view has its unit tests.
        for (name, _) in FILES {
            let f = source_dir().join("ops").join(format!("{name}.test.yaml"));
            assert!(f.exists(), "{} has no unit tests", f.display());
        }
    }

    /// `terraform/views.json` must be what this code derives from pipeline.yaml and the view
    /// files: a change to either without `make deployment` fails.
    #[test]
    fn the_checked_in_views_json_is_current() {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let p = Pipeline::load(&root.join("pipeline.yaml")).unwrap();
        let want = serde_json::to_string_pretty(&export(&p).unwrap()).unwrap() + "\n";
        let file = root.join("terraform/views.json");
        let have = std::fs::read_to_string(&file).unwrap_or_default();
        assert!(
            have == want,
            "{} is stale: run `make deployment`",
            file.display()
        );
    }
}

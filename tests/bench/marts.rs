//! The mart-build part of `make bench`:
//! - a generated DAG of 500 marts (25 levels of 20, each reading up to three marts of earlier
//!   levels and an input): parsing every file and building the plan, then rendering every
//!   mart, per mart (no stack needed);
//! - a 20-mart diamond in the emulator (two marts in a row, four branches of four, a join and
//!   its reader) run with parallelism 4: the run's wall time against its critical path (the
//!   slowest chain of marts by their measured times).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use chrono::NaiveDate;
use mart_build::{Options, Summary};
use sluice::bigquery::BigQuery;
use sluice::config::Pipeline;
use sluice::marts::Placement;
use sluice::marts::{load_dir, Dag, Landed};

use crate::{env, median, RUNS};

/// The bench's pipeline: source `shop` lands `orders` in dataset `mbench_raw`.
fn pipeline(project: &str, endpoint: &str) -> Result<Pipeline> {
    let yaml = format!(
        "name: mbench\nbigquery: {{ project: {project} }}\nlake: {{ bucket: unused }}\n\
         sources:\n  shop:\n    dsn: {{ env: UNUSED }}\n    dataset: mbench_raw\n    tables:\n      orders: {{ mode: full }}\n\
         targets:\n  local:\n    project: {project}\n    bigquery_endpoint: {endpoint}\n    lake: .local/lake\n    no_auth: true\n"
    );
    Ok(Pipeline::parse(&yaml, "bench pipeline")?)
}

fn write(dir: &Path, name: &str, text: &str) -> Result<()> {
    let file = dir.join(format!("{name}.sql"));
    std::fs::create_dir_all(file.parent().context("a mart's directory")?)?;
    std::fs::write(&file, text).with_context(|| format!("writing {}", file.display()))
}

/// A mart reading `reads` (marts) and the input, with a header like the shop's.
fn mart_text(name: &str, reads: &[String]) -> String {
    let mut from = String::from("SELECT o.user_id, SUM(o.total) AS total, COUNT(*) AS n\nFROM mbench_raw.orders AS o\nWHERE o.created_at < @ds_end\nGROUP BY o.user_id");
    for r in reads {
        from.push_str(&format!(
            "\nUNION ALL\nSELECT x.user_id, SUM(x.total) AS total, SUM(x.n) AS n FROM {r} AS x GROUP BY x.user_id"
        ));
    }
    format!(
        "/*\ndescription: Generated mart {name}.\nowner: \"@bench\"\nfail_conditions:\n  - not_null: user_id\n  - {{name: positive, threshold: 0.9, expression: \"COUNTIF(total >= 0)\"}}\ndq_metrics:\n  - not_empty: true\n*/\nWITH u AS (\n{from}\n)\nSELECT user_id, SUM(total) AS total, SUM(n) AS n FROM u GROUP BY user_id\n"
    )
}

/// 500 marts in 25 levels of 20; mart j of level l reads up to three marts of level l-1.
fn generate_500(dir: &Path) -> Result<()> {
    for level in 0..25 {
        for j in 0..20 {
            let reads: Vec<String> = if level == 0 {
                vec![]
            } else {
                [j, (j + 7) % 20, (j * 3 + 1) % 20]
                    .iter()
                    .take(1 + j % 3)
                    .map(|k| format!("gen.m{:02}_{k:02}", level - 1))
                    .collect()
            };
            let name = format!("m{level:02}_{j:02}");
            write(dir, &format!("gen/{name}"), &mart_text(&name, &reads))?;
        }
    }
    Ok(())
}

/// The 20-mart diamond: a → b → four branches c1..c4 of four (x1 → x2 → x3 → x4) → j → z.
fn generate_diamond(dir: &Path) -> Result<()> {
    write(dir, "dia/a", &mart_text("a", &[]))?;
    write(dir, "dia/b", &mart_text("b", &["dia.a".into()]))?;
    let mut ends = vec![];
    for c in 1..=4 {
        let mut prev = "dia.b".to_string();
        for s in 1..=4 {
            let name = format!("c{c}_{s}");
            write(dir, &format!("dia/{name}"), &mart_text(&name, &[prev]))?;
            prev = format!("dia.{name}");
        }
        ends.push(prev);
    }
    write(dir, "dia/j", &mart_text("j", &ends))?;
    write(dir, "dia/z", &mart_text("z", &["dia.j".into()]))
}

fn scratch(name: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("sluice_bench_{name}_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// The slowest chain of marts, by the time each took in `summary`.
fn critical_path(dag: &Dag, summary: &Summary) -> f64 {
    let mut finish: BTreeMap<&String, f64> = BTreeMap::new();
    for id in dag.order() {
        let own = summary
            .results
            .iter()
            .find(|r| &r.mart == id)
            .map_or(0.0, |r| r.seconds);
        let before = dag.upstream[id]
            .iter()
            .filter_map(|u| finish.get(u))
            .fold(0.0_f64, |a, b| a.max(*b));
        finish.insert(id, before + own);
    }
    finish.values().fold(0.0_f64, |a, b| a.max(*b))
}

pub async fn measure(figures: &mut BTreeMap<String, f64>, with_stack: bool) -> Result<()> {
    let project = std::env::var("SLUICE_BQ_PROJECT").unwrap_or_else(|_| "sluice-bench".into());
    let endpoint =
        std::env::var("SLUICE_BQ_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:9".into());
    let p = pipeline(&project, &endpoint)?;
    let inputs = Landed::of(&p, Path::new("."));

    eprintln!("marts: parsing, planning and rendering a generated DAG of 500 marts");
    let dir = scratch("500")?;
    generate_500(&dir)?;
    let placement = Placement::for_target(&p.target("local")?);
    let (mut plan, mut render) = (vec![], vec![]);
    for _ in 0..RUNS {
        let t = Instant::now();
        let dag =
            Dag::build(load_dir(&dir).map_err(|e| anyhow!(e))?, &inputs).map_err(|e| anyhow!(e))?;
        let all = dag.select(&[]).map_err(|e| anyhow!(e))?;
        let text = dag.plan_text(&all);
        let mermaid = dag.plan_mermaid(&all);
        plan.push(t.elapsed().as_secs_f64());
        anyhow::ensure!(
            dag.levels.len() == 25 && text.lines().count() == 500 && !mermaid.is_empty()
        );
        let t = Instant::now();
        let mut bytes = 0;
        for id in dag.order() {
            bytes += placement.render(&dag, id).map_err(|e| anyhow!(e))?.len();
        }
        render.push(t.elapsed().as_secs_f64());
        anyhow::ensure!(bytes > 0);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let plan = median(plan);
    let render = median(render);
    figures.insert("marts_500_plan_ms".into(), (plan * 1e4).round() / 10.0);
    figures.insert(
        "marts_plan_per_mart_us".into(),
        (plan / 500.0 * 1e6).round(),
    );
    figures.insert(
        "marts_render_per_mart_us".into(),
        (render / 500.0 * 1e6).round(),
    );
    if !with_stack {
        return Ok(());
    }

    eprintln!("marts: a 20-mart diamond in the emulator, parallelism 4");
    let bq = BigQuery::emulator(&env("SLUICE_BQ_ENDPOINT")?, &env("SLUICE_BQ_PROJECT")?)?;
    bq.ensure_dataset("mbench_raw", None).await?;
    bq.query(
        "CREATE OR REPLACE TABLE `mbench_raw.orders` AS
         SELECT MOD(n, 500) AS user_id, CAST(MOD(n * 7, 1000) AS NUMERIC) / 10 AS total,
                TIMESTAMP_ADD(TIMESTAMP '2024-05-01', INTERVAL n SECOND) AS created_at
         FROM UNNEST(GENERATE_ARRAY(1, 20000)) AS n",
        &[],
    )
    .await?;
    let dir = scratch("diamond")?;
    generate_diamond(&dir)?;
    let (mut walls, mut paths, mut ratios) = (vec![], vec![], vec![]);
    for run in 0..RUNS {
        let dag =
            Dag::build(load_dir(&dir).map_err(|e| anyhow!(e))?, &inputs).map_err(|e| anyhow!(e))?;
        anyhow::ensure!(dag.marts.len() == 20);
        let ds = NaiveDate::from_ymd_opt(2024, 5, 2).context("a date")?;
        let mut o = Options::new("local", vec![ds]);
        o.parallel = 4;
        o.check_freshness = false;
        o.progress = false;
        let t = Instant::now();
        let summary = mart_build::run(&p, dag.clone(), o).await?;
        let wall = t.elapsed().as_secs_f64();
        anyhow::ensure!(
            summary.failed() == 0,
            "the diamond failed:\n{}",
            summary.table()
        );
        let path = critical_path(&dag, &summary);
        eprintln!(
            "  run {}: wall {wall:.2}s, critical path {path:.2}s",
            run + 1
        );
        walls.push(wall);
        paths.push(path);
        ratios.push(wall / path);
    }
    let _ = std::fs::remove_dir_all(&dir);
    figures.insert(
        "marts_diamond_wall_s".into(),
        (median(walls) * 100.0).round() / 100.0,
    );
    figures.insert(
        "marts_diamond_critical_path_s".into(),
        (median(paths) * 100.0).round() / 100.0,
    );
    figures.insert(
        "marts_diamond_wall_over_critical_path".into(),
        (median(ratios) * 1000.0).round() / 1000.0,
    );
    Ok(())
}

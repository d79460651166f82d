//! mart-build end to end: marts built in the BigQuery emulator from tables the pipeline lands
//! (`src.orders`, landed as pg-copy would: `sluice_tests::marts`).
//!
//! One file per feature: partition, merge and view marts (`materialized`), fail conditions and
//! metrics (`checks`), the order marts run in and the wait for fresh inputs (`order`), inputs
//! from production and from CDC replicas (`inputs`), and the command line (`cli`).

use std::path::PathBuf;

use mart_build::{MartResult, Options, Outcome, Summary};
use sluice::config::Pipeline;
use sluice::marts::{Dag, Landed};
use sluice_tests::marts::{daily_mart, write_marts, DAILY_CHECKS};
use sluice_tests::{d, TestEnv};

mod checks;
mod cli;
mod inputs;
mod materialized;
mod order;

/// A marts directory of the test (`marts/` in its scratch directory), written afresh from
/// `(path, text)` pairs like `("m/a.sql", ...)`.
struct Marts {
    dir: PathBuf,
}

impl Marts {
    /// Writes `files` as the test's marts directory.
    fn new(env: &TestEnv, files: &[(&str, &str)]) -> Marts {
        let dir = env.scratch_dir().join("marts");
        write_marts(&dir, files);
        Marts { dir }
    }

    /// The marts of the directory, planned against what `p` lands.
    fn dag(&self, p: &Pipeline) -> sluice::Result<Dag> {
        Dag::build(
            sluice::marts::load_dir(&self.dir)?,
            &Landed::of(p, &self.dir),
        )
    }
}

/// `m.daily` with the checks of these tests (`DAILY_CHECKS`).
fn daily() -> String {
    daily_mart(DAILY_CHECKS)
}

/// Runs the marts for `dates` on `target`, without waiting for fresh inputs unless `f` says so.
async fn run_marts(
    p: &Pipeline,
    marts: &Marts,
    target: &str,
    dates: &[&str],
    f: impl FnOnce(&mut Options),
) -> Summary {
    let mut o = Options::new(target, dates.iter().map(|s| d(s)).collect());
    o.check_freshness = false;
    o.progress = false;
    f(&mut o);
    let dag = marts.dag(p).unwrap_or_else(|e| panic!("{e}"));
    mart_build::run(p, dag, o).await.expect("the run starts")
}

/// One mart's result for one date; the summary's table if it did not run.
fn result<'a>(s: &'a Summary, mart: &str, ds: &str) -> &'a MartResult {
    s.get(mart, d(ds))
        .unwrap_or_else(|| panic!("{mart} {ds} did not run:\n{}", s.table()))
}

/// One mart's outcome for one date.
fn outcome(s: &Summary, mart: &str, ds: &str) -> Outcome {
    result(s, mart, ds).outcome.clone()
}

/// Every mart of the run was built.
fn assert_built(s: &Summary) {
    assert_eq!(s.failed(), 0, "{}", s.table());
}

/// `m.total`: revenue over every day `m.daily` holds.
const TOTAL: &str = "/*
description: Revenue over every day built so far.
fail_conditions:
  - not_empty: true
*/
SELECT SUM(revenue) AS revenue, COUNT(*) AS days FROM m.daily
";

//! `monitor views` and `monitor test-views` for a target: the ops views made in its ops
//! dataset, or their unit tests run on fixture rows (the views themselves: `views`).

use std::fmt::Write;

use sluice::marts::CaseResult;
use sluice::Result;

use crate::context::Monitor;
use crate::views::{self, Made};

/// `monitor views`: creates (or replaces) every view, the ops tables made first.
pub async fn make_views(m: &Monitor) -> Result<Vec<Made>> {
    m.ensure_tables().await?;
    views::ensure(m, true).await
}

/// What running the views' unit tests found.
#[derive(Debug)]
pub struct ViewTests {
    pub results: Vec<CaseResult>,
    /// Views without a test.
    pub untested: Vec<String>,
}

impl ViewTests {
    pub fn failed(&self) -> usize {
        self.results.iter().filter(|r| r.failure.is_some()).count()
    }

    /// A line per case, a line per view without tests, and the counts.
    pub fn report(&self) -> String {
        let mut out = String::new();
        for r in &self.results {
            let _ = match &r.failure {
                None => writeln!(out, "ok    {}: {}", r.mart, r.case),
                Some(f) => writeln!(out, "FAIL  {}: {}\n{f}", r.mart, r.case),
            };
        }
        for u in &self.untested {
            let _ = writeln!(out, "no tests  {u}");
        }
        let _ = writeln!(
            out,
            "{} cases, {} failed",
            self.results.len(),
            self.failed()
        );
        out
    }
}

/// `monitor test-views`: the views' unit tests, in a scratch dataset of the target.
pub async fn test_views(m: &Monitor) -> Result<ViewTests> {
    let dag = views::dag()?;
    let selected: Vec<String> = dag.marts.keys().cloned().collect();
    let (results, untested) = sluice::marts::run_fixtures(&m.bq, &dag, &selected).await?;
    Ok(ViewTests { results, untested })
}

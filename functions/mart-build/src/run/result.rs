//! What a run reports: each mart's outcome for each date, its checks, and the summary table.

use chrono::NaiveDate;

/// How one mart ended for one date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failed,
    /// An upstream mart failed or was skipped; it is named.
    UpstreamFailed(String),
    /// Built by a BigQuery scheduled query, not by mart-build.
    ScheduledQuery,
}

impl Outcome {
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Success => "ok",
            Outcome::Failed => "FAILED",
            Outcome::UpstreamFailed(_) => "upstream_failed",
            Outcome::ScheduledQuery => "scheduled_query",
        }
    }

    pub(crate) fn blocks_dependents(&self) -> bool {
        matches!(self, Outcome::Failed | Outcome::UpstreamFailed(_))
    }
}

/// Whether a check stops the mart or is only recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckKind {
    /// A tripped one keeps the target as it was and skips the marts downstream.
    FailCondition,
    /// Recorded in `ops.dq_results`; the mart builds either way.
    DqMetric,
}

impl CheckKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckKind::FailCondition => "fail_condition",
            CheckKind::DqMetric => "dq_metric",
        }
    }
}

/// One check's result.
#[derive(Debug, Clone)]
pub struct CheckResult {
    pub name: String,
    pub kind: CheckKind,
    /// `expression`, `not_null`, `unique`, ...
    pub check_type: String,
    pub expression: String,
    pub value: f64,
    pub rows: u64,
    pub threshold: f64,
    pub passed: bool,
}

/// One mart, one date.
#[derive(Debug, Clone)]
pub struct MartResult {
    pub mart: String,
    pub ds: NaiveDate,
    pub outcome: Outcome,
    pub rows: Option<u64>,
    pub checks: Vec<CheckResult>,
    pub error: Option<String>,
    pub started: chrono::DateTime<chrono::Utc>,
    pub seconds: f64,
    pub jobs: Vec<String>,
}

/// Everything a run did.
#[derive(Debug, Clone)]
pub struct Summary {
    pub run_id: String,
    pub results: Vec<MartResult>,
}

impl Summary {
    /// Marts that did not build (failed, or skipped after an upstream failure).
    pub fn failed(&self) -> usize {
        self.results
            .iter()
            .filter(|r| r.outcome.blocks_dependents())
            .count()
    }

    pub fn get(&self, mart: &str, ds: NaiveDate) -> Option<&MartResult> {
        self.results.iter().find(|r| r.mart == mart && r.ds == ds)
    }

    /// A table of every mart and date, for the terminal.
    pub fn table(&self) -> String {
        let w = self
            .results
            .iter()
            .map(|r| r.mart.len())
            .max()
            .unwrap_or(4)
            .max(4);
        let mut out = format!(
            "{:<w$}  {:<10}  {:<15}  {:>9}  {:>7}  {:>7}  error\n",
            "mart", "ds", "status", "rows", "checks", "seconds"
        );
        for r in &self.results {
            let passed = r.checks.iter().filter(|c| c.passed).count();
            let checks = if r.checks.is_empty() {
                "-".to_string()
            } else {
                format!("{passed}/{}", r.checks.len())
            };
            out.push_str(&format!(
                "{:<w$}  {}  {:<15}  {:>9}  {:>7}  {:>7.1}  {}\n",
                r.mart,
                r.ds,
                r.outcome.label(),
                r.rows.map_or("-".to_string(), |n| n.to_string()),
                checks,
                r.seconds,
                r.error.as_deref().unwrap_or("")
            ));
        }
        let failed = self.failed();
        out.push_str(&format!(
            "{} built, {} failed or skipped, run {}\n",
            self.results
                .iter()
                .filter(|r| r.outcome == Outcome::Success)
                .count(),
            failed,
            self.run_id
        ));
        out
    }
}

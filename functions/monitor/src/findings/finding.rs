//! One finding: something wrong, as one incident; and how findings write ages and limits.

use std::time::Duration;

use sluice::config::Severity;
use sluice::ledger::Worker;

use super::observed::LastRun;
use crate::declared::Declared;

/// Something wrong, as one incident: `key` names it across checks (the same problem found
/// again is the same incident).
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub key: String,
    /// failed, missed, stale, fail_condition, dq_metric, dead_letters, cdc_lag, cdc_wal, counts.
    pub kind: &'static str,
    pub severity: Severity,
    /// The worker it is about (the producer, for a table).
    pub worker: Worker,
    /// The table, mart or unit it is about.
    pub subject: String,
    /// An `owners:` key.
    pub owner: Option<String>,
    /// One line: what is wrong.
    pub title: String,
    pub error: Option<String>,
    pub logical_date: Option<String>,
    pub run_id: Option<String>,
    /// Labelled facts (rows in / loaded / dead-lettered, age, lag ...).
    pub facts: Vec<(String, String)>,
}

impl Finding {
    /// An error about one unit's last ledger row: keyed by kind, worker, subject and logical
    /// date, owned as the unit is, with the row's run id and counts. `title` gets the subject
    /// and the date.
    pub fn of_run(
        kind: &'static str,
        r: &LastRun,
        declared: &Declared,
        title: impl FnOnce(&str, Option<&str>) -> String,
        error: Option<String>,
    ) -> Finding {
        let subject = r.subject();
        let date = r.logical_date.clone();
        Finding {
            key: format!(
                "{kind}:{}:{subject}:{}",
                r.worker,
                date.as_deref().unwrap_or("")
            ),
            kind,
            severity: Severity::Error,
            worker: r.worker,
            title: title(&subject, date.as_deref()),
            owner: declared.owner_of(r.worker.as_str(), r.source.as_deref(), r.table.as_deref()),
            subject,
            error,
            logical_date: date,
            run_id: Some(r.run_id.clone()),
            facts: r.count_facts(),
        }
    }
}

/// `45 min`, `5 h`, `3 days`.
pub fn age_text(d: chrono::Duration) -> String {
    let m = d.num_minutes();
    match m {
        m if m < 120 => format!("{m} min"),
        m if m < 48 * 60 => format!("{} h", m / 60),
        m => format!("{} days", m / (24 * 60)),
    }
}

/// A configured duration as chrono's (zero when out of range).
pub fn std_dur(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_in_the_largest_whole_unit() {
        let m = chrono::Duration::minutes;
        assert_eq!(age_text(m(45)), "45 min");
        assert_eq!(age_text(m(119)), "119 min");
        assert_eq!(age_text(m(120)), "2 h");
        assert_eq!(age_text(m(48 * 60 - 1)), "47 h");
        assert_eq!(age_text(m(3 * 24 * 60 + 5)), "3 days");
        assert_eq!(
            std_dur(Duration::from_secs(90)),
            chrono::Duration::seconds(90)
        );
    }
}

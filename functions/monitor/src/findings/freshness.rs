//! How fresh each declared table is: the last success of the unit that lands it against its
//! SLA. The stale finding reads it, and so do the status page and the digest.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sluice::config::Severity;

use super::finding::std_dur;
use super::observed::Observed;
use crate::declared::Declared;

/// How fresh a declared table is.
#[derive(Debug, Clone, PartialEq)]
pub struct TableFreshness {
    pub dataset: String,
    pub table: String,
    pub owner: Option<String>,
    pub last_success: Option<DateTime<Utc>>,
    /// None: no SLA, or fresh; else warn or error.
    pub status: Option<Severity>,
    pub warn_after: Option<Duration>,
    pub error_after: Option<Duration>,
}

/// The freshness of every declared table as of `now`.
pub fn freshness(declared: &Declared, o: &Observed, now: DateTime<Utc>) -> Vec<TableFreshness> {
    declared
        .tables
        .iter()
        .map(|t| {
            let last_success = o
                .units
                .iter()
                .filter(|u| {
                    u.worker == t.worker
                        && (t.source.is_none() || u.source == t.source)
                        && (t.unit_table.is_none() || u.table == t.unit_table)
                })
                .filter_map(|u| u.last_success)
                .max();
            // Never loaded: the clock runs from when the table was first declared.
            let since = last_success
                .or_else(|| o.since(t.worker, t.source.as_deref(), t.unit_table.as_deref()));
            let (warn, error) = t
                .freshness
                .map(|f| (f.warn_after, f.error_after))
                .unwrap_or((None, None));
            let past =
                |d: Option<Duration>| d.is_some_and(|d| since.is_none_or(|l| now - l > std_dur(d)));
            let status = if past(error) {
                Some(Severity::Error)
            } else if past(warn) {
                Some(Severity::Warn)
            } else {
                None
            };
            TableFreshness {
                dataset: t.dataset.clone(),
                table: t.table.clone(),
                owner: t.owner.clone(),
                last_success,
                status,
                warn_after: warn,
                error_after: error,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::findings::fixtures::{setup, t, unit};
    use sluice::ledger::Worker;

    #[test]
    fn a_table_is_as_fresh_as_the_last_success_of_its_unit() {
        let (_, d) = setup();
        let now = t("2026-12-03T12:00:00Z");
        let o = Observed {
            units: vec![unit(
                Worker::PgCopy,
                "shop",
                Some("orders"),
                "2026-12-03T06:00:00Z",
                Some("2026-12-02T06:00:00Z"),
            )],
            ..Observed::default()
        };
        let f = freshness(&d, &o, now);
        let got: Vec<(String, Option<Severity>)> = f
            .iter()
            .map(|f| (format!("{}.{}", f.dataset, f.table), f.status))
            .collect();
        // orders: 30 h old, warn after 26 h; users: no SLA; the replica: never loaded and
        // not known to the declaration history, so past its 30 min at once.
        assert_eq!(
            got,
            [
                ("shop.orders".to_string(), Some(Severity::Warn)),
                ("shop.users".to_string(), None),
                ("shop_replica.orders".to_string(), Some(Severity::Warn)),
            ]
        );
        assert_eq!(f[0].last_success, Some(t("2026-12-02T06:00:00Z")));
        // Declared an hour ago and never loaded: the replica's clock runs from then.
        let o = Observed {
            declared_since: vec![(
                (Worker::CdcSync, Some("shop".into()), None),
                t("2026-12-03T11:45:00Z"),
            )],
            ..o
        };
        assert_eq!(freshness(&d, &o, now)[2].status, None);
    }
}

//! Missed runs, the heartbeat: a unit's schedule fired (more than `alerts.missed_after` ago)
//! and no ledger row started after it. The monitor is not among the units: it cannot see its
//! own absence (its rows show on the status page and in the ops views instead).

use chrono::{DateTime, Utc};
use sluice::config::{AlertsConfig, Severity};

use super::finding::{age_text, std_dur, Finding};
use super::observed::{Observed, HISTORY_DAYS};
use crate::declared::{Declared, Unit};

/// A missed run, and the stale tables it explains (said in its message, not in their own).
#[derive(Debug)]
pub struct Missed<'a> {
    pub finding: Finding,
    pub unit: &'a Unit,
    /// `dataset.table` of each stale table the unit lands.
    pub stale: Vec<String>,
}

impl Missed<'_> {
    /// The finding, with the tables that went stale because of it.
    pub fn into_finding(self) -> Finding {
        let mut f = self.finding;
        if !self.stale.is_empty() {
            f.facts
                .push(("stale because of it".into(), self.stale.join(", ")));
        }
        f
    }
}

/// Every declared unit whose schedule fired without a run, as of `now`.
pub fn missed<'a>(
    declared: &'a Declared,
    o: &Observed,
    alerts: &AlertsConfig,
    now: DateTime<Utc>,
) -> Vec<Missed<'a>> {
    let missed_before = now - std_dur(alerts.missed_after);
    let mut out = vec![];
    for u in &declared.units {
        // A due time older than the ledger history read cannot be checked, and one before the
        // unit was first declared is not its to miss.
        let declared_at = o.since(u.worker, Some(&u.source), u.table.as_deref());
        let Some(due) = u.schedule.last_due(missed_before).filter(|d| {
            *d > now - chrono::Duration::days(HISTORY_DAYS) && declared_at.is_none_or(|s| *d >= s)
        }) else {
            continue;
        };
        let started = o
            .units
            .iter()
            .filter(|t| {
                t.worker == u.worker
                    && t.source.as_deref() == Some(u.source.as_str())
                    && (u.table.is_none() || t.table == u.table)
            })
            .filter_map(|t| t.last_started)
            .max();
        // A run may log its start a little before the minute it was due (clock skew).
        if started.is_some_and(|s| s >= due - chrono::Duration::minutes(1)) {
            continue;
        }
        let label = u.label();
        let last = started
            .map(|s| format!("last started {} ago", age_text(now - s)))
            .unwrap_or_else(|| format!("no run in the last {HISTORY_DAYS} days"));
        out.push(Missed {
            finding: Finding {
                key: format!("missed:{label}"),
                kind: "missed",
                severity: Severity::Error,
                worker: u.worker,
                subject: label.clone(),
                owner: u.owner.clone(),
                title: format!(
                    "missed run: {label} was due at {} UTC ({}) and has not started",
                    due.format("%Y-%m-%d %H:%M"),
                    u.schedule.cron()
                ),
                error: Some(last),
                logical_date: None,
                run_id: None,
                facts: vec![("due".into(), due.format("%Y-%m-%d %H:%M UTC").to_string())],
            },
            unit: u,
            stale: vec![],
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::findings::findings;
    use crate::findings::fixtures::{setup, t, unit};
    use sluice::ledger::Worker;

    #[test]
    fn a_schedule_that_fired_without_a_ledger_row_is_a_missed_run() {
        let (p, d) = setup();
        let a = AlertsConfig {
            missed_after: Duration::from_secs(1800),
            ..serde_yaml::from_str("{}").unwrap()
        };
        let now = t("2026-12-03T07:00:00Z");
        let o = Observed {
            units: vec![
                unit(
                    Worker::PgCopy,
                    "shop",
                    Some("orders"),
                    "2026-12-03T06:00:05Z",
                    Some("2026-12-03T06:01:00Z"),
                ),
                unit(
                    Worker::PgCopy,
                    "shop",
                    Some("users"),
                    "2026-12-02T06:00:05Z",
                    Some("2026-12-02T06:01:00Z"),
                ),
                unit(
                    Worker::CdcSync,
                    "shop",
                    None,
                    "2026-12-03T06:25:01Z",
                    Some("2026-12-03T06:26:00Z"),
                ),
            ],
            ..Observed::default()
        };
        let f = findings(&p, &d, &o, &a, now);
        let keys: Vec<&str> = f.iter().map(|f| f.key.as_str()).collect();
        // users' 06:00 run did not start; cdc-sync's 06:30 run (due an hour before now minus
        // 30 min) did not either; orders' did.
        assert_eq!(keys, ["missed:cdc-sync shop", "missed:pg-copy shop.users"]);
        // The replica went stale because cdc-sync did not run: said in the missed run's message.
        assert_eq!(
            f[0].facts.last(),
            Some(&(
                "stale because of it".to_string(),
                "shop_replica.orders".to_string()
            ))
        );
        assert_eq!(f[1].owner.as_deref(), Some("ana"));
        assert!(
            f[1].title
                .contains("was due at 2026-12-03 06:00 UTC (0 6 * * *)"),
            "{}",
            f[1].title
        );
        assert_eq!(f[1].error.as_deref(), Some("last started 24 h ago"));
        // Before the grace period ends nothing is missed.
        let f = findings(&p, &d, &o, &a, t("2026-12-03T06:20:00Z"));
        assert!(
            f.iter()
                .all(|f| f.kind != "missed" || f.subject.starts_with("cdc")),
            "{f:?}"
        );
        // A table added after its schedule fired is not behind yet, and its SLA runs from then.
        let o = Observed {
            declared_since: vec![
                (
                    (Worker::PgCopy, Some("shop".into()), Some("users".into())),
                    t("2026-12-03T06:10:00Z"),
                ),
                (
                    (Worker::CdcSync, Some("shop".into()), None),
                    t("2026-12-01T00:00:00Z"),
                ),
            ],
            ..o
        };
        let keys: Vec<String> = findings(&p, &d, &o, &a, now)
            .into_iter()
            .map(|f| f.key)
            .collect();
        assert_eq!(keys, ["missed:cdc-sync shop"]);
    }

    #[test]
    fn the_monitor_is_not_a_unit_it_can_miss() {
        let (_, d) = setup();
        let a: AlertsConfig = serde_yaml::from_str("{missed_after: 30m}").unwrap();
        // Nothing ran for days, the monitor included: each declared unit is missed, and none
        // of them is the monitor's.
        let o = Observed {
            units: vec![unit(
                Worker::Monitor,
                "shop",
                None,
                "2026-12-01T06:00:00Z",
                Some("2026-12-01T06:00:00Z"),
            )],
            ..Observed::default()
        };
        let m = missed(&d, &o, &a, t("2026-12-03T07:00:00Z"));
        let workers: Vec<Worker> = m.iter().map(|m| m.finding.worker).collect();
        assert_eq!(workers, [Worker::PgCopy, Worker::PgCopy, Worker::CdcSync]);
        assert!(d.units.iter().all(|u| u.worker != Worker::Monitor));
        let f = m.into_iter().next().unwrap().into_finding();
        assert_eq!(f.facts.len(), 1, "no stale table attached: {f:?}");
    }
}

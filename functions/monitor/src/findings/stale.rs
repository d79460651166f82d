//! Stale tables: a declared table whose last success is older than its SLA. A table that a
//! missed run lands is said in that run's message instead of one of its own.

use chrono::{DateTime, Utc};
use sluice::config::Severity;

use super::finding::{age_text, std_dur, Finding};
use super::freshness::freshness;
use super::missed::Missed;
use super::observed::Observed;
use crate::declared::Declared;

/// A finding per stale table, as of `now`; those landed by a unit in `missed` are added to
/// it instead.
pub fn stale(
    declared: &Declared,
    o: &Observed,
    now: DateTime<Utc>,
    missed: &mut [Missed<'_>],
) -> Vec<Finding> {
    let mut out = vec![];
    for f in freshness(declared, o, now) {
        let Some(sev) = f.status else { continue };
        // Always found: `freshness` lists the declared tables.
        let Some(t) = declared.table(&f.dataset, &f.table) else {
            continue;
        };
        let landed_by = missed.iter_mut().find(|m| {
            m.unit.worker == t.worker
                && t.source.as_deref() == Some(m.unit.source.as_str())
                && (m.unit.table.is_none() || m.unit.table == t.unit_table)
        });
        if let Some(m) = landed_by {
            m.stale.push(format!("{}.{}", f.dataset, f.table));
            continue;
        }
        let limit = if sev == Severity::Error {
            f.error_after
        } else {
            f.warn_after
        };
        let name = format!("{}.{}", f.dataset, f.table);
        let age = f
            .last_success
            .map(|l| format!("last loaded {} ago", age_text(now - l)))
            .unwrap_or_else(|| "never loaded".to_string());
        out.push(Finding {
            key: format!("stale:{name}"),
            kind: "stale",
            severity: sev,
            worker: t.worker,
            subject: name.clone(),
            owner: f.owner.clone(),
            title: format!(
                "{name} is stale: {age} ({} after {})",
                if sev == Severity::Error {
                    "error"
                } else {
                    "warn"
                },
                limit.map(|d| age_text(std_dur(d))).unwrap_or_default()
            ),
            error: None,
            logical_date: None,
            run_id: None,
            facts: vec![(
                "last loaded".into(),
                f.last_success
                    .map(|l| l.format("%Y-%m-%d %H:%M UTC").to_string())
                    .unwrap_or_else(|| "never".into()),
            )],
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::findings::fixtures::{setup, t, unit};
    use sluice::ledger::Worker;

    #[test]
    fn a_table_past_its_sla_is_stale_unless_a_missed_run_explains_it() {
        let (_, d) = setup();
        let now = t("2026-12-03T12:00:00Z");
        let o = Observed {
            units: vec![
                unit(
                    Worker::PgCopy,
                    "shop",
                    Some("orders"),
                    "2026-12-02T06:00:00Z",
                    Some("2026-12-01T06:00:00Z"),
                ),
                unit(
                    Worker::CdcSync,
                    "shop",
                    None,
                    "2026-12-03T11:55:00Z",
                    Some("2026-12-03T11:56:00Z"),
                ),
            ],
            ..Observed::default()
        };
        let f = stale(&d, &o, now, &mut []);
        let got: Vec<(&str, Severity, Worker)> = f
            .iter()
            .map(|f| (f.key.as_str(), f.severity, f.worker))
            .collect();
        // 54 h since the last load: past error_after (50 h, said as 2 days). The replica is fresh.
        assert_eq!(
            got,
            [("stale:shop.orders", Severity::Error, Worker::PgCopy)]
        );
        assert_eq!(
            f[0].title,
            "shop.orders is stale: last loaded 2 days ago (error after 2 days)"
        );
        assert_eq!(
            f[0].facts,
            [(
                "last loaded".to_string(),
                "2026-12-01 06:00 UTC".to_string()
            )]
        );
        // The copy of orders missed its run: the table is said there.
        let a: sluice::config::AlertsConfig = serde_yaml::from_str("{missed_after: 30m}").unwrap();
        let mut missed = crate::findings::missed::missed(&d, &o, &a, now);
        assert!(stale(&d, &o, now, &mut missed).is_empty());
        let orders = missed
            .iter()
            .find(|m| m.unit.table.as_deref() == Some("orders"))
            .unwrap();
        assert_eq!(orders.stale, ["shop.orders"]);
    }
}

//! What `monitor check` finds wrong, from the ops tables against what is declared: failed
//! units, missed runs (the heartbeat: a schedule fired and no ledger row followed), stale
//! tables, tripped fail conditions and failing DQ metrics, a high dead-letter rate, CDC lag
//! and retained WAL, and counts that do not add up.
//!
//! `observed` reads the ops tables (fixed queries with parameters); everything after is a pure
//! function of their rows: one file per kind of finding, each with its tests (`failed`,
//! `counts`, `cdc`, `missed`, `stale` over `freshness`, `dq`, `dead_letters`), and `findings`
//! calling them in order.

mod cdc;
mod counts;
mod dead_letters;
mod dq;
mod failed;
mod finding;
#[cfg(test)]
mod fixtures;
mod freshness;
mod missed;
mod observed;
mod stale;

use chrono::{DateTime, Utc};
use sluice::config::{AlertsConfig, Pipeline};

use crate::declared::Declared;

pub use finding::Finding;
pub use freshness::{freshness, TableFreshness};
pub use observed::{json_cell, rows, ts, Observed, HISTORY_DAYS};

/// Everything wrong as of `now`, ordered by incident key (one finding per key).
pub fn findings(
    p: &Pipeline,
    declared: &Declared,
    o: &Observed,
    alerts: &AlertsConfig,
    now: DateTime<Utc>,
) -> Vec<Finding> {
    let mut out = failed::failed(declared, o);
    out.extend(counts::counts(declared, o));
    out.extend(cdc::cdc(p, declared, o, alerts));
    let mut missed = missed::missed(declared, o, alerts, now);
    let stale = stale::stale(declared, o, now, &mut missed);
    out.extend(missed.into_iter().map(missed::Missed::into_finding));
    out.extend(stale);
    out.extend(dq::dq(declared, o));
    out.extend(dead_letters::dead_letters(p, declared, o, alerts));
    dq::fold_tripped_builds(&mut out);
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out.dedup_by(|a, b| a.key == b.key);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use fixtures::{run, setup, t, unit};
    use observed::{DqRow, EventCounts, LastRun};
    use sluice::config::Severity;
    use sluice::ledger::Worker;

    #[test]
    fn failures_counts_freshness_dq_dead_letters_and_cdc_lag() {
        let (p, d) = setup();
        let a: AlertsConfig = serde_yaml::from_str("{missed_after: 1000h}").unwrap();
        let now = t("2026-12-03T12:00:00Z");
        let copied = |status: &str, table: &str, rows: (i64, i64, i64)| LastRun {
            run_id: "r1".into(),
            source: Some("shop".into()),
            table: Some(table.into()),
            logical_date: Some("2026-12-02".into()),
            status: status.into(),
            error: (status == "failed").then(|| "relation \"orders\" does not exist".into()),
            rows_in: rows.0,
            rows_loaded: rows.1,
            rows_dead_lettered: rows.2,
            ..run(Worker::PgCopy)
        };
        let o = Observed {
            last_runs: vec![
                copied("failed", "orders", (0, 0, 0)),
                copied("success", "users", (10, 8, 1)),
                LastRun {
                    source: Some("shop".into()),
                    status: "success".into(),
                    details: serde_json::json!({"lag_seconds": 4000.0, "retained_wal_bytes": 20971520}),
                    ..run(Worker::CdcSync)
                },
            ],
            units: vec![unit(
                Worker::PgCopy,
                "shop",
                Some("orders"),
                "2026-12-03T06:00:00Z",
                Some("2026-12-01T12:00:00Z"),
            )],
            dq: vec![DqRow {
                mart: "finance.daily".into(),
                ds: "2026-12-02".into(),
                check_name: "unique_day".into(),
                kind: "fail_condition".into(),
                value: Some(0.9),
                threshold: Some(1.0),
                passed: false,
                ..DqRow::default()
            }],
            events: vec![EventCounts {
                table: "signup".into(),
                rows_in: 100,
                dead_lettered: 6,
            }],
            declared_since: vec![],
        };
        let f = findings(&p, &d, &o, &a, now);
        let got: Vec<(&str, Severity)> = f.iter().map(|f| (f.key.as_str(), f.severity)).collect();
        assert_eq!(
            got,
            [
                ("cdc_lag:shop", Severity::Warn),
                ("cdc_wal:shop", Severity::Warn),
                ("counts:pg-copy:shop.users:2026-12-02", Severity::Error),
                ("dead_letters:signup", Severity::Warn),
                (
                    "fail_condition:finance.daily:unique_day:2026-12-02",
                    Severity::Error
                ),
                ("failed:pg-copy:shop.orders:2026-12-02", Severity::Error),
                ("stale:shop.orders", Severity::Warn),
                ("stale:shop_replica.orders", Severity::Warn),
            ]
        );
        let failed = &f[5];
        assert_eq!(failed.title, "pg-copy failed: shop.orders for 2026-12-02");
        assert_eq!(failed.owner.as_deref(), Some("ana"));
        assert!(
            f[6].title
                .contains("last loaded 2 days ago (warn after 26 h)"),
            "{}",
            f[6].title
        );
        assert!(
            f[3].title.starts_with("6 of 100 signup events"),
            "{}",
            f[3].title
        );
    }
}

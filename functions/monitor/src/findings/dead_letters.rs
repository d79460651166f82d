//! A high dead-letter rate: more than `alerts.dead_letter_rate` of an event table's events in
//! the last hour were dead-lettered.

use std::collections::BTreeMap;

use sluice::config::{AlertsConfig, Pipeline, Severity};
use sluice::ledger::Worker;

use super::finding::Finding;
use super::observed::Observed;
use crate::declared::Declared;

/// A finding per event table over the rate.
pub fn dead_letters(
    p: &Pipeline,
    declared: &Declared,
    o: &Observed,
    alerts: &AlertsConfig,
) -> Vec<Finding> {
    let mut by_table: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for e in &o.events {
        let c = by_table.entry(&e.table).or_default();
        c.0 += e.rows_in;
        c.1 += e.dead_lettered;
    }
    let mut out = vec![];
    for (table, (n, dead)) in by_table {
        if n == 0 || (dead as f64) / (n as f64) <= alerts.dead_letter_rate {
            continue;
        }
        let ds = p
            .events
            .as_ref()
            .map(|e| e.dataset.as_str())
            .unwrap_or("events");
        out.push(Finding {
            key: format!("dead_letters:{table}"),
            kind: "dead_letters",
            severity: Severity::Warn,
            worker: Worker::LogIngest,
            subject: format!("{ds}.{table}"),
            owner: declared.table(ds, table).and_then(|t| t.owner.clone()),
            title: format!(
                "{dead} of {n} {table} events in the last hour were dead-lettered ({:.1}%, limit {:.1}%)",
                100.0 * dead as f64 / n as f64,
                100.0 * alerts.dead_letter_rate
            ),
            error: None,
            logical_date: None,
            run_id: None,
            facts: vec![("events".into(), n.to_string()), ("dead letters".into(), dead.to_string())],
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::findings::fixtures::setup;
    use crate::findings::observed::EventCounts;

    #[test]
    fn an_event_table_over_the_rate_is_a_warning() {
        let (p, d) = setup();
        let a: AlertsConfig = serde_yaml::from_str("{dead_letter_rate: 0.05}").unwrap();
        let counted = |table: &str, rows_in, dead_lettered| EventCounts {
            table: table.into(),
            rows_in,
            dead_lettered,
        };
        let o = Observed {
            events: vec![
                // Two windows of signup: 12 of 200 together.
                counted("signup", 100, 6),
                counted("signup", 100, 6),
                counted("order", 100, 5),
                counted("empty", 0, 3),
            ],
            ..Observed::default()
        };
        let f = dead_letters(&p, &d, &o, &a);
        let keys: Vec<&str> = f.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(keys, ["dead_letters:signup"]);
        assert_eq!(f[0].subject, "events.signup");
        assert_eq!(f[0].worker, Worker::LogIngest);
        assert_eq!(
            f[0].title,
            "12 of 200 signup events in the last hour were dead-lettered (6.0%, limit 5.0%)"
        );
        assert_eq!(
            f[0].facts,
            [
                ("events".to_string(), "200".to_string()),
                ("dead letters".to_string(), "12".to_string()),
            ]
        );
    }
}

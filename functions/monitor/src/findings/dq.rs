//! Data quality: a tripped fail condition (an error: the mart and its dependents were not
//! updated) or a failing DQ metric (a warning), from the newest result of each check of each
//! mart and date. A build that failed because of a tripped fail condition is that one
//! problem, not two.

use sluice::config::Severity;
use sluice::ledger::Worker;

use super::finding::Finding;
use super::observed::{DqRow, Observed};
use crate::declared::Declared;

/// A finding per check whose newest result failed.
pub fn dq(declared: &Declared, o: &Observed) -> Vec<Finding> {
    o.dq.iter()
        .filter(|d| !d.passed)
        .map(|d| {
            let fail = d.kind == "fail_condition";
            let (dataset, table) = d.mart.split_once('.').unwrap_or(("", &d.mart));
            Finding {
                key: format!("{}:{}:{}:{}", d.kind, d.mart, d.check_name, d.ds),
                kind: if fail { "fail_condition" } else { "dq_metric" },
                severity: if fail {
                    Severity::Error
                } else {
                    Severity::Warn
                },
                worker: Worker::MartBuild,
                subject: d.mart.clone(),
                owner: declared.table(dataset, table).and_then(|t| t.owner.clone()),
                title: format!(
                    "{} {} failed on {} for {}{}",
                    if fail { "fail condition" } else { "DQ metric" },
                    d.check_name,
                    d.mart,
                    d.ds,
                    if fail {
                        " (the mart and its dependents were not updated)"
                    } else {
                        ""
                    }
                ),
                error: None,
                logical_date: Some(d.ds.clone()),
                run_id: Some(d.run_id.clone()),
                facts: dq_facts(d),
            }
        })
        .collect()
}

/// What a check measured: `11999 of 12000 rows (0.9999)` for a fail condition (they count the
/// rows that pass), else the value as recorded; and the threshold.
fn dq_facts(d: &DqRow) -> Vec<(String, String)> {
    let mut out = vec![];
    match (d.value, d.rows) {
        (Some(v), Some(n)) if n > 0 && d.kind == "fail_condition" && v.fract() == 0.0 => {
            out.push((
                "value".into(),
                format!("{v} of {n} rows ({:.4})", v / n as f64),
            ))
        }
        (Some(v), _) => out.push(("value".into(), format!("{v}"))),
        _ => {}
    }
    if let Some(t) = d.threshold {
        out.push(("threshold".into(), format!("{t}")));
    }
    out
}

/// A mart-build run that failed because a fail condition tripped is one problem: its
/// `failed` finding goes, and the fail condition's message carries the run's error and id.
pub fn fold_tripped_builds(out: &mut Vec<Finding>) {
    let tripped: Vec<(String, Option<String>)> = out
        .iter()
        .filter(|f| f.kind == "fail_condition")
        .map(|f| (f.subject.clone(), f.logical_date.clone()))
        .collect();
    let mut errors = vec![];
    out.retain(|f| {
        let folded = f.kind == "failed"
            && f.worker == Worker::MartBuild
            && tripped
                .iter()
                .any(|(m, d)| *m == f.subject && *d == f.logical_date);
        if folded {
            errors.push((
                f.subject.clone(),
                f.logical_date.clone(),
                f.error.clone(),
                f.run_id.clone(),
            ));
        }
        !folded
    });
    for f in out.iter_mut().filter(|f| f.kind == "fail_condition") {
        if let Some((_, _, error, run)) = errors
            .iter()
            .find(|e| e.0 == f.subject && e.1 == f.logical_date)
        {
            f.error = f.error.clone().or(error.clone());
            f.run_id = run.clone().or(f.run_id.take());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::findings::fixtures::setup;

    fn check(name: &str, kind: &str, value: Option<f64>, rows: Option<i64>) -> DqRow {
        DqRow {
            run_id: "rq".into(),
            mart: "finance.daily".into(),
            ds: "2026-12-02".into(),
            check_name: name.into(),
            kind: kind.into(),
            value,
            rows,
            threshold: Some(1.0),
            passed: false,
        }
    }

    #[test]
    fn failed_checks_say_what_they_measured_and_a_tripped_build_is_one_finding() {
        let (_, d) = setup();
        let o = Observed {
            dq: vec![
                check("unique_day", "fail_condition", Some(11999.0), Some(12000)),
                check("big_days", "dq_metric", Some(400.5), None),
                DqRow {
                    passed: true,
                    ..check("fine", "dq_metric", Some(1.0), None)
                },
            ],
            ..Observed::default()
        };
        let mut f = dq(&d, &o);
        let got: Vec<(&str, &str, Severity, Worker)> = f
            .iter()
            .map(|f| (f.key.as_str(), f.kind, f.severity, f.worker))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "fail_condition:finance.daily:unique_day:2026-12-02",
                    "fail_condition",
                    Severity::Error,
                    Worker::MartBuild
                ),
                (
                    "dq_metric:finance.daily:big_days:2026-12-02",
                    "dq_metric",
                    Severity::Warn,
                    Worker::MartBuild
                ),
            ]
        );
        assert_eq!(
            f[0].title,
            "fail condition unique_day failed on finance.daily for 2026-12-02 (the mart and its dependents were not updated)"
        );
        assert_eq!(
            f[0].facts,
            [
                (
                    "value".to_string(),
                    "11999 of 12000 rows (0.9999)".to_string()
                ),
                ("threshold".to_string(), "1".to_string()),
            ]
        );
        assert_eq!(f[1].facts[0], ("value".to_string(), "400.5".to_string()));
        // The build of that mart and date failed because of it: one finding, with the run's
        // error and id.
        let build = |date: &str| Finding {
            key: format!("failed:mart-build:finance.daily:{date}"),
            kind: "failed",
            severity: Severity::Error,
            worker: Worker::MartBuild,
            subject: "finance.daily".into(),
            owner: None,
            title: "mart-build failed".into(),
            error: Some("fail condition tripped: unique_day".into()),
            logical_date: Some(date.into()),
            run_id: Some("rb".into()),
            facts: vec![],
        };
        f.push(build("2026-12-02"));
        f.push(build("2026-12-01"));
        fold_tripped_builds(&mut f);
        let keys: Vec<&str> = f.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "fail_condition:finance.daily:unique_day:2026-12-02",
                "dq_metric:finance.daily:big_days:2026-12-02",
                "failed:mart-build:finance.daily:2026-12-01",
            ]
        );
        assert_eq!(
            f[0].error.as_deref(),
            Some("fail condition tripped: unique_day")
        );
        assert_eq!(f[0].run_id.as_deref(), Some("rb"));
    }
}

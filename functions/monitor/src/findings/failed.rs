//! Failed units: the last ledger row of a unit says `failed`.

use super::finding::Finding;
use super::observed::Observed;
use crate::declared::Declared;

/// A finding per unit whose last row failed.
pub fn failed(declared: &Declared, o: &Observed) -> Vec<Finding> {
    o.pipeline_runs()
        .filter(|r| r.status == "failed")
        .map(|r| {
            let title = |subject: &str, date: Option<&str>| match date {
                Some(d) => format!("{} failed: {subject} for {d}", r.worker),
                None => format!("{} failed: {subject}", r.worker),
            };
            Finding::of_run("failed", r, declared, title, r.error.clone())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::findings::fixtures::{run, setup};
    use crate::findings::observed::LastRun;
    use sluice::ledger::Worker;

    #[test]
    fn a_unit_whose_last_row_failed_is_one_finding_with_its_error() {
        let (_, d) = setup();
        let o = Observed {
            last_runs: vec![
                LastRun {
                    run_id: "r1".into(),
                    source: Some("shop".into()),
                    table: Some("orders".into()),
                    logical_date: Some("2026-12-02".into()),
                    status: "failed".into(),
                    error: Some("relation \"orders\" does not exist".into()),
                    ..run(Worker::PgCopy)
                },
                LastRun {
                    source: Some("shop".into()),
                    status: "failed".into(),
                    ..run(Worker::CdcSync)
                },
                LastRun {
                    table: Some("signup".into()),
                    source: Some("topic".into()),
                    ..run(Worker::LogIngest)
                },
                // The monitor's own failed check is not a finding.
                LastRun {
                    status: "failed".into(),
                    ..run(Worker::Monitor)
                },
            ],
            ..Observed::default()
        };
        let f = failed(&d, &o);
        let keys: Vec<&str> = f.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "failed:pg-copy:shop.orders:2026-12-02",
                "failed:cdc-sync:shop:"
            ]
        );
        assert_eq!(f[0].title, "pg-copy failed: shop.orders for 2026-12-02");
        assert_eq!(f[0].worker, Worker::PgCopy);
        assert_eq!(f[0].owner.as_deref(), Some("ana"));
        assert_eq!(
            f[0].error.as_deref(),
            Some("relation \"orders\" does not exist")
        );
        assert_eq!(f[0].run_id.as_deref(), Some("r1"));
        assert_eq!(f[0].facts[0], ("rows in".to_string(), "0".to_string()));
        assert_eq!(f[1].title, "cdc-sync failed: shop");
    }
}

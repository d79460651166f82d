//! Counts that do not add up: a successful unit whose rows in are not its rows loaded plus
//! its rows dead-lettered (mart-build's rows in are what the mart's SELECT returned, so it is
//! not held to this).

use sluice::ledger::Worker;

use super::finding::Finding;
use super::observed::Observed;
use crate::declared::Declared;

/// A finding per successful unit whose counts do not add up.
pub fn counts(declared: &Declared, o: &Observed) -> Vec<Finding> {
    o.pipeline_runs()
        .filter(|r| {
            r.status == "success"
                && r.worker != Worker::MartBuild
                && r.rows_in != r.rows_loaded + r.rows_dead_lettered
        })
        .map(|r| {
            let title = |subject: &str, _: Option<&str>| {
                format!(
                    "{} counts do not add up: {subject}: {} in, {} loaded + {} dead-lettered",
                    r.worker, r.rows_in, r.rows_loaded, r.rows_dead_lettered
                )
            };
            Finding::of_run("counts", r, declared, title, None)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::findings::fixtures::{run, setup};
    use crate::findings::observed::LastRun;

    #[test]
    fn rows_in_must_be_rows_loaded_plus_dead_lettered() {
        let (_, d) = setup();
        let counted = |worker, table: &str, rows: (i64, i64, i64)| LastRun {
            run_id: "r1".into(),
            source: Some("shop".into()),
            table: Some(table.into()),
            logical_date: Some("2026-12-02".into()),
            rows_in: rows.0,
            rows_loaded: rows.1,
            rows_dead_lettered: rows.2,
            ..run(worker)
        };
        let o = Observed {
            last_runs: vec![
                counted(Worker::PgCopy, "orders", (10, 9, 1)),
                counted(Worker::PgCopy, "users", (10, 8, 1)),
                // A mart's rows in are what its SELECT returned.
                counted(Worker::MartBuild, "daily", (10, 8, 0)),
                // The signup events of a window: events.signup, not source.table.
                LastRun {
                    source: None,
                    ..counted(Worker::LogIngest, "signup", (5, 3, 1))
                },
                LastRun {
                    status: "failed".into(),
                    ..counted(Worker::PgCopy, "items", (10, 0, 0))
                },
            ],
            ..Observed::default()
        };
        let f = counts(&d, &o);
        let keys: Vec<&str> = f.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "counts:pg-copy:shop.users:2026-12-02",
                "counts:log-ingest:signup:2026-12-02"
            ]
        );
        assert_eq!(
            f[0].title,
            "pg-copy counts do not add up: shop.users: 10 in, 8 loaded + 1 dead-lettered"
        );
        assert_eq!(f[0].owner.as_deref(), Some("ana"));
        assert_eq!(f[1].worker, Worker::LogIngest);
        assert_eq!(
            f[1].facts,
            [
                ("rows in".to_string(), "5".to_string()),
                ("loaded".to_string(), "3".to_string()),
                ("dead-lettered".to_string(), "1".to_string()),
            ]
        );
    }
}

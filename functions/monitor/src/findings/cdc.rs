//! CDC lag and retained WAL: what cdc-sync's last successful run measured, against
//! `alerts.cdc_lag` and the source's `retained_wal_warn_mib`.

use sluice::config::{AlertsConfig, Pipeline, Severity};
use sluice::ledger::Worker;

use super::finding::Finding;
use super::observed::{LastRun, Observed};
use crate::declared::Declared;

/// The lag and WAL findings of every source's last successful cdc-sync run.
pub fn cdc(p: &Pipeline, declared: &Declared, o: &Observed, alerts: &AlertsConfig) -> Vec<Finding> {
    let mut out = vec![];
    for r in o
        .pipeline_runs()
        .filter(|r| r.worker == Worker::CdcSync && r.status == "success")
    {
        let source = r.source.clone().unwrap_or_default();
        let lag = r.details["lag_seconds"].as_f64().unwrap_or(0.0);
        let wal = r.details["retained_wal_bytes"].as_f64().unwrap_or(0.0);
        let wal_limit = p
            .sources
            .get(&source)
            .and_then(|s| s.cdc.as_ref())
            .map(|c| c.retained_wal_warn_mib as f64 * 1024.0 * 1024.0);
        if lag > alerts.cdc_lag.as_secs_f64() {
            out.push(finding(
                declared,
                r,
                "cdc_lag",
                format!(
                    "cdc-sync {source} is {:.0} s behind (limit {} s)",
                    lag,
                    alerts.cdc_lag.as_secs()
                ),
                vec![("lag".into(), format!("{lag:.0} s"))],
            ));
        }
        if wal_limit.is_some_and(|l| wal > l) {
            out.push(finding(
                declared,
                r,
                "cdc_wal",
                format!(
                    "the slot of {source} retains {:.0} MiB of WAL (limit {:.0} MiB)",
                    wal / 1048576.0,
                    wal_limit.unwrap_or(0.0) / 1048576.0
                ),
                vec![("retained WAL".into(), format!("{:.0} MiB", wal / 1048576.0))],
            ));
        }
    }
    out
}

fn finding(
    declared: &Declared,
    r: &LastRun,
    kind: &'static str,
    title: String,
    facts: Vec<(String, String)>,
) -> Finding {
    let source = r.source.clone().unwrap_or_default();
    Finding {
        key: format!("{kind}:{source}"),
        kind,
        severity: Severity::Warn,
        worker: Worker::CdcSync,
        subject: source,
        owner: declared.owner_of(r.worker.as_str(), r.source.as_deref(), r.table.as_deref()),
        title,
        error: None,
        logical_date: None,
        run_id: Some(r.run_id.clone()),
        facts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::findings::fixtures::{run, setup};

    #[test]
    fn lag_and_retained_wal_over_their_limits_are_warnings() {
        let (p, d) = setup();
        let a: AlertsConfig = serde_yaml::from_str("{cdc_lag: 10m}").unwrap();
        let measured = |source: &str, lag: f64, wal: u64| LastRun {
            run_id: format!("r-{source}"),
            source: Some(source.into()),
            details: serde_json::json!({"lag_seconds": lag, "retained_wal_bytes": wal}),
            ..run(Worker::CdcSync)
        };
        let o = Observed {
            last_runs: vec![
                measured("shop", 4000.0, 20971520),
                // Within both limits.
                measured("shop", 600.0, 10485760),
                // A source pipeline.yaml does not know: no WAL limit.
                measured("gone", 10.0, 20971520),
                LastRun {
                    status: "failed".into(),
                    ..measured("shop", 4000.0, 20971520)
                },
            ],
            ..Observed::default()
        };
        let f = cdc(&p, &d, &o, &a);
        let got: Vec<(&str, &str, Option<&str>)> = f
            .iter()
            .map(|f| (f.key.as_str(), f.title.as_str(), f.owner.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "cdc_lag:shop",
                    "cdc-sync shop is 4000 s behind (limit 600 s)",
                    Some("ana")
                ),
                (
                    "cdc_wal:shop",
                    "the slot of shop retains 20 MiB of WAL (limit 10 MiB)",
                    Some("ana")
                ),
            ]
        );
        assert_eq!(
            f[1].facts,
            [("retained WAL".to_string(), "20 MiB".to_string())]
        );
        assert_eq!(f[0].run_id.as_deref(), Some("r-shop"));
    }
}

//! The gate: every check of a mart computed over the built rows in one query, then judged.
//! A tripped fail condition stops the mart before its swap.

use sluice::bigquery::{BigQuery, Param};
use sluice::{Error, Result};

use super::{CheckKind, CheckResult};
use crate::sql;
use sluice::marts::Check;
use sluice::marts::Mart;

/// Runs every check over `source` in one query and judges them.
pub(super) async fn run_checks(
    bq: &BigQuery,
    m: &Mart,
    source: &str,
    outside_of: Option<&str>,
    previous: Option<f64>,
    ds: &[Param],
) -> Result<(u64, Vec<CheckResult>)> {
    let all: Vec<(&Check, CheckKind)> = m
        .fail_conditions
        .iter()
        .map(|c| (c, CheckKind::FailCondition))
        .chain(m.dq_metrics.iter().map(|c| (c, CheckKind::DqMetric)))
        .collect();
    let checks: Vec<&Check> = all.iter().map(|(c, _)| *c).collect();
    // @ds only where the query names it: for rows outside the partition.
    let mut p = if outside_of.is_some() {
        ds.to_vec()
    } else {
        vec![]
    };
    p.extend(
        checks
            .iter()
            .filter_map(|c| c.values.as_ref())
            .map(|(name, values)| Param::strings(name, values)),
    );
    let q = bq
        .query(&sql::check_query(source, &checks, outside_of), &p)
        .await
        .map_err(|e| e.within("checks"))?;
    let num = |col: &str| {
        q.get(0, col)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let rows = num(sql::ROWS);
    let outside = num(sql::OUTSIDE);
    if outside > 0.0 {
        return Err(Error::Gate(format!(
            "{outside} of {rows} built rows fall outside the @ds partition ({}); filter the SELECT on @ds",
            m.header.partition_by.as_deref().unwrap_or_default()
        )));
    }
    let results = all
        .iter()
        .enumerate()
        .map(|(i, (c, kind))| {
            let value = num(&sql::check_column(i));
            CheckResult {
                name: c.name.clone(),
                kind: *kind,
                check_type: c.kind.clone(),
                expression: c.expression.clone(),
                value,
                rows: rows as u64,
                threshold: c.threshold(),
                passed: c.passes(value, rows, previous),
            }
        })
        .collect();
    Ok((rows as u64, results))
}

/// What each tripped fail condition among `checks` says: its name and the figures that failed
/// it (`previous`: the rows of the partition before, for `row_count_change`).
pub(super) fn tripped(checks: &[CheckResult], previous: Option<f64>) -> Vec<String> {
    checks
        .iter()
        .filter(|c| c.kind == CheckKind::FailCondition && !c.passed)
        .map(|c| match c.check_type.as_str() {
            "not_empty" => format!("{} (no rows)", c.name),
            "row_count_change" => format!(
                "{} ({} rows against {} before, more than ±{})",
                c.name,
                c.value,
                previous.unwrap_or(0.0),
                c.threshold
            ),
            _ => format!(
                "{} ({}/{} = {:.4} < {})",
                c.name,
                c.value,
                c.rows,
                if c.rows == 0 {
                    0.0
                } else {
                    c.value / c.rows as f64
                },
                c.threshold
            ),
        })
        .collect()
}

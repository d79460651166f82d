//! `mart-build test`: unit tests of marts. Next to `marts/<dataset>/<name>.sql`, the file
//! `<name>.test.yaml` lists cases: rows for each table the mart reads, a logical date, and the
//! rows the mart must return.
//!
//! ```yaml
//! - name: paid and shipped orders count as revenue
//!   ds: 2024-05-01
//!   given:
//!     shop_raw.orders:
//!       columns: {created_at: TIMESTAMP, total: NUMERIC}   # types not clear from the values
//!       rows:
//!         - {id: 1, status: paid, total: "10.50", currency: EUR, created_at: "2024-05-01 10:00:00"}
//!   expect:
//!     - {day: 2024-05-01, currency: EUR, orders: 1, revenue: 10.5}
//! ```
//!
//! Each input becomes a table in a scratch dataset (rows go in with insertAll, never into SQL
//! text), the mart's SELECT runs with its references pointed at them, and the result is
//! compared with `expect`: the same number of rows, in any order unless `ordered: true`, each
//! matching on the columns it lists. Numbers compare as numbers, times as instants.

use crate::{Error, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::bigquery::BigQuery;
use chrono::{DateTime, NaiveDate, NaiveDateTime};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::marts::dag::Dag;
use crate::marts::mart::{Mart, TableName};
use crate::marts::params::mart_params;
use crate::marts::render::rewrite;

/// One case of a mart's unit tests.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    /// The logical date (`@ds`).
    pub ds: NaiveDate,
    /// Rows of every table the mart reads, by `dataset.table`.
    pub given: BTreeMap<String, Given>,
    /// The rows the mart must return (only the columns listed are compared).
    pub expect: Vec<BTreeMap<String, serde_yaml::Value>>,
    /// Compare rows in order (for marts with ORDER BY).
    #[serde(default)]
    pub ordered: bool,
}

/// An input table of a case.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Given {
    /// BigQuery types of columns whose type the values do not show (TIMESTAMP, NUMERIC, DATE,
    /// JSON, ...); the others are INT64, FLOAT64, BOOL or STRING as their values are.
    #[serde(default)]
    pub columns: BTreeMap<String, String>,
    #[serde(default)]
    pub rows: Vec<BTreeMap<String, serde_yaml::Value>>,
}

/// The fixture file of a mart.
pub fn fixture_file(m: &Mart) -> PathBuf {
    m.file.with_extension("test.yaml")
}

/// Reads a fixture file; errors name the file.
pub fn load(file: &Path) -> Result<Vec<Case>> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| Error::config(format!("{}: cannot read: {e}", file.display())))?;
    serde_yaml::from_str(&text).map_err(|e| Error::config(format!("{}: {e}", file.display())))
}

/// The BigQuery schema of a given table: declared types, else what the values are.
pub fn schema(table: &str, g: &Given) -> Result<Value> {
    let mut names: Vec<&String> = g.columns.keys().collect();
    for r in &g.rows {
        names.extend(r.keys());
    }
    names.sort();
    names.dedup();
    let mut fields = vec![];
    for name in names {
        let ty = match g.columns.get(name) {
            Some(t) => t.trim().to_string(),
            None => {
                let value = g
                    .rows
                    .iter()
                    .filter_map(|r| r.get(name))
                    .find(|v| !v.is_null());
                match value {
                    Some(serde_yaml::Value::Bool(_)) => "BOOL".into(),
                    Some(serde_yaml::Value::Number(n)) if n.is_i64() || n.is_u64() => {
                        "INT64".into()
                    }
                    Some(serde_yaml::Value::Number(_)) => "FLOAT64".into(),
                    Some(serde_yaml::Value::String(_)) => "STRING".into(),
                    _ => {
                        return Err(Error::config(format!(
                            "{table}.{name}: no value shows its type; give it under `columns`"
                        )))
                    }
                }
            }
        };
        let field = field_of(name, &ty).ok_or_else(|| {
            Error::config(format!(
                "{table}.{name}: type `{ty}` is not a BigQuery type (STRING, ..., ARRAY<T>, STRUCT<name T, ...>)"
            ))
        })?;
        fields.push(field);
    }
    Ok(Value::Array(fields))
}

/// A REST schema field of a type as SQL writes it: `TIMESTAMP`, `ARRAY<STRING>`,
/// `ARRAY<STRUCT<key STRING, value STRING>>` (the shape of INFORMATION_SCHEMA.JOBS' labels).
fn field_of(name: &str, ty: &str) -> Option<Value> {
    let ty = ty.trim();
    let upper = ty.to_ascii_uppercase();
    if let Some(inner) = upper
        .strip_prefix("ARRAY<")
        .and_then(|r| r.strip_suffix('>'))
    {
        let mut f = field_of(name, &ty[6..6 + inner.len()])?;
        if f["mode"] == "REPEATED" {
            return None;
        }
        f["mode"] = json!("REPEATED");
        return Some(f);
    }
    if let Some(inner) = upper
        .strip_prefix("STRUCT<")
        .and_then(|r| r.strip_suffix('>'))
    {
        let inner = &ty[7..7 + inner.len()];
        let mut fields = vec![];
        let (mut depth, mut start) = (0, 0);
        let mut parts = vec![];
        for (i, c) in inner.char_indices() {
            match c {
                '<' => depth += 1,
                '>' => depth -= 1,
                ',' if depth == 0 => {
                    parts.push(&inner[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        parts.push(&inner[start..]);
        for part in parts {
            let (n, t) = part.trim().split_once(char::is_whitespace)?;
            fields.push(field_of(n, t)?);
        }
        return Some(json!({"name": name, "type": "RECORD", "mode": "NULLABLE", "fields": fields}));
    }
    let ok = upper.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !upper.is_empty();
    ok.then(|| json!({"name": name, "type": upper, "mode": "NULLABLE"}))
}

/// A point in time from text or seconds since the epoch, for comparing timestamps however
/// they are written.
fn instant(s: &str) -> Option<f64> {
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(d.timestamp_micros() as f64 / 1e6);
    }
    for f in ["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%.f %Z"] {
        if let Ok(d) = DateTime::parse_from_str(s, f) {
            return Some(d.timestamp_micros() as f64 / 1e6);
        }
    }
    for f in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(d) = NaiveDateTime::parse_from_str(s, f) {
            return Some(d.and_utc().timestamp_micros() as f64 / 1e6);
        }
    }
    None
}

/// Equal numbers, up to float rounding.
fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1.0)
}

/// Whether a cell of the result (as the REST API gives it) is the expected YAML value.
pub fn matches(expected: &serde_yaml::Value, actual: &Value) -> bool {
    use serde_yaml::Value as Y;
    let text = match actual {
        Value::Null => return expected.is_null(),
        Value::String(s) => s.as_str(),
        // REPEATED and RECORD cells: compare their JSON.
        other => return serde_json::to_value(expected).ok().as_ref() == Some(other),
    };
    match expected {
        Y::Null => false,
        Y::Bool(b) => text == b.to_string(),
        Y::Number(n) => match (n.as_f64(), text.parse::<f64>()) {
            (Some(e), Ok(a)) => close(e, a),
            _ => false,
        },
        Y::String(s) => {
            if s == text {
                return true;
            }
            if let (Ok(e), Ok(a)) = (s.parse::<f64>(), text.parse::<f64>()) {
                return close(e, a);
            }
            // The same instant, to the microsecond.
            match (
                instant(s),
                instant(text).or_else(|| text.parse::<f64>().ok()),
            ) {
                (Some(e), Some(a)) => (e - a).abs() < 5e-7,
                _ => false,
            }
        }
        _ => false,
    }
}

fn row_text(row: &BTreeMap<String, serde_yaml::Value>) -> String {
    serde_json::to_string(row).unwrap_or_default()
}

/// Compares a result with the expected rows; None when they agree, else what differs.
pub fn compare(
    columns: &[String],
    rows: &[Vec<Value>],
    expect: &[BTreeMap<String, serde_yaml::Value>],
    ordered: bool,
) -> Option<String> {
    let cell = |row: &Vec<Value>, c: &str| {
        columns
            .iter()
            .position(|n| n == c)
            .and_then(|i| row.get(i).cloned())
    };
    for e in expect {
        if let Some(c) = e.keys().find(|c| !columns.contains(c)) {
            return Some(format!(
                "expected column `{c}`, but the mart returns only {}",
                columns.join(", ")
            ));
        }
    }
    let row_matches = |e: &BTreeMap<String, serde_yaml::Value>, row: &Vec<Value>| {
        e.iter()
            .all(|(c, v)| cell(row, c).is_some_and(|a| matches(v, &a)))
    };
    let shown = |row: &Vec<Value>| {
        let m: serde_json::Map<String, Value> =
            columns.iter().cloned().zip(row.iter().cloned()).collect();
        Value::Object(m).to_string()
    };
    let mut problems = vec![];
    if rows.len() != expect.len() {
        problems.push(format!(
            "expected {} rows, got {}",
            expect.len(),
            rows.len()
        ));
    }
    let mut used = vec![false; rows.len()];
    for (i, e) in expect.iter().enumerate() {
        let found = if ordered {
            (i < rows.len() && row_matches(e, &rows[i])).then_some(i)
        } else {
            (0..rows.len()).find(|j| !used[*j] && row_matches(e, &rows[*j]))
        };
        match found {
            Some(j) => used[j] = true,
            None => problems.push(format!("  missing  {}", row_text(e))),
        }
    }
    for (row, _) in rows.iter().zip(&used).filter(|(_, used)| !**used) {
        problems.push(format!("  extra    {}", shown(row)));
    }
    (!problems.is_empty()).then(|| problems.join("\n"))
}

/// The outcome of one case.
#[derive(Debug, Clone)]
pub struct CaseResult {
    pub mart: String,
    pub case: String,
    /// None when the case passed; else what went wrong.
    pub failure: Option<String>,
}

/// Runs every case of the selected marts in a scratch dataset of `bq`'s project, which is
/// deleted afterwards. Marts without a fixture file are listed as such.
pub async fn run(
    bq: &BigQuery,
    dag: &Dag,
    selected: &[String],
) -> Result<(Vec<CaseResult>, Vec<String>)> {
    let scratch = format!(
        "mart_test_{}",
        uuid::Uuid::new_v4().simple().to_string()[..8].to_owned()
    );
    let mut results = vec![];
    let mut untested = vec![];
    let mut todo = vec![];
    for id in selected {
        let m = &dag.marts[id];
        let file = fixture_file(m);
        if !file.exists() {
            untested.push(id.clone());
            continue;
        }
        todo.push((m, load(&file)?));
    }
    if todo.is_empty() {
        return Ok((results, untested));
    }
    bq.ensure_dataset(&scratch, Some(std::time::Duration::from_secs(3600)))
        .await?;
    for (m, cases) in todo {
        for (n, case) in cases.iter().enumerate() {
            let failure = match run_case(bq, &scratch, m, n, case).await {
                Ok(diff) => diff,
                Err(e) => Some(e.into_message()),
            };
            results.push(CaseResult {
                mart: m.id.short(),
                case: case.name.clone(),
                failure,
            });
        }
    }
    if let Err(e) = bq.delete_dataset(&scratch).await {
        tracing::warn!(error = %e, dataset = %scratch, "scratch dataset left behind (it expires in an hour)");
    }
    Ok((results, untested))
}

/// Runs one case: `None` when the mart's rows are the expected ones, else what differs; an
/// error when the case could not run.
async fn run_case(
    bq: &BigQuery,
    scratch: &str,
    m: &Mart,
    n: usize,
    case: &Case,
) -> Result<Option<String>> {
    let refs: Vec<String> = m.references.iter().map(|r| r.name.to_string()).collect();
    if let Some(missing) = refs.iter().find(|r| !case.given.contains_key(*r)) {
        return Err(Error::config(format!(
            "no rows given for {missing} (give `rows: []` and its `columns` for an empty table)"
        )));
    }
    if let Some(extra) = case.given.keys().find(|g| !refs.contains(g)) {
        return Err(Error::config(format!(
            "rows given for {extra}, which the mart does not read (it reads {})",
            refs.join(", ")
        )));
    }
    let table_of = |name: &TableName| {
        format!(
            "{}__{}__{n}__{}",
            m.id.dataset,
            m.id.table,
            name.to_string().replace(['.', '-'], "_")
        )
    };
    for r in &m.references {
        let g = &case.given[&r.name.to_string()];
        let table = table_of(&r.name);
        let fields = schema(&r.name.to_string(), g)?;
        bq.delete_table(scratch, &table).await?;
        bq.create_table(scratch, &table, json!({"schema": {"fields": fields}}))
            .await?;
        if g.rows.is_empty() {
            continue;
        }
        let rows: Vec<(String, Value)> = g
            .rows
            .iter()
            .enumerate()
            .map(|(i, r)| {
                (
                    i.to_string(),
                    serde_json::to_value(r).unwrap_or(Value::Null),
                )
            })
            .collect();
        bq.insert_all(scratch, &table, &rows)
            .await
            .map_err(|e| e.within(&r.name.to_string()))?;
    }
    let project = bq.project().to_string();
    let sql = rewrite(m, |name| TableName {
        project: Some(project.clone()),
        dataset: scratch.to_string(),
        table: table_of(name),
    });
    let out = bq
        .query(&sql, &mart_params(m, case.ds))
        .await
        .map_err(|e| e.within("the mart's SELECT failed"))?;
    Ok(compare(&out.columns, &out.rows, &case.expect, case.ordered))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn y(s: &str) -> serde_yaml::Value {
        serde_yaml::from_str(s).unwrap()
    }

    #[test]
    fn cells_match_by_meaning() {
        assert!(matches(&y("10.5"), &json!("10.50")));
        assert!(matches(&y("\"10.50\""), &json!("10.5")));
        assert!(matches(&y("3"), &json!("3")));
        assert!(!matches(&y("3"), &json!("4")));
        assert!(matches(&y("true"), &json!("true")));
        assert!(matches(&y("null"), &Value::Null));
        assert!(!matches(&y("0"), &Value::Null));
        assert!(matches(&y("2024-05-01"), &json!("2024-05-01")));
        // Timestamps as text or as epoch seconds.
        assert!(matches(
            &y("\"2024-05-01 10:00:00\""),
            &json!("1714557600.0")
        ));
        assert!(matches(
            &y("\"2024-05-01T10:00:00Z\""),
            &json!("2024-05-01 10:00:00+00")
        ));
        assert!(!matches(
            &y("\"2024-05-01 10:00:01\""),
            &json!("1714557600.0")
        ));
        assert!(matches(&y("[a, b]"), &json!(["a", "b"])));
    }

    #[test]
    fn results_compare_as_multisets_on_listed_columns() {
        let cols = vec!["day".to_string(), "n".to_string()];
        let rows = vec![
            vec![json!("2024-05-02"), json!("2")],
            vec![json!("2024-05-01"), json!("1")],
        ];
        let e: Vec<BTreeMap<String, serde_yaml::Value>> =
            serde_yaml::from_str("[{day: 2024-05-01, n: 1}, {n: 2}]").unwrap();
        assert_eq!(compare(&cols, &rows, &e, false), None);
        let diff = compare(&cols, &rows, &e, true).unwrap();
        assert!(diff.contains("missing"), "{diff}");
        let e: Vec<BTreeMap<String, serde_yaml::Value>> = serde_yaml::from_str("[{n: 1}]").unwrap();
        let diff = compare(&cols, &rows, &e, false).unwrap();
        assert!(diff.contains("expected 1 rows, got 2"), "{diff}");
        assert!(
            diff.contains("extra    {\"day\":\"2024-05-02\",\"n\":\"2\"}"),
            "{diff}"
        );
        let e: Vec<BTreeMap<String, serde_yaml::Value>> =
            serde_yaml::from_str("[{nope: 1}, {n: 2}]").unwrap();
        assert!(compare(&cols, &rows, &e, false)
            .unwrap()
            .contains("expected column `nope`"));
    }

    #[test]
    fn schemas_come_from_declared_types_then_values() {
        let g: Given = serde_yaml::from_str(
            "{columns: {at: timestamp}, rows: [{id: 1, x: 1.5, ok: true, s: a, at: '2024-05-01 00:00:00', n: null}, {n: 2}]}",
        )
        .unwrap();
        let s = schema("d.t", &g).unwrap();
        let types: Vec<(String, String)> = s
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["name"].as_str().unwrap().into(),
                    f["type"].as_str().unwrap().into(),
                )
            })
            .collect();
        let want = [
            ("at", "TIMESTAMP"),
            ("id", "INT64"),
            ("n", "INT64"),
            ("ok", "BOOL"),
            ("s", "STRING"),
            ("x", "FLOAT64"),
        ];
        assert_eq!(types, want.map(|(a, b)| (a.to_string(), b.to_string())));
        let f = field_of("labels", "array<struct<key STRING, value STRING>>").unwrap();
        assert_eq!(
            f,
            json!({"name": "labels", "type": "RECORD", "mode": "REPEATED", "fields": [
                {"name": "key", "type": "STRING", "mode": "NULLABLE"},
                {"name": "value", "type": "STRING", "mode": "NULLABLE"}
            ]})
        );
        assert_eq!(field_of("a", "ARRAY<INT64>").unwrap()["mode"], "REPEATED");
        assert!(field_of("a", "ARRAY<ARRAY<INT64>>").is_none());
        assert!(field_of("a", "STRUCT<x>").is_none());
        let g: Given = serde_yaml::from_str("{rows: [{n: null}]}").unwrap();
        assert!(schema("d.t", &g)
            .unwrap_err()
            .into_message()
            .contains("d.t.n: no value shows its type"));
    }
}

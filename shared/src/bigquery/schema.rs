//! Table schemas and job ids.

use serde_json::{json, Value};

use crate::types::ColumnMapping;

/// REST `fields` for mapped columns: REPEATED arrays, REQUIRED for NOT NULL columns.
pub fn fields(columns: &[ColumnMapping]) -> Value {
    Value::Array(
        columns
            .iter()
            .map(|c| {
                let mode = if c.repeated {
                    "REPEATED"
                } else if c.nullable {
                    "NULLABLE"
                } else {
                    "REQUIRED"
                };
                json!({"name": c.name, "type": c.bq_type.api_name(), "mode": mode})
            })
            .collect(),
    )
}

/// A BigQuery job id from parts: letters, digits, `_` and `-` only, at most 1,024 characters.
/// The same parts always give the same id, so a retried or repeated job is found, not rerun.
pub fn job_id(parts: &[&str]) -> String {
    let mut id: String = parts
        .join("_")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    id.truncate(1024);
    id
}

/// The part of a run id that goes into job ids and staging table names: its last eight
/// letters and digits, the random end of every run id format (a uuid, or cdc-sync's
/// `<time>-<random>`), so each run's jobs and staging tables are its own. (The first eight were
/// the date of a cdc-sync run id: a rerun on the same day found the killed run's load job by
/// its id and loaded nothing.)
pub fn run_tag(run_id: &str) -> String {
    let alnum: Vec<char> = run_id.chars().filter(char::is_ascii_alphanumeric).collect();
    alnum[alnum.len().saturating_sub(8)..].iter().collect()
}

/// The columns of `new` that `old` lacks, and fields whose type or mode changed.
pub fn diff(old: &Value, new: &Value) -> (Vec<Value>, Vec<String>) {
    let empty = vec![];
    let old = old.as_array().unwrap_or(&empty);
    let mut added = vec![];
    let mut changed = vec![];
    for f in new.as_array().unwrap_or(&empty) {
        let name = f["name"].as_str().unwrap_or("");
        match old.iter().find(|o| {
            o["name"]
                .as_str()
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        }) {
            None => {
                let mut f = f.clone();
                if f["mode"] == "REQUIRED" {
                    // Existing rows have no value: a new column can only be NULLABLE.
                    f["mode"] = json!("NULLABLE");
                }
                added.push(f)
            }
            Some(o)
                if o["type"] != f["type"]
                    || (o["mode"] == "REPEATED") != (f["mode"] == "REPEATED") =>
            {
                changed.push(format!(
                    "{name}: {} {} → {} {}",
                    o["mode"].as_str().unwrap_or("NULLABLE"),
                    o["type"].as_str().unwrap_or("?"),
                    f["mode"].as_str().unwrap_or("NULLABLE"),
                    f["type"].as_str().unwrap_or("?")
                ))
            }
            Some(_) => {}
        }
    }
    (added, changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{map_column, MappingOptions, PgType};

    #[test]
    fn fields_carry_mode() {
        let o = MappingOptions::default();
        let cols = vec![
            map_column("t", "id", &PgType::scalar("int8"), true, o).unwrap(),
            map_column(
                "t",
                "tags",
                &PgType::array_of(PgType::scalar("text")),
                false,
                o,
            )
            .unwrap(),
            map_column("t", "doc", &PgType::scalar("jsonb"), false, o).unwrap(),
        ];
        assert_eq!(
            fields(&cols),
            json!([
                {"name": "id", "type": "INTEGER", "mode": "REQUIRED"},
                {"name": "tags", "type": "STRING", "mode": "REPEATED"},
                {"name": "doc", "type": "JSON", "mode": "NULLABLE"},
            ])
        );
    }

    #[test]
    fn job_ids_are_stable_and_clean() {
        assert_eq!(
            job_id(&["sluice", "shop.orders", "2024-05-01"]),
            "sluice_shop_orders_2024-05-01"
        );
        assert_eq!(job_id(&["a"; 2000]).len(), 1024);
    }

    #[test]
    fn run_tags_differ_between_runs_of_the_same_second() {
        let a = run_tag("20261202T125638-14c42fda");
        let b = run_tag("20261202T125638-5a32c57d");
        assert_eq!((a.as_str(), b.as_str()), ("14c42fda", "5a32c57d"));
        assert_eq!(run_tag("936da01f-9abd-4d9d-80c7-02af85c822a8"), "85c822a8");
        assert_eq!(run_tag("x"), "x");
    }

    #[test]
    fn diff_finds_added_and_changed() {
        let old = json!([{"name": "id", "type": "INTEGER", "mode": "REQUIRED"}, {"name": "x", "type": "STRING"}]);
        let new = json!([
            {"name": "id", "type": "INTEGER", "mode": "REQUIRED"},
            {"name": "x", "type": "INTEGER", "mode": "NULLABLE"},
            {"name": "y", "type": "DATE", "mode": "REQUIRED"}
        ]);
        let (added, changed) = diff(&old, &new);
        assert_eq!(
            added,
            vec![json!({"name": "y", "type": "DATE", "mode": "NULLABLE"})]
        );
        assert_eq!(
            changed,
            vec!["x: NULLABLE STRING → NULLABLE INTEGER".to_string()]
        );
    }
}

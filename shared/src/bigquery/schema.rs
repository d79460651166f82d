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

/// The part of a run id that goes into job ids and staging table names: its first eight
/// letters and digits, so each run's jobs are its own.
pub fn run_tag(run_id: &str) -> String {
    run_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(8)
        .collect()
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

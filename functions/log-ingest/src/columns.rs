//! JSON Schema → BigQuery columns: each property mapped as the table in `schema`'s header
//! says (`x-bigquery` hints included), and how an existing table meets a changed schema.

use serde_json::Value;
use sluice::bigquery::schema::{self, Field, FieldType, Mode};
use sluice::types::BqType;
use sluice::{Error, Result};

/// A type the `x-bigquery.type` hint may name: those log-ingest can write from JSON.
fn hinted_type(name: &str) -> Option<BqType> {
    BqType::from_api(name).filter(|t| !matches!(t, BqType::Datetime | BqType::Time))
}

/// The columns of an object schema's `properties`, in document order.
pub(crate) fn record_columns(schema: &Value, path: &str) -> Result<Vec<Field>> {
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return Ok(vec![]);
    };
    let mut out = Vec::with_capacity(props.len());
    for (name, prop) in props {
        let here = format!("{path}/{name}");
        if !valid_name(name) {
            return Err(Error::config(format!(
                "property `{here}`: `{name}` is not a valid BigQuery column name (letters, digits, underscores; not starting with a digit)"
            )));
        }
        let (ty, repeated) = property_type(prop, &here)?;
        let mode = if repeated {
            Mode::Repeated
        } else {
            Mode::Nullable
        };
        let mut f = match ty {
            FieldType::Record(sub) => Field::record(name.clone(), mode, sub),
            FieldType::Scalar(t) => Field::new(name.clone(), t, mode),
            FieldType::Other(_) => Field::new(name.clone(), BqType::Json, mode),
        };
        if let Some(d) = prop.get("description").and_then(Value::as_str) {
            f = f.describe(d);
        }
        out.push(f);
    }
    Ok(out)
}

/// The one non-null JSON type a property declares, if it declares exactly one.
fn single_type(prop: &Value) -> Option<&str> {
    match prop.get("type")? {
        Value::String(t) => Some(t),
        Value::Array(ts) => {
            let non_null: Vec<&str> = ts
                .iter()
                .filter_map(Value::as_str)
                .filter(|t| *t != "null")
                .collect();
            (non_null.len() == 1).then(|| non_null[0])
        }
        _ => None,
    }
}

fn property_type(prop: &Value, here: &str) -> Result<(FieldType, bool)> {
    const JSON: FieldType = FieldType::Scalar(BqType::Json);
    if let Some(hint) = prop.pointer("/x-bigquery/type").and_then(Value::as_str) {
        let ty = FieldType::Scalar(hinted_type(hint).ok_or_else(|| {
            Error::config(format!(
                "property `{here}`: x-bigquery.type `{hint}` is not a type log-ingest writes"
            ))
        })?);
        let repeated = single_type(prop) == Some("array");
        return Ok((ty, repeated));
    }
    if single_type(prop) == Some("array") {
        let items = prop.get("items").unwrap_or(&Value::Null);
        if single_type(items) == Some("array") || items.is_null() {
            return Ok((JSON, false));
        }
        let (ty, _) = property_type(items, &format!("{here}/items"))?;
        // BigQuery arrays hold no NULLs and no nested arrays: those stay JSON.
        let nullable_items = items["type"]
            .as_array()
            .is_some_and(|a| a.iter().any(|t| t == "null"));
        if ty == JSON || nullable_items {
            return Ok((JSON, false));
        }
        return Ok((ty, true));
    }
    let scalar = match single_type(prop) {
        Some("string") => match (
            prop.get("format").and_then(Value::as_str),
            prop.get("contentEncoding").and_then(Value::as_str),
        ) {
            (_, Some("base64")) => BqType::Bytes,
            (Some("date-time"), _) => BqType::Timestamp,
            (Some("date"), _) => BqType::Date,
            _ => BqType::String,
        },
        Some("integer") => BqType::Int64,
        Some("number") => BqType::Float64,
        Some("boolean") => BqType::Bool,
        Some("object") if prop.get("properties").is_some() => {
            let sub = record_columns(prop, here)?;
            if sub.is_empty() {
                return Ok((JSON, false));
            }
            return Ok((FieldType::Record(sub), false));
        }
        _ => BqType::Json,
    };
    Ok((FieldType::Scalar(scalar), false))
}

/// How an existing table's schema meets the derived one: the new full field list when it
/// gains columns, or the first incompatible property, named by its JSON pointer.
pub fn evolve(existing: &[Field], derived: &[Field]) -> Result<Option<Vec<Field>>> {
    let e = schema::evolve(existing, derived, false);
    if let Some(bad) = e.incompatible.first() {
        return Err(Error::config(format!(
            "property `/{}` changed from {} to {}, which BigQuery cannot alter in place; keep the old type, or give the event a new table (x-bigquery.table)",
            bad.path.join("/"),
            bad.from.shape(),
            bad.to.shape()
        )));
    }
    Ok(e.changes().then_some(e.fields))
}

/// A name BigQuery takes for a table or column, that sluice also accepts for an event type.
pub(crate) fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 300
}

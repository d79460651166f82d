//! BigQuery table schemas as types, and job ids.
//!
//! A `Field` is one column: its name, type (a scalar, a RECORD of fields, or a type sluice does
//! not write but keeps when it patches a schema), mode and description. Fields travel in the
//! REST form (`{"name", "type", "mode", "fields", "description"}`); properties sluice does not
//! know (policy tags, collation, …) are kept as they came. `evolve` is the one schema evolution
//! of every worker: add columns, widen where BigQuery allows and the caller wants it, and name
//! the rest.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, ErrorKind, Result};
use crate::types::{BqType, ColumnMapping};

/// What a field holds.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldType {
    Scalar(BqType),
    /// A RECORD (STRUCT) of fields.
    Record(Vec<Field>),
    /// A type sluice never writes (GEOGRAPHY, INTERVAL, RANGE…), kept as BigQuery named it.
    Other(String),
}

impl FieldType {
    /// The name in table schemas of the REST API.
    pub fn api_name(&self) -> &str {
        match self {
            FieldType::Scalar(t) => t.api_name(),
            FieldType::Record(_) => "RECORD",
            FieldType::Other(t) => t,
        }
    }

    fn same_kind(&self, other: &FieldType) -> bool {
        match (self, other) {
            (FieldType::Scalar(a), FieldType::Scalar(b)) => a == b,
            (FieldType::Record(_), FieldType::Record(_)) => true,
            (FieldType::Other(a), FieldType::Other(b)) => a.eq_ignore_ascii_case(b),
            _ => false,
        }
    }
}

/// A field's mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Nullable,
    Required,
    Repeated,
}

impl Mode {
    pub fn api_name(self) -> &'static str {
        match self {
            Mode::Nullable => "NULLABLE",
            Mode::Required => "REQUIRED",
            Mode::Repeated => "REPEATED",
        }
    }

    fn parse(s: &str) -> Mode {
        match s {
            "REQUIRED" => Mode::Required,
            "REPEATED" => Mode::Repeated,
            _ => Mode::Nullable,
        }
    }
}

/// One column of a table schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "Value", try_from = "Value")]
pub struct Field {
    pub name: String,
    pub ty: FieldType,
    pub mode: Mode,
    pub description: Option<String>,
    /// REST properties sluice does not model, kept so a patched schema loses nothing.
    pub extra: Map<String, Value>,
}

impl Field {
    pub fn new(name: impl Into<String>, ty: BqType, mode: Mode) -> Field {
        Field::of(name, FieldType::Scalar(ty), mode)
    }

    pub fn nullable(name: impl Into<String>, ty: BqType) -> Field {
        Field::new(name, ty, Mode::Nullable)
    }

    pub fn required(name: impl Into<String>, ty: BqType) -> Field {
        Field::new(name, ty, Mode::Required)
    }

    pub fn record(name: impl Into<String>, mode: Mode, fields: Vec<Field>) -> Field {
        Field::of(name, FieldType::Record(fields), mode)
    }

    fn of(name: impl Into<String>, ty: FieldType, mode: Mode) -> Field {
        Field {
            name: name.into(),
            ty,
            mode,
            description: None,
            extra: Map::new(),
        }
    }

    /// The field with a description.
    pub fn describe(mut self, description: impl Into<String>) -> Field {
        self.description = Some(description.into());
        self
    }

    /// The field as a new column of an existing table: its earlier rows hold NULL.
    pub fn as_added(mut self) -> Field {
        if self.mode == Mode::Required {
            self.mode = Mode::Nullable;
        }
        self
    }

    /// `REPEATED STRING`, `NULLABLE RECORD`: how messages name a field's shape.
    pub fn shape(&self) -> String {
        format!("{} {}", self.mode.api_name(), self.ty.api_name())
    }

    /// The scalar type, if the field has one.
    pub fn scalar(&self) -> Option<BqType> {
        match self.ty {
            FieldType::Scalar(t) => Some(t),
            _ => None,
        }
    }

    /// The field in the REST form.
    pub fn to_json(&self) -> Value {
        let mut m = self.extra.clone();
        m.insert("name".into(), Value::String(self.name.clone()));
        m.insert("type".into(), Value::String(self.ty.api_name().to_string()));
        m.insert("mode".into(), Value::String(self.mode.api_name().into()));
        if let FieldType::Record(fields) = &self.ty {
            m.insert("fields".into(), to_json(fields));
        }
        if let Some(d) = &self.description {
            m.insert("description".into(), Value::String(d.clone()));
        }
        Value::Object(m)
    }

    /// A field from the REST form.
    pub fn from_json(v: &Value) -> Result<Field> {
        let Value::Object(m) = v else {
            return Err(malformed(format!("a schema field is not an object: {v}")));
        };
        let mut extra = m.clone();
        let text = |extra: &mut Map<String, Value>, k: &str| match extra.remove(k) {
            Some(Value::String(s)) => Some(s),
            _ => None,
        };
        let name =
            text(&mut extra, "name").ok_or_else(|| malformed("a schema field has no name"))?;
        let ty = text(&mut extra, "type").unwrap_or_default();
        let mode = Mode::parse(&text(&mut extra, "mode").unwrap_or_default());
        let description = text(&mut extra, "description");
        let nested = extra.remove("fields");
        let ty = match ty.to_ascii_uppercase().as_str() {
            "RECORD" | "STRUCT" => {
                FieldType::Record(from_json(nested.as_ref().unwrap_or(&Value::Null))?)
            }
            t => BqType::from_api(t)
                .map(FieldType::Scalar)
                .unwrap_or(FieldType::Other(ty)),
        };
        Ok(Field {
            name,
            ty,
            mode,
            description,
            extra,
        })
    }
}

impl From<Field> for Value {
    fn from(f: Field) -> Value {
        f.to_json()
    }
}

impl TryFrom<Value> for Field {
    type Error = Error;

    fn try_from(v: Value) -> Result<Field> {
        Field::from_json(&v)
    }
}

/// Fields in the REST form (`schema.fields` of a table resource).
pub fn to_json(fields: &[Field]) -> Value {
    Value::Array(fields.iter().map(Field::to_json).collect())
}

/// Fields from the REST form; a missing list is no fields.
pub fn from_json(v: &Value) -> Result<Vec<Field>> {
    match v {
        Value::Null => Ok(vec![]),
        Value::Array(a) => a.iter().map(Field::from_json).collect(),
        other => Err(malformed(format!(
            "a table schema is not a list of fields: {other}"
        ))),
    }
}

/// A schema in the REST form that is not one (a bug or an API change: never retried).
fn malformed(message: impl Into<String>) -> Error {
    Error::bigquery("reading a table schema", ErrorKind::Permanent, message)
}

/// Fields of mapped columns: REPEATED arrays, REQUIRED for NOT NULL columns.
pub fn fields(columns: &[ColumnMapping]) -> Vec<Field> {
    columns
        .iter()
        .map(|c| {
            let mode = if c.repeated {
                Mode::Repeated
            } else if c.nullable {
                Mode::Nullable
            } else {
                Mode::Required
            };
            Field::new(&c.name, c.bq_type, mode)
        })
        .collect()
}

/// A column whose type changed in place, which BigQuery allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Widening {
    pub column: String,
    pub from: BqType,
    pub to: BqType,
}

/// A column whose type or mode changed in a way BigQuery cannot alter in place.
#[derive(Debug, Clone, PartialEq)]
pub struct Incompatible {
    /// The column, and the record fields down to the changed one.
    pub path: Vec<String>,
    pub from: Field,
    pub to: Field,
}

impl std::fmt::Display for Incompatible {
    /// `x: NULLABLE STRING → NULLABLE INTEGER`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} → {}",
            self.path.join("."),
            self.from.shape(),
            self.to.shape()
        )
    }
}

/// How an existing table's schema meets the one wanted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evolution {
    /// The schema to patch the table to: the existing fields (widened where asked), then the
    /// new ones, which hold NULL for earlier rows.
    pub fields: Vec<Field>,
    /// New columns (`a`, or `record.field` inside a record).
    pub added: Vec<String>,
    /// Top-level columns whose type widens in place (only when widening is asked for).
    pub widened: Vec<Widening>,
    /// Changes BigQuery cannot make in place: the caller refuses them, naming each.
    pub incompatible: Vec<Incompatible>,
    /// Existing top-level columns the wanted schema no longer has (they stay).
    pub missing: Vec<Field>,
}

impl Evolution {
    /// Whether the table's schema must be patched.
    pub fn changes(&self) -> bool {
        !self.added.is_empty() || !self.widened.is_empty()
    }
}

/// Brings `existing` towards `wanted`: the one schema evolution of every worker. Names compare
/// without case, as BigQuery's do; NULLABLE and REQUIRED count as the same shape.
pub fn evolve(existing: &[Field], wanted: &[Field], widen: bool) -> Evolution {
    let mut e = Evolution::default();
    let mut fields = existing.to_vec();
    merge(&mut fields, &[], wanted, widen, &mut e);
    e.fields = fields;
    e.missing = existing
        .iter()
        .filter(|o| !wanted.iter().any(|w| w.name.eq_ignore_ascii_case(&o.name)))
        .cloned()
        .collect();
    e
}

/// Merges `wanted` into `list`, the fields at `path` (top level, or inside a record).
fn merge(list: &mut Vec<Field>, path: &[String], wanted: &[Field], widen: bool, e: &mut Evolution) {
    for w in wanted {
        let mut here = path.to_vec();
        here.push(w.name.clone());
        let Some(i) = list
            .iter()
            .position(|o| o.name.eq_ignore_ascii_case(&w.name))
        else {
            list.push(w.clone().as_added());
            e.added.push(here.join("."));
            continue;
        };
        let repeated = |f: &Field| f.mode == Mode::Repeated;
        let o = &mut list[i];
        if repeated(o) == repeated(w) && o.ty.same_kind(&w.ty) {
            if let (FieldType::Record(nested), FieldType::Record(wanted_nested)) =
                (&mut o.ty, &w.ty)
            {
                merge(nested, &here, wanted_nested, false, e);
            }
            continue;
        }
        match (o.scalar(), w.scalar()) {
            (Some(from), Some(to))
                if widen && path.is_empty() && repeated(o) == repeated(w) && from.widens_to(to) =>
            {
                o.ty = FieldType::Scalar(to);
                e.widened.push(Widening {
                    column: o.name.clone(),
                    from,
                    to,
                });
            }
            _ => e.incompatible.push(Incompatible {
                path: here,
                from: o.clone(),
                to: w.clone(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{map_column, MappingOptions, PgType};
    use serde_json::json;

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
            to_json(&fields(&cols)),
            json!([
                {"name": "id", "type": "INTEGER", "mode": "REQUIRED"},
                {"name": "tags", "type": "STRING", "mode": "REPEATED"},
                {"name": "doc", "type": "JSON", "mode": "NULLABLE"},
            ])
        );
    }

    #[test]
    fn fields_round_trip_the_rest_form_and_keep_what_they_do_not_model() {
        let rest = json!([
            {"name": "id", "type": "INT64", "mode": "REQUIRED", "description": "key"},
            {"name": "geo", "type": "GEOGRAPHY", "policyTags": {"names": ["t"]}},
            {"name": "r", "type": "STRUCT", "mode": "REPEATED", "fields": [{"name": "x", "type": "BOOL"}]},
        ]);
        let f = from_json(&rest).unwrap();
        assert_eq!(f[0], Field::required("id", BqType::Int64).describe("key"));
        assert_eq!(f[1].ty, FieldType::Other("GEOGRAPHY".into()));
        assert_eq!(
            f[2],
            Field::record(
                "r",
                Mode::Repeated,
                vec![Field::nullable("x", BqType::Bool)]
            )
        );
        assert_eq!(
            to_json(&f),
            json!([
                {"name": "id", "type": "INTEGER", "mode": "REQUIRED", "description": "key"},
                {"name": "geo", "type": "GEOGRAPHY", "mode": "NULLABLE", "policyTags": {"names": ["t"]}},
                {"name": "r", "type": "RECORD", "mode": "REPEATED", "fields": [{"name": "x", "type": "BOOLEAN", "mode": "NULLABLE"}]},
            ])
        );
        let back: Vec<Field> = serde_json::from_value(to_json(&f)).unwrap();
        assert_eq!(back, f);
        assert!(from_json(&json!({"name": "x"})).is_err());
    }

    #[test]
    fn evolution_adds_widens_when_asked_and_names_the_rest() {
        let old = vec![
            Field::required("id", BqType::Int64),
            Field::nullable("x", BqType::String),
            Field::nullable("n", BqType::Int64),
            Field::record(
                "r",
                Mode::Nullable,
                vec![Field::nullable("a", BqType::String)],
            ),
            Field::nullable("gone", BqType::Date),
        ];
        let new = vec![
            Field::required("ID", BqType::Int64),
            Field::nullable("x", BqType::Int64),
            Field::nullable("n", BqType::Numeric),
            Field::record(
                "r",
                Mode::Nullable,
                vec![
                    Field::nullable("a", BqType::String),
                    Field::required("b", BqType::Date),
                ],
            ),
            Field::required("y", BqType::Date),
        ];
        let e = evolve(&old, &new, false);
        assert_eq!(e.added, ["r.b", "y"]);
        assert!(e.widened.is_empty());
        let changes: Vec<String> = e.incompatible.iter().map(|i| i.to_string()).collect();
        assert_eq!(
            changes,
            [
                "x: NULLABLE STRING → NULLABLE INTEGER",
                "n: NULLABLE INTEGER → NULLABLE NUMERIC"
            ]
        );
        assert_eq!(e.missing, vec![Field::nullable("gone", BqType::Date)]);
        // New columns hold NULL for earlier rows; the record gained its field in place.
        assert_eq!(e.fields[5], Field::nullable("y", BqType::Date));
        assert_eq!(
            e.fields[3],
            Field::record(
                "r",
                Mode::Nullable,
                vec![
                    Field::nullable("a", BqType::String),
                    Field::nullable("b", BqType::Date)
                ]
            )
        );
        let e = evolve(&old, &new, true);
        assert_eq!(
            e.widened,
            vec![Widening {
                column: "n".into(),
                from: BqType::Int64,
                to: BqType::Numeric
            }]
        );
        assert_eq!(e.fields[2], Field::nullable("n", BqType::Numeric));
        assert_eq!(e.incompatible.len(), 1);
        let same = evolve(&e.fields, &e.fields, false);
        assert!(!same.changes() && same.incompatible.is_empty());
    }
}

//! Event schemas: `schemas/events/<type>.json` (JSON Schema 2020-12) and the BigQuery table
//! each one derives.
//!
//! The mapping, property by property (documented in the README):
//!
//! | JSON Schema | BigQuery column |
//! |---|---|
//! | `string` | STRING |
//! | `string`, `format: date-time` | TIMESTAMP (values normalised to UTC microseconds) |
//! | `string`, `format: date` | DATE |
//! | `string`, `contentEncoding: base64` | BYTES |
//! | `integer` | INT64 |
//! | `number` | FLOAT64 |
//! | `boolean` | BOOL |
//! | `object` with `properties` | RECORD of the mapped properties |
//! | `object` without `properties` | JSON |
//! | `array` whose `items` map to one of the above | REPEATED of it |
//! | anything else (no `type`, several types, `oneOf`/`anyOf`, arrays of arrays) | JSON |
//! | `"type": [T, "null"]` | as T |
//! | `"x-bigquery": {"type": T}` on a property | T (STRING, NUMERIC, BIGNUMERIC, JSON, ...) |
//!
//! Every column is NULLABLE (or REPEATED): `required` is enforced by validation, so a schema
//! can make a property required or optional later without rebuilding the table. Each table
//! also has `_message_id`, `_publish_time`, `_ingested_at`, `_attributes` (JSON) and `_extra`
//! (JSON: top-level properties the schema does not name, when it allows them).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use sluice::bigquery::schema::{self, Field, Mode};
use sluice::types::BqType;
use sluice::{Error, Result};

use crate::columns::{record_columns, valid_name};

/// How an event table is time-partitioned (`x-bigquery.partition_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionType {
    Hour,
    Day,
    Month,
    Year,
}

impl PartitionType {
    fn parse(s: &str) -> Option<PartitionType> {
        Some(match s.to_ascii_uppercase().as_str() {
            "HOUR" => PartitionType::Hour,
            "DAY" => PartitionType::Day,
            "MONTH" => PartitionType::Month,
            "YEAR" => PartitionType::Year,
            _ => return None,
        })
    }

    /// As BigQuery's `timePartitioning.type` names it.
    pub fn as_str(self) -> &'static str {
        match self {
            PartitionType::Hour => "HOUR",
            PartitionType::Day => "DAY",
            PartitionType::Month => "MONTH",
            PartitionType::Year => "YEAR",
        }
    }
}

/// Columns every event table has, after the typed ones.
pub const META_COLUMNS: [(&str, BqType); 5] = [
    ("_message_id", BqType::String),
    ("_publish_time", BqType::Timestamp),
    ("_ingested_at", BqType::Timestamp),
    ("_attributes", BqType::Json),
    ("_extra", BqType::Json),
];

/// A loaded event type: its validator, table and columns.
pub struct EventSchema {
    pub event_type: String,
    pub file: PathBuf,
    pub table: String,
    pub partition_field: String,
    pub partition_type: PartitionType,
    pub clustering: Vec<String>,
    pub description: Option<String>,
    /// The typed columns, from the schema's properties (NULLABLE or REPEATED).
    pub columns: Vec<Field>,
    validator: jsonschema::Validator,
}

impl std::fmt::Debug for EventSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EventSchema({} → {})", self.event_type, self.table)
    }
}

/// Why an event does not fit its schema or its table.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    /// JSON pointer of the first failing value (`/user/id`; empty for the whole event).
    pub pointer: String,
    pub message: String,
}

/// Reads every `<type>.json` in `dir`. Errors name the file and the property.
pub fn load_dir(dir: &Path) -> Result<BTreeMap<String, EventSchema>> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        Error::config(format!(
            "cannot read event schemas in {}: {e}",
            dir.display()
        ))
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(Error::config(format!(
            "no event schemas (<type>.json) in {}",
            dir.display()
        )));
    }
    let mut out = BTreeMap::new();
    let mut tables: BTreeMap<String, String> = BTreeMap::new();
    for path in paths {
        let event_type = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Error::config(format!("cannot read {}: {e}", path.display())))?;
        let doc: Value = serde_json::from_str(&text)
            .map_err(|e| Error::config(format!("{}: not JSON: {e}", path.display())))?;
        let schema = EventSchema::from_json(&event_type, &path, &doc)
            .map_err(|e| Error::config(format!("{}: {e}", path.display())))?;
        if let Some(other) = tables.insert(schema.table.clone(), event_type.clone()) {
            return Err(Error::config(format!(
                "{}: table `{}` is already the table of event type `{other}`",
                path.display(),
                schema.table
            )));
        }
        out.insert(event_type, schema);
    }
    Ok(out)
}

impl EventSchema {
    /// Builds an event type from its schema document.
    pub fn from_json(event_type: &str, file: &Path, doc: &Value) -> Result<EventSchema> {
        if !valid_name(event_type) {
            return Err(Error::config(format!(
                "event type `{event_type}` (the file name) must be letters, digits and underscores"
            )));
        }
        let validator = jsonschema::draft202012::options()
            .should_validate_formats(true)
            .build(doc)
            .map_err(|e| Error::config(format!("not a valid JSON Schema: {e}")))?;
        if doc["type"] != "object" {
            return Err(Error::config(
                "the top level must be `\"type\": \"object\"`",
            ));
        }
        let hints = doc.get("x-bigquery").cloned().unwrap_or(json!({}));
        let hint_str = |k: &str| hints.get(k).and_then(Value::as_str).map(str::to_string);
        let table = sluice::catalog::event_table(event_type, doc);
        if !valid_name(&table) {
            return Err(Error::config(format!(
                "x-bigquery.table `{table}` is not a valid BigQuery table name"
            )));
        }
        let columns = record_columns(doc, "")?;
        for c in &columns {
            if c.name.starts_with("_") && META_COLUMNS.iter().any(|(m, _)| *m == c.name) {
                return Err(Error::config(format!(
                    "property `{}` clashes with a column log-ingest adds",
                    c.name
                )));
            }
        }
        let partition_field = hint_str("partition_field").unwrap_or_else(|| "_publish_time".into());
        let partition_ok = matches!(partition_field.as_str(), "_publish_time" | "_ingested_at")
            || columns.iter().any(|c| {
                c.name == partition_field
                    && c.mode != Mode::Repeated
                    && matches!(c.scalar(), Some(BqType::Timestamp | BqType::Date))
            });
        if !partition_ok {
            return Err(Error::config(format!(
                "x-bigquery.partition_field `{partition_field}` must be a top-level date or date-time property, or _publish_time / _ingested_at"
            )));
        }
        let partition_type = match hint_str("partition_type") {
            None => PartitionType::Day,
            Some(p) => PartitionType::parse(&p).ok_or_else(|| {
                Error::config(format!(
                    "x-bigquery.partition_type `{p}` must be HOUR, DAY, MONTH or YEAR"
                ))
            })?,
        };
        let clustering: Vec<String> = match hints.get("clustering") {
            None => vec![],
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<_>>()
                .ok_or_else(|| {
                    Error::config("x-bigquery.clustering must be a list of property names")
                })?,
            Some(_) => {
                return Err(Error::config(
                    "x-bigquery.clustering must be a list of property names",
                ))
            }
        };
        if clustering.len() > 4 {
            return Err(Error::config(
                "x-bigquery.clustering takes at most 4 properties",
            ));
        }
        for c in &clustering {
            let ok = columns.iter().any(|col| {
                &col.name == c
                    && col.mode != Mode::Repeated
                    && col
                        .scalar()
                        .is_some_and(|t| !matches!(t, BqType::Json | BqType::Float64))
            });
            if !ok {
                return Err(Error::config(format!(
                    "x-bigquery.clustering: `{c}` must be a top-level property of a scalar type other than number"
                )));
            }
        }
        Ok(EventSchema {
            event_type: event_type.to_string(),
            file: file.to_path_buf(),
            table,
            partition_field,
            partition_type,
            clustering,
            description: doc["description"].as_str().map(str::to_string),
            columns,
            validator,
        })
    }

    /// Whether the schema names `property` at the top level.
    pub fn declares(&self, property: &str) -> bool {
        self.columns.iter().any(|c| c.name == property)
    }

    /// The fields of the table: typed columns, then the meta columns.
    pub fn fields(&self) -> Vec<Field> {
        let mut f = self.columns.clone();
        f.extend(META_COLUMNS.iter().map(|(n, t)| Field::nullable(*n, *t)));
        f
    }

    /// The REST table resource to create.
    pub fn table_resource(&self) -> Value {
        let mut r = json!({
            "schema": {"fields": schema::to_json(&self.fields())},
            "timePartitioning": {"type": self.partition_type.as_str(), "field": self.partition_field},
            "description": self.description.clone().unwrap_or_else(|| format!("Events of type {} (log-ingest).", self.event_type)),
            "labels": {"sluice_worker": "log-ingest"},
        });
        if !self.clustering.is_empty() {
            r["clustering"] = json!({"fields": self.clustering});
        }
        r
    }

    /// Validates an event; the first violation names the failing value by JSON pointer.
    pub fn validate(&self, event: &Value) -> Result<(), Violation> {
        // The yes/no walk is the cheap one; the first error is looked for only when it fails.
        if self.validator.is_valid(event) {
            return Ok(());
        }
        match self.validator.validate(event) {
            Ok(()) => Ok(()),
            Err(e) => {
                let mut message = e.to_string();
                truncate_chars(&mut message, 500);
                Err(Violation {
                    pointer: e.instance_path().to_string(),
                    message,
                })
            }
        }
    }
}

fn truncate_chars(s: &mut String, max: usize) {
    if let Some((i, _)) = s.char_indices().nth(max) {
        s.truncate(i);
        s.push('…');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::columns::evolve;
    use crate::json::{close, write_attributes_text, write_json_text, write_str};
    use crate::row::is_utc_micros;

    fn schema(doc: Value) -> EventSchema {
        EventSchema::from_json("page_view", Path::new("page_view.json"), &doc).unwrap()
    }

    fn sample() -> Value {
        json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "description": "A page view",
            "x-bigquery": {"table": "page_views", "partition_field": "ts", "clustering": ["user_id"]},
            "required": ["user_id", "ts"],
            "properties": {
                "user_id": {"type": "integer", "description": "who"},
                "ts": {"type": "string", "format": "date-time"},
                "day": {"type": "string", "format": "date"},
                "url": {"type": ["string", "null"]},
                "score": {"type": "number"},
                "ok": {"type": "boolean"},
                "tags": {"type": "array", "items": {"type": "string"}},
                "blob": {"type": "string", "contentEncoding": "base64"},
                "amount": {"type": "string", "x-bigquery": {"type": "NUMERIC"}},
                "device": {"type": "object", "properties": {"os": {"type": "string"}, "w": {"type": "integer"}}},
                "props": {"type": "object"},
                "either": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
                "matrix": {"type": "array", "items": {"type": "array"}}
            }
        })
    }

    #[test]
    fn schema_maps_to_columns() {
        let s = schema(sample());
        assert_eq!(s.table, "page_views");
        let f = schema::to_json(&s.fields());
        let by = |n: &str| {
            f.as_array()
                .unwrap()
                .iter()
                .find(|c| c["name"] == n)
                .cloned()
                .unwrap()
        };
        assert_eq!(by("user_id")["type"], "INTEGER");
        assert_eq!(by("user_id")["description"], "who");
        assert_eq!(by("ts")["type"], "TIMESTAMP");
        assert_eq!(by("day")["type"], "DATE");
        assert_eq!(by("url")["type"], "STRING");
        assert_eq!(by("score")["type"], "FLOAT");
        assert_eq!(by("ok")["type"], "BOOLEAN");
        assert_eq!(by("tags")["mode"], "REPEATED");
        assert_eq!(by("blob")["type"], "BYTES");
        assert_eq!(by("amount")["type"], "NUMERIC");
        assert_eq!(by("device")["type"], "RECORD");
        assert_eq!(by("device")["fields"][1]["name"], "w");
        assert_eq!(by("props")["type"], "JSON");
        assert_eq!(by("either")["type"], "JSON");
        assert_eq!(by("matrix")["type"], "JSON");
        assert_eq!(by("_attributes")["type"], "JSON");
        let r = s.table_resource();
        assert_eq!(r["timePartitioning"]["field"], "ts");
        assert_eq!(r["clustering"]["fields"], json!(["user_id"]));
    }

    #[test]
    fn rows_are_converted_for_insert_all() {
        let s = schema(sample());
        let event = json!({
            "user_id": 7, "ts": "2026-11-23T12:00:00.1234567+02:00", "day": "2026-11-23",
            "tags": ["a"], "amount": "12.50", "device": {"os": "ios", "w": 3, "x": 1},
            "props": {"k": [1]}, "either": 5, "unknown": true
        });
        s.validate(&event).unwrap();
        let mut out = b"{".to_vec();
        let extra = s.write_columns(event, &mut out).unwrap();
        close(&mut out, b'}');
        let row: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(row["user_id"], 7);
        assert_eq!(row["ts"], "2026-11-23T10:00:00.123456Z");
        assert_eq!(row["day"], "2026-11-23");
        assert_eq!(row["tags"], json!(["a"]));
        assert_eq!(row["amount"], "12.50");
        assert_eq!(row["props"], r#"{"k":[1]}"#);
        assert_eq!(row["either"], "5");
        assert_eq!(row["device"], json!({"os": "ios", "w": 3}));
        assert_eq!(extra, json!({"unknown": true}).as_object().cloned());
        // Empty arrays and records still close; escapes survive.
        let mut out = b"{".to_vec();
        s.write_columns(json!({"tags": [], "device": {}, "url": "a\"b\n"}), &mut out)
            .unwrap();
        close(&mut out, b'}');
        let row: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(row, json!({"tags": [], "device": {}, "url": "a\"b\n"}));
        let mut out = b"{".to_vec();
        s.write_columns(json!({}), &mut out).unwrap();
        close(&mut out, b'}');
        assert_eq!(out, b"{}");
        assert!(is_utc_micros("2026-11-23T10:00:00Z"));
        assert!(is_utc_micros("2026-11-23T10:00:00.123456Z"));
        assert!(!is_utc_micros("2026-11-23T10:00:00.1234567Z"));
        assert!(!is_utc_micros("2026-11-23T10:00:00+02:00"));
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let mut samples: Vec<String> = vec![
            String::new(),
            "plain".into(),
            "exactly8".into(),
            "a\"quoted\" \\path\\ over eight bytes".into(),
            "tabs\tand\nlines\r\u{8}\u{c}\u{0}\u{1f}\u{7f}".into(),
            "ünïcødé ✓ 😀 mixed \"with\" escapes".into(),
            "x".repeat(2000),
        ];
        // Every byte value that can start or sit in a string, at every offset of a word.
        for c in (0u32..0x80).chain([0xe9, 0x2713, 0x1f600]) {
            let ch = char::from_u32(c).unwrap();
            for pad in 0..9 {
                samples.push(format!("{}{ch}{}", "a".repeat(pad), "b".repeat(9 - pad)));
            }
        }
        for s in samples {
            let mut out = vec![];
            write_str(&mut out, &s);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(&s).unwrap()
            );
        }
    }

    #[test]
    fn json_columns_are_their_text_as_a_string() {
        let values = [
            json!(null),
            json!({}),
            json!([]),
            json!({"k": [1, 2.5, -3e-7, true, null], "nested": {"a": "b"}}),
            json!({"quote\"key": "line\nbreak \\ and \"quotes\"", "ctl": "\u{1}\u{1f}", "u": "ü ✓ 😀"}),
            json!("just a string with \"quotes\" over eight bytes"),
            json!(12345678901234i64),
            json!(u64::MAX),
        ];
        for v in values {
            let mut out = vec![];
            write_json_text(&mut out, &v);
            let back: String = serde_json::from_slice(&out).unwrap();
            assert_eq!(back, v.to_string());
        }
        let attributes: BTreeMap<String, String> = [
            ("event_type".to_string(), "signup".to_string()),
            ("odd \"key\"".to_string(), "tab\there".to_string()),
        ]
        .into_iter()
        .collect();
        let mut out = vec![];
        write_attributes_text(&mut out, &attributes);
        let back: String = serde_json::from_slice(&out).unwrap();
        assert_eq!(back, serde_json::to_string(&attributes).unwrap());
        let mut out = vec![];
        write_attributes_text(&mut out, &BTreeMap::new());
        assert_eq!(out, br#""{}""#);
    }

    #[test]
    fn violations_carry_a_pointer() {
        let s = schema(sample());
        let v = s
            .validate(&json!({"user_id": 1, "ts": "2026-11-23T10:00:00Z", "device": {"w": "x"}}))
            .unwrap_err();
        assert_eq!(v.pointer, "/device/w");
        let v = s
            .validate(&json!({"user_id": 1, "ts": "yesterday"}))
            .unwrap_err();
        assert_eq!(v.pointer, "/ts");
        let v = s
            .validate(&json!({"ts": "2026-11-23T10:00:00Z"}))
            .unwrap_err();
        assert!(v.message.contains("user_id"), "{}", v.message);
    }

    #[test]
    fn bad_schemas_are_refused_by_name() {
        let e = EventSchema::from_json(
            "x",
            Path::new("x.json"),
            &json!({"type": "object", "properties": {"bad-name": {"type": "string"}}}),
        )
        .unwrap_err()
        .into_message();
        assert!(e.contains("`/bad-name`"), "{e}");
        let e = EventSchema::from_json(
            "x",
            Path::new("x.json"),
            &json!({"type": "object", "x-bigquery": {"partition_field": "n"}, "properties": {"n": {"type": "integer"}}}),
        )
        .unwrap_err().into_message();
        assert!(e.contains("partition_field"), "{e}");
    }

    #[test]
    fn evolution_adds_optional_columns_and_refuses_type_changes() {
        let old = schema(json!({"type": "object", "properties": {"a": {"type": "integer"}, "r": {"type": "object", "properties": {"x": {"type": "string"}}}}})).fields();
        let added = schema(json!({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string"}, "r": {"type": "object", "properties": {"x": {"type": "string"}, "y": {"type": "boolean"}}}}})).fields();
        let merged = evolve(&old, &added).unwrap().unwrap();
        assert!(merged.iter().any(|f| f.name == "b"));
        assert_eq!(schema::to_json(&merged)[1]["fields"][1]["name"], "y");
        assert_eq!(evolve(&merged, &added).unwrap(), None);
        let changed = schema(json!({"type": "object", "properties": {"r": {"type": "object", "properties": {"x": {"type": "integer"}}}}})).fields();
        let e = evolve(&old, &changed).unwrap_err().into_message();
        assert!(
            e.starts_with("property `/r/x` changed from NULLABLE STRING to NULLABLE INTEGER"),
            "{e}"
        );
    }
}

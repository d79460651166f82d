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

use base64::Engine;
use serde_json::{json, Map, Value};
use sluice::bigquery::schema::{self, Field, FieldType, Mode};
use sluice::types::BqType;

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

/// A type the `x-bigquery.type` hint may name: those log-ingest can write from JSON.
fn hinted_type(name: &str) -> Option<BqType> {
    BqType::from_api(name).filter(|t| !matches!(t, BqType::Datetime | BqType::Time))
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
pub fn load_dir(dir: &Path) -> Result<BTreeMap<String, EventSchema>, String> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read event schemas in {}: {e}", dir.display()))?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(format!(
            "no event schemas (<type>.json) in {}",
            dir.display()
        ));
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
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let doc: Value = serde_json::from_str(&text)
            .map_err(|e| format!("{}: not JSON: {e}", path.display()))?;
        let schema = EventSchema::from_json(&event_type, &path, &doc)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if let Some(other) = tables.insert(schema.table.clone(), event_type.clone()) {
            return Err(format!(
                "{}: table `{}` is already the table of event type `{other}`",
                path.display(),
                schema.table
            ));
        }
        out.insert(event_type, schema);
    }
    Ok(out)
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 300
}

impl EventSchema {
    /// Builds an event type from its schema document.
    pub fn from_json(event_type: &str, file: &Path, doc: &Value) -> Result<EventSchema, String> {
        if !valid_name(event_type) {
            return Err(format!(
                "event type `{event_type}` (the file name) must be letters, digits and underscores"
            ));
        }
        let validator = jsonschema::draft202012::options()
            .should_validate_formats(true)
            .build(doc)
            .map_err(|e| format!("not a valid JSON Schema: {e}"))?;
        if doc["type"] != "object" {
            return Err("the top level must be `\"type\": \"object\"`".into());
        }
        let hints = doc.get("x-bigquery").cloned().unwrap_or(json!({}));
        let hint_str = |k: &str| hints.get(k).and_then(Value::as_str).map(str::to_string);
        let table = sluice::catalog::event_table(event_type, doc);
        if !valid_name(&table) {
            return Err(format!(
                "x-bigquery.table `{table}` is not a valid BigQuery table name"
            ));
        }
        let columns = record_columns(doc, "")?;
        for c in &columns {
            if c.name.starts_with("_") && META_COLUMNS.iter().any(|(m, _)| *m == c.name) {
                return Err(format!(
                    "property `{}` clashes with a column log-ingest adds",
                    c.name
                ));
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
            return Err(format!(
                "x-bigquery.partition_field `{partition_field}` must be a top-level date or date-time property, or _publish_time / _ingested_at"
            ));
        }
        let partition_type = match hint_str("partition_type") {
            None => PartitionType::Day,
            Some(p) => PartitionType::parse(&p).ok_or_else(|| {
                format!("x-bigquery.partition_type `{p}` must be HOUR, DAY, MONTH or YEAR")
            })?,
        };
        let clustering: Vec<String> = match hints.get("clustering") {
            None => vec![],
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<_>>()
                .ok_or("x-bigquery.clustering must be a list of property names")?,
            Some(_) => return Err("x-bigquery.clustering must be a list of property names".into()),
        };
        if clustering.len() > 4 {
            return Err("x-bigquery.clustering takes at most 4 properties".into());
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
                return Err(format!(
                    "x-bigquery.clustering: `{c}` must be a top-level property of a scalar type other than number"
                ));
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

    /// Writes the typed columns of a valid event into an insertAll row being built in `out`
    /// (each as `"name":value,`; the caller closes the object), and returns the top-level
    /// properties the schema does not name. Consumes the event, and writes the row's bytes
    /// directly rather than building it as a JSON tree first: this is the hot path.
    pub fn write_columns(
        &self,
        event: Value,
        out: &mut Vec<u8>,
    ) -> Result<Option<Map<String, Value>>, Violation> {
        let Value::Object(obj) = event else {
            return Err(violation(&Ptr::Root, "the event is not a JSON object"));
        };
        let rest = write_record(&self.columns, obj, &Ptr::Root, out)?;
        Ok((!rest.is_empty()).then_some(rest))
    }
}

/// Appends `s` as a JSON string, escaped as serde_json escapes it. Runs that need no escape
/// are found eight bytes at a time and copied whole: event payloads are mostly such runs.
pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    write_str_contents(out, s.as_bytes());
    out.push(b'"');
}

/// The inside of a JSON string: `b` (UTF-8) with what JSON requires escaped.
fn write_str_contents(out: &mut Vec<u8>, b: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let (mut start, mut i) = (0, 0);
    while i < b.len() {
        if let Some(word) = b.get(i..i + 8) {
            if !needs_escape(u64::from_le_bytes(word.try_into().unwrap_or_default())) {
                i += 8;
                continue;
            }
        }
        let esc: &[u8] = match b[i] {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            c if c < 0x20 => {
                out.extend_from_slice(&b[start..i]);
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(c >> 4)]);
                out.push(HEX[usize::from(c & 0xf)]);
                i += 1;
                start = i;
                continue;
            }
            _ => {
                i += 1;
                continue;
            }
        };
        out.extend_from_slice(&b[start..i]);
        out.extend_from_slice(esc);
        i += 1;
        start = i;
    }
    out.extend_from_slice(&b[start..]);
}

/// Whether a string can be written between quotes as it is.
fn needs_no_escape(b: &[u8]) -> bool {
    let mut words = b.chunks_exact(8);
    words
        .by_ref()
        .all(|w| !needs_escape(u64::from_le_bytes(w.try_into().unwrap_or_default())))
        && words
            .remainder()
            .iter()
            .all(|&c| c >= 0x20 && c != b'"' && c != b'\\')
}

/// Whether any of eight bytes is a control character, `"` or a backslash (bytes of multi-byte UTF-8
/// characters are all >= 0x80 and never match).
fn needs_escape(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH != 0;
    let below_space = w.wrapping_sub(ONES * 0x20) & !w & HIGH != 0;
    below_space || has_zero(w ^ (ONES * b'"' as u64)) || has_zero(w ^ (ONES * b'\\' as u64))
}

/// Appends `"name":` (column names are letters, digits and underscores: nothing to escape).
pub(crate) fn write_key(out: &mut Vec<u8>, name: &str) {
    out.push(b'"');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
}

/// Appends the JSON text of `v` (as serde_json writes it) as a JSON string: how insertAll
/// takes a JSON column. Written in one pass, escaping as it goes, with no text in between.
pub(crate) fn write_json_text(out: &mut Vec<u8>, v: &Value) {
    out.push(b'"');
    write_quoted_value(out, v);
    out.push(b'"');
}

/// Appends string attributes as the text of a JSON object, as a JSON string.
pub(crate) fn write_attributes_text(out: &mut Vec<u8>, attributes: &BTreeMap<String, String>) {
    out.push(b'"');
    write_quoted_object(out, attributes.iter(), |out, v| write_quoted_str(out, v));
    out.push(b'"');
}

fn write_quoted_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        // Digits, signs, '.', 'e': nothing to escape.
        Value::Number(n) => {
            let _ = serde_json::to_writer(&mut *out, n);
        }
        Value::String(s) => write_quoted_str(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_quoted_value(out, item);
            }
            out.push(b']');
        }
        Value::Object(map) => write_quoted_object(out, map.iter(), write_quoted_value),
    }
}

/// `{"key":value,...}` inside a JSON string.
fn write_quoted_object<'a, V: 'a>(
    out: &mut Vec<u8>,
    members: impl Iterator<Item = (&'a String, &'a V)>,
    value: impl Fn(&mut Vec<u8>, &V),
) {
    out.push(b'{');
    for (i, (k, v)) in members.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_quoted_str(out, k);
        out.push(b':');
        value(out, v);
    }
    out.push(b'}');
}

/// A string inside JSON text inside a JSON string: escaped once for the text, then again.
fn write_quoted_str(out: &mut Vec<u8>, s: &str) {
    if needs_no_escape(s.as_bytes()) {
        out.extend_from_slice(b"\\\"");
        out.extend_from_slice(s.as_bytes());
        out.extend_from_slice(b"\\\"");
    } else {
        let mut text = Vec::with_capacity(s.len() + 8);
        write_str(&mut text, s);
        write_str_contents(out, &text);
    }
}

/// Ends an object (`b'}'`) or array (`b']'`) whose members each end in a comma.
pub(crate) fn close(out: &mut Vec<u8>, bracket: u8) {
    match out.last_mut() {
        Some(last @ b',') => *last = bracket,
        _ => out.push(bracket),
    }
}

fn truncate_chars(s: &mut String, max: usize) {
    if let Some((i, _)) = s.char_indices().nth(max) {
        s.truncate(i);
        s.push('…');
    }
}

/// The columns of an object schema's `properties`, in document order.
fn record_columns(schema: &Value, path: &str) -> Result<Vec<Field>, String> {
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return Ok(vec![]);
    };
    let mut out = Vec::with_capacity(props.len());
    for (name, prop) in props {
        let here = format!("{path}/{name}");
        if !valid_name(name) {
            return Err(format!(
                "property `{here}`: `{name}` is not a valid BigQuery column name (letters, digits, underscores; not starting with a digit)"
            ));
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

fn property_type(prop: &Value, here: &str) -> Result<(FieldType, bool), String> {
    const JSON: FieldType = FieldType::Scalar(BqType::Json);
    if let Some(hint) = prop.pointer("/x-bigquery/type").and_then(Value::as_str) {
        let ty = FieldType::Scalar(hinted_type(hint).ok_or_else(|| {
            format!("property `{here}`: x-bigquery.type `{hint}` is not a type log-ingest writes")
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

/// Where a value is, rendered as a JSON pointer only when something fails there.
enum Ptr<'a> {
    Root,
    Key(&'a Ptr<'a>, &'a str),
    Index(&'a Ptr<'a>, usize),
}

impl Ptr<'_> {
    fn pointer(&self) -> String {
        match self {
            Ptr::Root => String::new(),
            Ptr::Key(p, k) => format!("{}/{k}", p.pointer()),
            Ptr::Index(p, i) => format!("{}/{i}", p.pointer()),
        }
    }
}

fn violation(at: &Ptr, message: impl Into<String>) -> Violation {
    Violation {
        pointer: at.pointer(),
        message: message.into(),
    }
}

/// Writes the mapped properties of `obj` as `"name":value,` members and returns the rest,
/// the properties the schema does not name. Walks the object once, in its own (sorted) order,
/// looking each key up among the few columns: cheaper than removing column by column.
fn write_record(
    columns: &[Field],
    obj: Map<String, Value>,
    at: &Ptr,
    out: &mut Vec<u8>,
) -> Result<Map<String, Value>, Violation> {
    let mut rest = Map::new();
    for (name, v) in obj {
        let Some(c) = columns.iter().find(|c| c.name == name) else {
            rest.insert(name, v);
            continue;
        };
        if v.is_null() {
            continue;
        }
        let here = Ptr::Key(at, &c.name);
        write_key(out, &c.name);
        if c.mode == Mode::Repeated {
            let Value::Array(items) = v else {
                return Err(violation(&here, "expected an array"));
            };
            out.push(b'[');
            for (i, item) in items.into_iter().enumerate() {
                let at = Ptr::Index(&here, i);
                if item.is_null() {
                    return Err(violation(&at, "BigQuery arrays cannot hold null"));
                }
                write_value(&c.ty, item, &at, out)?;
                out.push(b',');
            }
            close(out, b']');
        } else {
            write_value(&c.ty, v, &here, out)?;
        }
        out.push(b',');
    }
    Ok(rest)
}

/// Writes a value as insertAll takes it for a column of type `ty`.
fn write_value(ty: &FieldType, v: Value, here: &Ptr, out: &mut Vec<u8>) -> Result<(), Violation> {
    let scalar = match ty {
        FieldType::Record(sub) => {
            let Value::Object(obj) = v else {
                return Err(violation(here, "expected an object"));
            };
            out.push(b'{');
            // Properties a nested object's schema does not name are not kept (only the top
            // level has `_extra`).
            write_record(sub, obj, here, out)?;
            close(out, b'}');
            return Ok(());
        }
        FieldType::Scalar(t) => *t,
        // Never derived from a schema; JSON text is what any column takes best.
        FieldType::Other(_) => BqType::Json,
    };
    match scalar {
        BqType::String | BqType::Datetime | BqType::Time => match v {
            Value::String(s) => write_str(out, &s),
            other => write_str(out, &other.to_string()),
        },
        BqType::Int64 => {
            let i = v
                .as_i64()
                .or_else(|| {
                    v.as_f64()
                        .filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
                        .map(|f| f as i64)
                })
                .ok_or_else(|| violation(here, format!("{v} does not fit INT64")))?;
            let _ = serde_json::to_writer(&mut *out, &i);
        }
        BqType::Float64 => {
            let f = v
                .as_f64()
                .ok_or_else(|| violation(here, format!("{v} is not a number")))?;
            let _ = serde_json::to_writer(&mut *out, &f);
        }
        BqType::Bool => {
            let b = v
                .as_bool()
                .ok_or_else(|| violation(here, format!("{v} is not a boolean")))?;
            out.extend_from_slice(if b { b"true" } else { b"false" });
        }
        BqType::Timestamp => {
            let Value::String(s) = v else {
                return Err(violation(here, "expected a date-time string"));
            };
            if is_utc_micros(&s) {
                // Digits, '-', ':', '.', 'T' and 'Z': nothing to escape.
                out.push(b'"');
                out.extend_from_slice(s.as_bytes());
                out.push(b'"');
            } else {
                let t = normalize_timestamp(&s).ok_or_else(|| {
                    violation(here, format!("`{s}` is not an RFC 3339 date-time"))
                })?;
                write_str(out, &t);
            }
        }
        BqType::Date => {
            let s = v
                .as_str()
                .ok_or_else(|| violation(here, "expected a date string"))?;
            chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .map_err(|_| violation(here, format!("`{s}` is not a date (YYYY-MM-DD)")))?;
            write_str(out, s);
        }
        BqType::Bytes => {
            let s = v
                .as_str()
                .ok_or_else(|| violation(here, "expected a base64 string"))?;
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|e| violation(here, format!("not base64: {e}")))?;
            write_str(out, s);
        }
        BqType::Numeric | BqType::BigNumeric => match v {
            Value::Number(n) => write_str(out, &n.to_string()),
            Value::String(ref s) if s.parse::<f64>().is_ok() => write_str(out, s),
            _ => return Err(violation(here, format!("{v} is not a decimal number"))),
        },
        BqType::Json => write_json_text(out, &v),
    }
    Ok(())
}

/// `YYYY-MM-DDTHH:MM:SS[.f{1,6}]Z`: already what BigQuery keeps, so no parse is needed (the
/// schema's `format: date-time` has checked the rest).
fn is_utc_micros(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 20
        && b.len() <= 27
        && b[10] == b'T'
        && b[b.len() - 1] == b'Z'
        && (b.len() == 20 || (b[19] == b'.' && b.len() > 21))
        && b[..10].iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        })
        && b[11..19].iter().enumerate().all(|(i, c)| {
            if i == 2 || i == 5 {
                *c == b':'
            } else {
                c.is_ascii_digit()
            }
        })
        && b.get(20..b.len() - 1)
            .unwrap_or(&[])
            .iter()
            .all(u8::is_ascii_digit)
}

/// RFC 3339 → UTC `YYYY-MM-DDTHH:MM:SS[.ffffff]Z` (BigQuery keeps microseconds); UTC values
/// with at most six fractional digits are kept as they are.
pub fn normalize_timestamp(s: &str) -> Option<String> {
    if is_utc_micros(s) {
        return Some(s.to_string());
    }
    let t = chrono::DateTime::parse_from_rfc3339(s).ok()?;
    Some(sluice::time::bigquery_timestamp(
        t.with_timezone(&chrono::Utc),
    ))
}

/// How an existing table's schema meets the derived one: the new full field list when it
/// gains columns, or the first incompatible property, named by its JSON pointer.
pub fn evolve(existing: &[Field], derived: &[Field]) -> Result<Option<Vec<Field>>, String> {
    let e = schema::evolve(existing, derived, false);
    if let Some(bad) = e.incompatible.first() {
        return Err(format!(
            "property `/{}` changed from {} to {}, which BigQuery cannot alter in place; keep the old type, or give the event a new table (x-bigquery.table)",
            bad.path.join("/"),
            bad.from.shape(),
            bad.to.shape()
        ));
    }
    Ok(e.changes().then_some(e.fields))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        .unwrap_err();
        assert!(e.contains("`/bad-name`"), "{e}");
        let e = EventSchema::from_json(
            "x",
            Path::new("x.json"),
            &json!({"type": "object", "x-bigquery": {"partition_field": "n"}, "properties": {"n": {"type": "integer"}}}),
        )
        .unwrap_err();
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
        let e = evolve(&old, &changed).unwrap_err();
        assert!(
            e.starts_with("property `/r/x` changed from NULLABLE STRING to NULLABLE INTEGER"),
            "{e}"
        );
    }
}

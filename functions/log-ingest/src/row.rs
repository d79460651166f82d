//! A valid event → the bytes of its insertAll row: typed columns written straight from the
//! parsed event (no JSON tree built first: this is the hot path), timestamps normalised to
//! BigQuery's UTC microseconds, the properties the schema does not name handed back, and the
//! meta columns every row ends with.

use std::collections::BTreeMap;

use base64::Engine;
use serde_json::{Map, Value};
use sluice::bigquery::schema::{Field, FieldType, Mode};
use sluice::types::BqType;

use crate::json::{close, write_attributes_text, write_json_text, write_key, write_str};
use crate::schema::{EventSchema, Violation};

impl EventSchema {
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

/// The meta columns of an event's row: from its Pub/Sub message, the properties its schema
/// does not name, and when it landed.
pub struct Meta<'a> {
    /// `_message_id`: Pub/Sub's id, which the dedup views keep one row of.
    pub message_id: &'a str,
    /// As Pub/Sub sent it; normalised, or left out when it is not a timestamp.
    pub publish_time: Option<&'a str>,
    /// `_attributes`, as JSON text.
    pub attributes: &'a BTreeMap<String, String>,
    /// What `write_columns` handed back (`_extra`).
    pub extra: Option<Map<String, Value>>,
    /// `_ingested_at` (RFC 3339, UTC).
    pub ingested_at: &'a str,
}

/// Writes the meta columns after the typed ones (each ending in a comma like them) and closes
/// the row.
pub fn write_meta(meta: Meta, out: &mut Vec<u8>) {
    let mut member = |name: &str, write: &dyn Fn(&mut Vec<u8>)| {
        write_key(out, name);
        write(out);
        out.push(b',');
    };
    member("_message_id", &|out| write_str(out, meta.message_id));
    if let Some(t) = meta.publish_time.and_then(normalize_timestamp) {
        member("_publish_time", &|out| write_str(out, &t));
    }
    member("_attributes", &|out| {
        write_attributes_text(out, meta.attributes)
    });
    if let Some(x) = meta.extra {
        let x = Value::Object(x);
        member("_extra", &|out| write_json_text(out, &x));
    }
    member("_ingested_at", &|out| write_str(out, meta.ingested_at));
    close(out, b'}');
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
pub(crate) fn is_utc_micros(s: &str) -> bool {
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

//! The JSON bytes writer of the insertAll hot path: strings escaped as serde_json escapes
//! them, with runs that need no escape found eight bytes at a time (SWAR) and copied whole;
//! JSON values as their text (for JSON columns); closing an object or array.

use std::collections::BTreeMap;

use serde_json::Value;

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

//! Checks of pipeline.yaml beyond its types. Every error names the file, the key path and
//! its line; a key written twice is refused naming both lines.

use super::{Mode, Pipeline, Schedule};
use crate::error::{Error, Result};

impl Pipeline {
    pub(super) fn validate(&self, text: &str, origin: &str) -> Result<()> {
        let at = |path: &[&str], msg: String| {
            let line = line_of(text, path)
                .map(|l| format!(" (line {l})"))
                .unwrap_or_default();
            Error::config(format!("{origin}: {}{line}: {msg}", path.join(".")))
        };
        for (sname, source) in &self.sources {
            if let Some(m) = bad_name(sname) {
                return Err(at(&["sources", sname], m));
            }
            if let Some(ds) = &source.dataset {
                if let Some(m) = bad_name(ds) {
                    return Err(at(&["sources", sname, "dataset"], m));
                }
            }
            if let Some(cdc) = &source.cdc {
                let path = ["sources", sname.as_str(), "cdc"];
                let given = [
                    !cdc.tables.is_empty(),
                    !cdc.schemas.is_empty(),
                    cdc.all_tables,
                ];
                if given.iter().filter(|g| **g).count() != 1 {
                    return Err(at(
                        &path,
                        "give exactly one of `tables`, `schemas` or `all_tables: true`".into(),
                    ));
                }
                for (key, name) in [("slot", &cdc.slot), ("publication", &cdc.publication)] {
                    if let Some(n) = name {
                        if n.is_empty()
                            || !n
                                .chars()
                                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                        {
                            return Err(at(
                                &[&path[..], &[key]].concat(),
                                format!("`{n}`: use lowercase letters, digits and underscores"),
                            ));
                        }
                    }
                }
                if let Some(ds) = &cdc.dataset {
                    if let Some(m) = bad_name(ds) {
                        return Err(at(&[&path[..], &["dataset"]].concat(), m));
                    }
                }
                if cdc.batch_changes == 0 {
                    return Err(at(
                        &[&path[..], &["batch_changes"]].concat(),
                        "must be at least 1".into(),
                    ));
                }
            }
            for (tname, t) in &source.tables {
                let path = ["sources", sname.as_str(), "tables", tname.as_str()];
                if let Some(m) = bad_name(tname) {
                    return Err(at(&path, m));
                }
                if let Schedule::Cron(c) = &t.schedule {
                    return Err(at(
                        &[&path[..], &["schedule"]].concat(),
                        format!("`{c}`: a copy runs daily (for the day before) or hourly (for today so far)"),
                    ));
                }
                match (t.mode, &t.watermark_column) {
                    (Mode::Incremental, None) => {
                        return Err(at(
                            &path,
                            "mode incremental needs `watermark_column` (the date or timestamp column that assigns rows to dates)".into(),
                        ))
                    }
                    (Mode::Full, Some(_)) => {
                        return Err(at(
                            &[&path[..], &["watermark_column"]].concat(),
                            "`watermark_column` applies to mode incremental only".into(),
                        ))
                    }
                    _ => {}
                }
            }
        }
        if let Some(ev) = &self.events {
            if let Some(m) = bad_name(&ev.dataset) {
                return Err(at(&["events", "dataset"], m));
            }
            let b = &ev.batch;
            if b.max_rows == 0 || b.max_rows > 50_000 {
                return Err(at(
                    &["events", "batch", "max_rows"],
                    "must be between 1 and 50000 (insertAll's limit)".into(),
                ));
            }
            if b.max_bytes == 0 || b.max_bytes > 9 * 1024 * 1024 {
                return Err(at(
                    &["events", "batch", "max_bytes"],
                    "must be between 1 and 9437184 (insertAll takes 10 MB per request)".into(),
                ));
            }
            if ev.max_payload_bytes == 0 || ev.max_payload_bytes > 8 * 1024 * 1024 {
                return Err(at(
                    &["events", "max_payload_bytes"],
                    "must be between 1 and 8388608 (a BigQuery row holds 10 MB)".into(),
                ));
            }
            if ev.ledger_window_s == 0 {
                return Err(at(
                    &["events", "ledger_window_s"],
                    "must be at least 1".into(),
                ));
            }
        }
        for (tname, t) in &self.targets {
            for s in t.sources.keys() {
                if !self.sources.contains_key(s) {
                    return Err(at(
                        &["targets", tname, "sources", s],
                        format!("no source named `{s}` in `sources`"),
                    ));
                }
            }
            if let Some(suffix) = &t.dataset_suffix {
                if !suffix
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
                {
                    return Err(at(
                        &["targets", tname, "dataset_suffix"],
                        "may hold letters, digits and underscores only".into(),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// BigQuery dataset and table names: letters, digits, underscores. Says what is wrong
/// with `name`, if anything.
fn bad_name(name: &str) -> Option<String> {
    let ok = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    (!ok).then(|| {
        format!("`{name}` is not a valid BigQuery name (letters, digits and underscores only)")
    })
}

/// A key written twice in one mapping of a YAML document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateKey {
    /// Path of the mapping (`sources.shop.tables`), empty at the top.
    pub mapping: String,
    pub key: String,
    /// Where the mapping starts (1-based).
    pub mapping_line: usize,
    /// The lines the key is on (1-based), when found.
    pub lines: Vec<usize>,
}

impl DuplicateKey {
    /// `sources.shop.tables: key `users` is given twice, at lines 11 and 13; keep one`, with
    /// `offset` added to every line (a document inside a larger file).
    pub fn describe(&self, offset: usize) -> String {
        let inside = if self.mapping.is_empty() {
            String::new()
        } else {
            format!("{}: ", self.mapping)
        };
        let lines = match self.lines.as_slice() {
            [a, b, ..] if a == b => format!("twice on line {}", a + offset),
            [a, b, ..] => format!("twice, at lines {} and {}", a + offset, b + offset),
            _ => format!(
                "twice in the mapping at line {}",
                self.mapping_line + offset
            ),
        };
        format!("{inside}key `{}` is given {lines}; keep one", self.key)
    }
}

/// The first key written twice in one mapping of `text` (serde would keep the second one
/// silently). A document that does not parse has none: the typed parse reports its error.
pub fn duplicate_key(text: &str) -> Option<DuplicateKey> {
    let e = serde_yaml::from_str::<serde_yaml::Value>(text).err()?;
    let msg = e.to_string();
    const DUP: &str = "duplicate entry with key ";
    let at = msg.find(DUP)?;
    let rest = &msg[at + DUP.len()..];
    let quoted = rest.split(" at line ").next().unwrap_or(rest);
    let key: String = serde_json::from_str(quoted).unwrap_or_else(|_| quoted.to_string());
    // serde_yaml places the error at the start of the mapping.
    let (line, column) = e
        .location()
        .map(|l| (l.line(), l.column()))
        .unwrap_or((1, 1));
    Some(DuplicateKey {
        mapping: msg[..at].trim_end_matches(": ").to_string(),
        lines: key_lines(text, line, column, &key),
        key,
        mapping_line: line,
    })
}

/// Refuses a key written twice in one mapping of pipeline.yaml, naming both lines.
pub(super) fn refuse_duplicate_keys(text: &str, origin: &str) -> Result<()> {
    match duplicate_key(text) {
        None => Ok(()),
        Some(d) => Err(Error::config(format!("{origin}: {}", d.describe(0)))),
    }
}

/// The lines of `key` in the mapping that starts at (`line`, `column`), both 1-based: a block
/// mapping's keys at its indentation, or a flow mapping's (`{a: 1, a: 2}`) wherever they are.
fn key_lines(text: &str, line: usize, column: usize, key: &str) -> Vec<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let is_key = |s: &str| {
        let s = s.trim_start_matches(['{', ',', ' ']);
        [key.to_string(), format!("\"{key}\""), format!("'{key}'")]
            .iter()
            .any(|k| {
                s.strip_prefix(k.as_str())
                    .is_some_and(|r| r.trim_start().starts_with(':'))
            })
    };
    let first = lines.get(line.saturating_sub(1)).copied().unwrap_or("");
    let start = first
        .char_indices()
        .nth(column.saturating_sub(1))
        .map(|(i, _)| i)
        .unwrap_or(0);
    if first[start..].starts_with('{') {
        // A flow mapping: every `key:` after a `{` or `,`, on its lines up to the closing brace.
        let mut out = vec![];
        let mut depth = 0i32;
        for (i, l) in lines.iter().enumerate().skip(line - 1) {
            let l = if i == line - 1 { &l[start..] } else { l };
            for (j, c) in l.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                if depth == 1 && matches!(c, '{' | ',') && is_key(&l[j..]) {
                    out.push(i + 1);
                }
            }
            if depth <= 0 {
                break;
            }
        }
        return out;
    }
    let indent = column - 1;
    let mut out = vec![];
    for (i, l) in lines.iter().enumerate().skip(line - 1) {
        let trimmed = l.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        // The mapping's first line may start with `- ` (an item of a list).
        let (at, body) = if i == line - 1 {
            (indent, &l[start..])
        } else {
            (l.len() - trimmed.len(), trimmed)
        };
        if at < indent {
            break;
        }
        if at == indent && is_key(body) {
            out.push(i + 1);
        }
    }
    out
}

/// The 1-based line of a nested mapping key, found by indentation.
pub(super) fn line_of(text: &str, path: &[&str]) -> Option<usize> {
    let mut depth = 0;
    let mut min_indent: isize = -1;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('#') || trimmed.is_empty() {
            continue;
        }
        let indent = (line.len() - trimmed.len()) as isize;
        if depth > 0 && indent <= min_indent {
            // Left the block of the previous key without finding the next one.
            return None;
        }
        let key = trimmed
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .trim_matches('"');
        if key == path[depth] && trimmed.contains(':') {
            depth += 1;
            min_indent = indent;
            if depth == path.len() {
                return Some(i + 1);
            }
        }
    }
    None
}

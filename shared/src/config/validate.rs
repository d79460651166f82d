//! Checks of pipeline.yaml beyond its types. Every error names the file, the key path and
//! its line; a key written twice is refused naming both lines.

use super::meta::Freshness;
use super::monitor::{clock_minutes, AlertsConfig};
use super::source::{qualify, CdcConfig, Source, TableConfig};
use super::{Mode, Pipeline, Schedule};
use crate::error::{Error, Result};

/// The error at a key path: the file, the path and the line of its key.
type At<'a> = &'a dyn Fn(&[&str], String) -> Error;

impl Pipeline {
    pub(super) fn validate(&self, text: &str, origin: &str) -> Result<()> {
        let at = |path: &[&str], msg: String| {
            let line = line_of(text, path)
                .map(|l| format!(" (line {l})"))
                .unwrap_or_default();
            Error::config(format!("{origin}: {}{line}: {msg}", path.join(".")))
        };
        for (sname, source) in &self.sources {
            validate_source(&at, sname, source)?;
        }
        self.validate_events(&at)?;
        self.validate_monitor(&at)?;
        self.validate_targets(&at)
    }

    /// Event tables' dataset, and batch and payload limits within BigQuery's.
    fn validate_events(&self, at: At) -> Result<()> {
        let Some(ev) = &self.events else {
            return Ok(());
        };
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
        Ok(())
    }

    /// Targets override only sources that exist, and suffix datasets with a valid name.
    fn validate_targets(&self, at: At) -> Result<()> {
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

/// A source's name and dataset, its `cdc:` block, and each of its tables.
fn validate_source(at: At, sname: &str, source: &Source) -> Result<()> {
    if let Some(m) = bad_name(sname) {
        return Err(at(&["sources", sname], m));
    }
    if let Some(ds) = &source.dataset {
        if let Some(m) = bad_name(ds) {
            return Err(at(&["sources", sname, "dataset"], m));
        }
    }
    if let Some(cdc) = &source.cdc {
        validate_cdc(at, sname, cdc)?;
    }
    for (tname, t) in &source.tables {
        validate_table(at, sname, tname, t)?;
    }
    Ok(())
}

/// One way to name the tables, valid slot and publication names, a dataset, a batch size.
fn validate_cdc(at: At, sname: &str, cdc: &CdcConfig) -> Result<()> {
    let path = ["sources", sname, "cdc"];
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
    Ok(())
}

/// A table's name, a schedule a copy can keep, and a watermark exactly when incremental.
fn validate_table(at: At, sname: &str, tname: &str, t: &TableConfig) -> Result<()> {
    let path = ["sources", sname, "tables", tname];
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
        (Mode::Incremental, None) => Err(at(
            &path,
            "mode incremental needs `watermark_column` (the date or timestamp column that assigns rows to dates)".into(),
        )),
        (Mode::Full, Some(_)) => Err(at(
            &[&path[..], &["watermark_column"]].concat(),
            "`watermark_column` applies to mode incremental only".into(),
        )),
        _ => Ok(()),
    }
}

impl Pipeline {
    /// Owners named by tables exist, channels named by routes exist, times and zones parse.
    fn validate_monitor(&self, at: At) -> Result<()> {
        for (sname, source) in &self.sources {
            self.validate_source_meta(at, sname, source)?;
        }
        self.validate_events_meta(at)?;
        self.validate_owners(at)?;
        let Some(alerts) = &self.alerts else {
            return Ok(());
        };
        self.validate_routes(at, alerts)?;
        validate_alert_times(at, alerts)
    }

    /// An owner named at `path` is a key of `owners:`.
    fn owner_ok(&self, at: At, path: &[&str], o: &Option<String>) -> Result<()> {
        match o {
            Some(o) if !self.owners.contains_key(owner_key(o)) => Err(at(
                path,
                format!(
                    "owner `{o}` is not in `owners:` (known: {})",
                    self.owners.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            )),
            _ => Ok(()),
        }
    }

    /// The owners and freshness of a source, its tables, its replicas and its replicated
    /// tables (which must be replicated).
    fn validate_source_meta(&self, at: At, sname: &str, source: &Source) -> Result<()> {
        self.owner_ok(at, &["sources", sname, "owner"], &source.owner)?;
        for (tname, t) in &source.tables {
            let path = ["sources", sname, "tables", tname.as_str()];
            self.owner_ok(at, &[&path[..], &["owner"]].concat(), &t.owner)?;
            freshness_ok(at, &[&path[..], &["freshness"]].concat(), &t.freshness)?;
        }
        let Some(cdc) = &source.cdc else {
            return Ok(());
        };
        self.owner_ok(at, &["sources", sname, "cdc", "owner"], &cdc.owner)?;
        freshness_ok(at, &["sources", sname, "cdc", "freshness"], &cdc.freshness)?;
        for (tname, m) in &cdc.per_table {
            let path = ["sources", sname, "cdc", "per_table", tname.as_str()];
            let (schema, table) = qualify(tname);
            let listed = cdc.all_tables
                || cdc.schemas.contains(&schema)
                || cdc
                    .tables
                    .iter()
                    .any(|t| qualify(t) == (schema.clone(), table.clone()));
            if !listed {
                return Err(at(
                    &path,
                    format!("`{tname}` is not replicated (not in `tables` or `schemas`)"),
                ));
            }
            self.owner_ok(at, &[&path[..], &["owner"]].concat(), &m.owner)?;
            freshness_ok(at, &[&path[..], &["freshness"]].concat(), &m.freshness)?;
        }
        Ok(())
    }

    /// The owners and freshness of the event tables, and of each event type.
    fn validate_events_meta(&self, at: At) -> Result<()> {
        let Some(ev) = &self.events else {
            return Ok(());
        };
        self.owner_ok(at, &["events", "owner"], &ev.owner)?;
        freshness_ok(at, &["events", "freshness"], &ev.freshness)?;
        for (name, m) in &ev.types {
            self.owner_ok(at, &["events", "types", name, "owner"], &m.owner)?;
            freshness_ok(at, &["events", "types", name, "freshness"], &m.freshness)?;
        }
        Ok(())
    }

    /// Each owner can be mentioned: a Slack id, a Teams UPN, or both.
    fn validate_owners(&self, at: At) -> Result<()> {
        for (name, o) in &self.owners {
            if o.slack.is_none() && o.teams.is_none() {
                return Err(at(
                    &["owners", name],
                    "give `slack` (a U… or S… id), `teams` (a UPN or e-mail) or both".into(),
                ));
            }
            if let Some(id) = &o.slack {
                if !id.starts_with(['U', 'W', 'S'])
                    || !id.chars().all(|c| c.is_ascii_alphanumeric())
                {
                    return Err(at(
                        &["owners", name, "slack"],
                        format!("`{id}` is not a Slack member (U…, W…) or user group (S…) id"),
                    ));
                }
            }
            if let Some(upn) = &o.teams {
                if !upn.contains('@') {
                    return Err(at(
                        &["owners", name, "teams"],
                        format!("`{upn}` is not a UPN or e-mail address"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Routes and defaults name channels that exist, routes name known owners and workers.
    fn validate_routes(&self, at: At, alerts: &AlertsConfig) -> Result<()> {
        let channel_ok = |path: &[&str], names: &[String]| -> Result<()> {
            match names.iter().find(|c| !alerts.channels.contains_key(*c)) {
                Some(c) => Err(at(path, format!("no channel `{c}` in `alerts.channels`"))),
                None => Ok(()),
            }
        };
        channel_ok(&["alerts", "default"], &alerts.default)?;
        channel_ok(&["alerts", "digest", "channels"], &alerts.digest.channels)?;
        let workers = ["pg-copy", "cdc-sync", "log-ingest", "mart-build", "monitor"];
        for (i, r) in alerts.routes.iter().enumerate() {
            let n = i.to_string();
            let path = ["alerts", "routes", n.as_str()];
            channel_ok(&path, &r.channels)?;
            self.owner_ok(at, &path, &r.owner)?;
            if let Some(w) = r.worker.as_deref().filter(|w| !workers.contains(w)) {
                return Err(at(
                    &path,
                    format!("worker `{w}`: one of {}", workers.join(", ")),
                ));
            }
            if r.channels.is_empty() {
                return Err(at(&path, "`channels` is empty".into()));
            }
        }
        if !alerts.channels.is_empty() && alerts.default.is_empty() {
            return Err(at(
                &["alerts", "default"],
                "name the channels of alerts no route matches".into(),
            ));
        }
        Ok(())
    }
}

/// A freshness SLA at `path` gives a threshold, and warns no later than it errors.
fn freshness_ok(at: At, path: &[&str], f: &Option<Freshness>) -> Result<()> {
    if let Some(f) = f {
        match (f.warn_after, f.error_after) {
            (None, None) => {
                return Err(at(path, "give `warn_after`, `error_after` or both".into()))
            }
            (Some(w), Some(e)) if w > e => {
                return Err(at(path, "`warn_after` is longer than `error_after`".into()))
            }
            _ => {}
        }
    }
    Ok(())
}

/// The digest's time and zone, quiet periods' times and days, and a dead-letter share.
fn validate_alert_times(at: At, alerts: &AlertsConfig) -> Result<()> {
    if clock_minutes(&alerts.digest.at).is_none() {
        return Err(at(
            &["alerts", "digest", "at"],
            format!("`{}`: write HH:MM", alerts.digest.at),
        ));
    }
    if alerts.digest.time_zone.parse::<chrono_tz::Tz>().is_err() {
        return Err(at(
            &["alerts", "digest", "time_zone"],
            format!(
                "`{}` is not an IANA time zone (like Europe/Berlin)",
                alerts.digest.time_zone
            ),
        ));
    }
    for (i, q) in alerts.quiet.iter().enumerate() {
        let n = i.to_string();
        let path = ["alerts", "quiet", n.as_str()];
        if clock_minutes(&q.from).is_none() || clock_minutes(&q.to).is_none() {
            return Err(at(&path, "`from` and `to` are HH:MM".into()));
        }
        if let Some(d) = q.days.iter().find(|d| weekday(d).is_none()) {
            return Err(at(
                &path,
                format!("day `{d}`: mon, tue, wed, thu, fri, sat or sun"),
            ));
        }
    }
    if !(0.0..=1.0).contains(&alerts.dead_letter_rate) {
        return Err(at(
            &["alerts", "dead_letter_rate"],
            "a share between 0 and 1".into(),
        ));
    }
    Ok(())
}

/// An owner as tables and mart headers write it (`@finance`, `finance`): its `owners:` key.
pub fn owner_key(o: &str) -> &str {
    o.strip_prefix('@').unwrap_or(o)
}

/// `mon`..`sun`.
pub fn weekday(d: &str) -> Option<chrono::Weekday> {
    d.parse().ok()
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

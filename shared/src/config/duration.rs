//! Durations as pipeline.yaml and the command line write them (`50m`, `300s`, `2h`, `500ms`,
//! `2d`), and the serde readers of the fields that hold them.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// A duration on the command line or in pipeline.yaml: `50m`, `300s`, `2h`, `500ms`, or plain
/// seconds.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}`: expected a number and a unit (ms, s, m, h)"))?;
    Ok(match unit {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => return Err(format!("`{s}`: unknown unit `{unit}` (use ms, s, m or h)")),
    })
}

/// Duration strings of pipeline.yaml, which also takes days (`2d`).
pub fn parse_age(s: &str) -> std::result::Result<Duration, String> {
    match s.strip_suffix('d') {
        Some(n) => n
            .parse::<u64>()
            .map(|n| Duration::from_secs(n * 86_400))
            .map_err(|_| format!("`{s}`: expected a number and a unit (s, m, h, d)")),
        None => parse_duration(s),
    }
}

/// A timeout written like `10s`, `500ms`, `5m` (or plain seconds); never zero.
pub(super) fn timeout<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Spec {
        Seconds(u64),
        Text(String),
    }
    let parsed = match Spec::deserialize(d)? {
        Spec::Seconds(n) => Duration::from_secs(n),
        Spec::Text(t) => parse_duration(&t).map_err(serde::de::Error::custom)?,
    };
    if parsed.is_zero() {
        return Err(serde::de::Error::custom("must be more than 0"));
    }
    Ok(parsed)
}

/// An age or period (`parse_age`): `30m`, `4h`, `2d`.
pub(super) fn age<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    parse_age(&s).map_err(serde::de::Error::custom)
}

/// An age that may be left out (with `#[serde(default)]`).
pub(super) fn opt_age<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Duration>, D::Error> {
    age(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages() {
        assert_eq!(parse_age("2d").unwrap(), Duration::from_secs(172_800));
        assert_eq!(parse_age("26h").unwrap(), Duration::from_secs(93_600));
        assert!(parse_age("3w").is_err());
    }
}

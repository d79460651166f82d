//! Times as BigQuery takes them: UTC, microseconds, `YYYY-MM-DDTHH:MM:SS.ffffffZ`.

use chrono::{DateTime, Utc};

/// `t` in BigQuery's TIMESTAMP text form (what insertAll rows and staged values carry).
pub fn bigquery_timestamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// Now, in BigQuery's TIMESTAMP text form.
pub fn now_bigquery() -> String {
    bigquery_timestamp(Utc::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn microseconds_in_utc() {
        let t = DateTime::parse_from_rfc3339("2026-11-23T11:00:00.5+01:00")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(bigquery_timestamp(t), "2026-11-23T10:00:00.500000Z");
    }
}

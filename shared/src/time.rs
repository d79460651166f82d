//! Times as BigQuery takes them (UTC, microseconds, `YYYY-MM-DDTHH:MM:SS.ffffffZ`), and
//! durations as messages say them (`secs`: `10 s`, `250 ms`).

use chrono::{DateTime, Utc};

/// `t` in BigQuery's TIMESTAMP text form (what insertAll rows and staged values carry).
pub fn bigquery_timestamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// Now, in BigQuery's TIMESTAMP text form.
pub fn now_bigquery() -> String {
    bigquery_timestamp(Utc::now())
}

/// `10 s`, `1.5 s`, `250 ms`: a timeout as messages name it.
pub fn secs(d: std::time::Duration) -> String {
    if d.as_millis() < 1000 {
        format!("{} ms", d.as_millis())
    } else if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
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

    #[test]
    fn durations_read_as_people_write_them() {
        use std::time::Duration;
        assert_eq!(secs(Duration::from_secs(10)), "10 s");
        assert_eq!(secs(Duration::from_millis(1500)), "1.5 s");
        assert_eq!(secs(Duration::from_millis(250)), "250 ms");
    }
}

//! `monitor digest`: the daily message. It says the monitor is alive, then yesterday (in the
//! digest's time zone): runs per worker, failures, the DQ report (checks declared but not
//! computed listed as such), freshness, dead letters by reason, and query cost. The runs and
//! failures are the pipeline's: the monitor's own rows (one per check) are left out.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use sluice::bigquery::Param;
use sluice::config::Severity;
use sluice::ledger::Worker;
use sluice::Result;

use crate::alerts;
use crate::context::Monitor;
use crate::delivery::Channels;
use crate::findings::{self, Observed};
use crate::message::{cut, Message, Tone};

/// The day a digest reports, when not yesterday.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Day {
    /// Today, in the digest's time zone.
    Today,
    Date(NaiveDate),
}

impl Day {
    /// The date, in the digest's time zone `tz` as of `now`.
    pub fn date(self, tz: &str, now: DateTime<Utc>) -> NaiveDate {
        match self {
            Day::Date(d) => d,
            Day::Today => yesterday(tz, now + chrono::Duration::days(1)).0,
        }
    }
}

/// `monitor digest`: the digest of `day` (default yesterday) as a message, the ops tables and
/// views made first where missing.
pub async fn digest(m: &Monitor, now: DateTime<Utc>, day: Option<Day>) -> Result<Message> {
    m.ensure_tables().await?;
    crate::views::ensure(m, false).await?;
    let day = day.map(|d| d.date(&m.alerts.digest.time_zone, now));
    let d = data(m, now, day).await?;
    Ok(message(
        &d,
        &m.pipeline.name,
        &m.target.name,
        m.status_page_url(),
    ))
}

/// What the digest reports.
#[derive(Debug, Clone, PartialEq)]
pub struct DigestData {
    pub day: String,
    pub open_alerts: usize,
    /// worker → (success, failed, skipped).
    pub runs: BTreeMap<String, (u64, u64, u64)>,
    /// "worker unit (date): error".
    pub failures: Vec<String>,
    /// mart → (passed, failed names, not computed names).
    pub dq: BTreeMap<String, (u64, Vec<String>, Vec<String>)>,
    /// (table, status) of tables with an SLA.
    pub freshness: Vec<(String, String)>,
    /// (reason, messages).
    pub dead_letters: Vec<(String, u64)>,
    /// Bytes billed and jobs of the day, or why it is unknown.
    pub cost: std::result::Result<(f64, u64), String>,
}

/// Sends the digest to its channels (`alerts.digest.channels`, else the default ones): each
/// channel, in order, with what sending did.
pub async fn send(m: &Monitor, msg: &Message) -> Vec<(String, std::result::Result<(), String>)> {
    Channels::resolve(&m.alerts, &m.target)
        .await
        .send_digest(&m.alerts, msg)
        .await
}

/// Yesterday in `tz`, and the UTC instants it starts and ends at.
pub fn yesterday(tz: &str, now: DateTime<Utc>) -> (NaiveDate, DateTime<Utc>, DateTime<Utc>) {
    let zone: chrono_tz::Tz = tz.parse().unwrap_or(chrono_tz::UTC);
    day_window(
        tz,
        now.with_timezone(&zone).date_naive() - chrono::Duration::days(1),
    )
}

/// A day in `tz`, and the UTC instants it starts and ends at.
pub fn day_window(tz: &str, day: NaiveDate) -> (NaiveDate, DateTime<Utc>, DateTime<Utc>) {
    let tz: chrono_tz::Tz = tz.parse().unwrap_or(chrono_tz::UTC);
    let start = |d: NaiveDate| {
        let midnight = d.and_hms_opt(0, 0, 0).unwrap_or_default();
        tz.from_local_datetime(&midnight)
            .earliest()
            .map(|t| t.to_utc())
            .unwrap_or_else(|| midnight.and_utc())
    };
    (day, start(day), start(day + chrono::Duration::days(1)))
}

/// Reads the digest's data.
/// The day reported is `day`, else yesterday in the digest's time zone.
async fn data(m: &Monitor, now: DateTime<Utc>, day: Option<NaiveDate>) -> Result<DigestData> {
    let tz = &m.alerts.digest.time_zone;
    let (day, from, to) = match day {
        Some(d) => day_window(tz, d),
        None => yesterday(tz, now),
    };
    let ts = |n: &str, d: DateTime<Utc>| {
        Param::scalar(n, "TIMESTAMP", sluice::time::bigquery_timestamp(d))
    };
    let window = [ts("from", from), ts("to", to)];
    let runs = m.ops_table(sluice::ops::RUNS.name);
    let monitor = Worker::Monitor.as_str();
    let q = m.bq.query(&format!(
        "SELECT worker, COUNTIF(status = 'success') AS ok, COUNTIF(status = 'failed') AS failed, COUNTIF(status = 'skipped') AS skipped\n\
         FROM {runs} WHERE started_at >= @from AND started_at < @to AND worker != '{monitor}' GROUP BY worker"), &window).await?;
    let num = |v: Option<&str>| v.and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let runs_by_worker = findings::rows(&q, |g| {
        (
            g("worker").unwrap_or_default().to_string(),
            (num(g("ok")), num(g("failed")), num(g("skipped"))),
        )
    })
    .into_iter()
    .collect();
    let q = m.bq.query(&format!(
        "SELECT worker, COALESCE(CONCAT(source, '.', table_name), table_name, source, '') AS unit, CAST(logical_date AS STRING) AS ds, error\n\
         FROM {runs} WHERE status = 'failed' AND started_at >= @from AND started_at < @to AND worker != '{monitor}' ORDER BY started_at LIMIT 20"), &window).await?;
    let failures = findings::rows(&q, |g| {
        let ds = g("ds").map(|d| format!(" ({d})")).unwrap_or_default();
        format!(
            "{} {}{ds}: {}",
            g("worker").unwrap_or_default(),
            g("unit").unwrap_or_default(),
            cut(g("error").unwrap_or("failed"), 200)
        )
    });
    // The report covers the logical date the day's runs built (daily marts build the day
    // before) and any other date whose checks ran that day (backfills, reruns).
    let mut params = window.to_vec();
    // A daily mart built on `day` builds the day before: that logical date is expected.
    let expected = day - chrono::Duration::days(1);
    params.push(Param::date("ds", &expected.to_string()));
    let q = m.bq.query(&format!(
        "SELECT mart, CAST(ds AS STRING) AS ds, check_name, passed FROM {}\n\
         WHERE ds = @ds OR (recorded_at >= @from AND recorded_at < @to)\n\
         QUALIFY ROW_NUMBER() OVER (PARTITION BY mart, ds, check_name ORDER BY recorded_at DESC) = 1",
        m.ops_table(sluice::ops::DQ_RESULTS.name)), &params).await?;
    let results: Vec<(String, String, String, bool)> = findings::rows(&q, |g| {
        let t = |c: &str| g(c).unwrap_or_default().to_string();
        (
            t("mart"),
            t("ds"),
            t("check_name"),
            g("passed") == Some("true"),
        )
    });
    let dq = dq_report(m, &expected.to_string(), &results);
    let observed = Observed::read(&m.bq, &m.pipeline, &m.target, &m.alerts, now).await?;
    let freshness = findings::freshness(&m.declared, &observed, now)
        .into_iter()
        .filter(|f| f.warn_after.or(f.error_after).is_some())
        .map(|f| {
            (
                format!("{}.{}", f.dataset, f.table),
                f.status
                    .map(Severity::as_str)
                    .unwrap_or("fresh")
                    .to_string(),
            )
        })
        .collect();
    let q = m.bq.query(&format!(
        "SELECT reason_code, COUNT(DISTINCT message_id) AS n FROM {} WHERE received_at >= @from AND received_at < @to GROUP BY reason_code ORDER BY n DESC",
        m.ops_table(sluice::ops::DEAD_LETTER.name)), &window).await?;
    let dead_letters = findings::rows(&q, |g| {
        (
            g("reason_code").unwrap_or_default().to_string(),
            num(g("n")),
        )
    });
    let cost = if m.target.bigquery_endpoint.is_some() {
        Err("the BigQuery emulator records no bytes billed".to_string())
    } else {
        match m
            .bq
            .query(
                &format!(
                    "SELECT SUM(bytes_billed) AS b, SUM(jobs) AS j FROM {} WHERE day = @ds",
                    m.ops_table("cost_daily")
                ),
                &[Param::date("ds", &day.to_string())],
            )
            .await
        {
            Ok(q) => Ok((
                q.get(0, "b").and_then(|v| v.parse().ok()).unwrap_or(0.0),
                num(q.get(0, "j")),
            )),
            Err(e) => Err(cut(&e.into_message(), 200)),
        }
    };
    let open_alerts = alerts::read_state(&m.bq, &m.ops_table(sluice::ops::ALERTS.name), now)
        .await?
        .values()
        .filter(|i| i.status != "resolved")
        .count();
    Ok(DigestData {
        day: day.to_string(),
        open_alerts,
        runs: runs_by_worker,
        failures,
        dq,
        freshness,
        dead_letters,
        cost,
    })
}

/// Per mart and logical date ("finance.daily for 2026-12-02"): checks passed, the names of
/// those failed, and of those declared but not computed. `results` are (mart, ds, check,
/// passed); `day` (the logical date the day's runs build) is reported for every mart
/// mart-build runs, other dates where they have results.
pub fn dq_report(
    m: &Monitor,
    day: &str,
    results: &[(String, String, String, bool)],
) -> BTreeMap<String, (u64, Vec<String>, Vec<String>)> {
    let mut dq: BTreeMap<String, (u64, Vec<String>, Vec<String>)> = BTreeMap::new();
    for (id, mart) in &m.dag.marts {
        if mart.header.runner != sluice::marts::Runner::MartBuild {
            continue;
        }
        let mut dates: Vec<&str> = results
            .iter()
            .filter(|r| &r.0 == id)
            .map(|r| r.1.as_str())
            .collect();
        dates.push(day);
        dates.sort();
        dates.dedup();
        for ds in dates {
            for c in mart.fail_conditions.iter().chain(&mart.dq_metrics) {
                let e = dq.entry(format!("{id} for {ds}")).or_default();
                match results
                    .iter()
                    .find(|(m, d, n, _)| m == id && d == ds && n == &c.name)
                {
                    Some((_, _, _, true)) => e.0 += 1,
                    Some((_, _, n, false)) => e.1.push(n.clone()),
                    None => e.2.push(c.name.clone()),
                }
            }
        }
    }
    dq
}

/// The digest as a message.
pub fn message(
    d: &DigestData,
    pipeline: &str,
    target: &str,
    status_page: Option<String>,
) -> Message {
    let mut text = vec![format!(
        "sluice monitor is alive: {pipeline} on {target}. {} open alert{}.",
        d.open_alerts,
        if d.open_alerts == 1 { "" } else { "s" }
    )];
    let runs: Vec<String> = d
        .runs
        .iter()
        .map(|(w, (ok, failed, skipped))| {
            format!("{w}: {ok} ok, {failed} failed, {skipped} skipped")
        })
        .collect();
    text.push(format!(
        "Runs on {}: {}",
        d.day,
        if runs.is_empty() {
            "none".into()
        } else {
            runs.join(" · ")
        }
    ));
    if !d.failures.is_empty() {
        text.push(format!(
            "Failures:\n{}",
            d.failures
                .iter()
                .take(10)
                .map(|f| format!("• {f}"))
                .collect::<Vec<_>>()
                .join("\n")
        ));
    }
    let mut dq = vec![];
    for (mart, (passed, failed, missing)) in &d.dq {
        let mut line = format!("• {mart}: {passed} passed");
        if !failed.is_empty() {
            line.push_str(&format!(", failed: {}", failed.join(", ")));
        }
        if !missing.is_empty() {
            line.push_str(&format!(", not computed: {}", missing.join(", ")));
        }
        dq.push(line);
    }
    if !dq.is_empty() {
        text.push(format!("Data quality:\n{}", dq.join("\n")));
    }
    if !d.freshness.is_empty() {
        let stale: Vec<String> = d
            .freshness
            .iter()
            .filter(|(_, s)| s != "fresh")
            .map(|(t, s)| format!("{t} ({s})"))
            .collect();
        text.push(format!(
            "Freshness: {} of {} tables with an SLA fresh{}",
            d.freshness.len() - stale.len(),
            d.freshness.len(),
            if stale.is_empty() {
                String::new()
            } else {
                format!("; stale: {}", stale.join(", "))
            }
        ));
    }
    let dead: u64 = d.dead_letters.iter().map(|(_, n)| n).sum();
    text.push(if dead == 0 {
        "Dead letters: none.".into()
    } else {
        format!(
            "Dead letters: {dead} ({})",
            d.dead_letters
                .iter()
                .map(|(r, n)| format!("{r} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    });
    text.push(match &d.cost {
        Ok((bytes, jobs)) => format!(
            "Query cost: {jobs} jobs, {:.2} GiB billed, about {:.2} USD on demand.",
            bytes / 1073741824.0,
            bytes / 1099511627776.0 * 6.25
        ),
        Err(e) => format!("Query cost: unavailable ({e})."),
    });
    let failed: u64 = d.runs.values().map(|r| r.1).sum();
    Message {
        tone: Tone::Info,
        title: format!(
            "sluice daily digest for {}: {failed} failed run{}, {} open alert{}",
            d.day,
            if failed == 1 { "" } else { "s" },
            d.open_alerts,
            if d.open_alerts == 1 { "" } else { "s" }
        ),
        owner: None,
        text,
        facts: vec![],
        error: None,
        links: status_page
            .map(|u| vec![("Status page".to_string(), u)])
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yesterday_is_the_local_day_before() {
        let now = DateTime::parse_from_rfc3339("2026-12-03T00:30:00Z")
            .unwrap()
            .to_utc();
        let (d, from, to) = yesterday("Europe/Berlin", now);
        assert_eq!(d.to_string(), "2026-12-02");
        assert_eq!(from.to_rfc3339(), "2026-12-01T23:00:00+00:00");
        assert_eq!(to.to_rfc3339(), "2026-12-02T23:00:00+00:00");
        assert_eq!(yesterday("UTC", now).0.to_string(), "2026-12-02");
    }

    #[test]
    fn today_is_the_local_day() {
        let late = DateTime::parse_from_rfc3339("2026-12-03T23:30:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(
            Day::Today.date("Europe/Berlin", late).to_string(),
            "2026-12-04"
        );
        assert_eq!(Day::Today.date("UTC", late).to_string(), "2026-12-03");
        let d = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
        assert_eq!(Day::Date(d).date("Europe/Berlin", late), d);
    }

    #[test]
    fn the_digest_lists_checks_not_computed() {
        let mut d = DigestData {
            day: "2026-12-02".into(),
            open_alerts: 0,
            runs: BTreeMap::new(),
            failures: vec![],
            dq: BTreeMap::new(),
            freshness: vec![],
            dead_letters: vec![],
            cost: Err("no JOBS view".into()),
        };
        d.runs.insert("pg-copy".into(), (5, 1, 0));
        d.dq.insert(
            "finance.daily".into(),
            (
                3,
                vec!["unique_day".into()],
                vec!["row_count_change".into()],
            ),
        );
        d.freshness = vec![
            ("shop_raw.orders".into(), "fresh".into()),
            ("events.signup".into(), "warn".into()),
        ];
        d.dead_letters = vec![("schema_violation".into(), 4)];
        let m = message(&d, "shop", "prod", None);
        assert_eq!(
            m.title,
            "sluice daily digest for 2026-12-02: 1 failed run, 0 open alerts"
        );
        let all = m.text.join("\n");
        assert!(
            all.contains("sluice monitor is alive: shop on prod. 0 open alerts."),
            "{all}"
        );
        assert!(
            all.contains(
                "• finance.daily: 3 passed, failed: unique_day, not computed: row_count_change"
            ),
            "{all}"
        );
        assert!(
            all.contains("Freshness: 1 of 2 tables with an SLA fresh; stale: events.signup (warn)"),
            "{all}"
        );
        assert!(
            all.contains("Dead letters: 4 (schema_violation 4)"),
            "{all}"
        );
        assert!(
            all.contains("Query cost: unavailable (no JOBS view)."),
            "{all}"
        );
    }
}

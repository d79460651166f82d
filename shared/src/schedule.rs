//! When something runs: `daily` (the default), `hourly`, or a five-field cron expression
//! (minute hour day-of-month month day-of-week), which Cloud Scheduler and BigQuery
//! scheduled queries both take. The one schedule type of pg-copy's tables and of marts.

/// cdc-sync's schedule: every 5 minutes, each run reading at most 4 (Terraform's scheduler
/// job and the monitor's missed-run check both use it).
pub const CDC_CRON: &str = "*/5 * * * *";

/// A schedule, as pipeline.yaml and mart headers write it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub enum Schedule {
    #[default]
    Daily,
    Hourly,
    Cron(String),
}

impl TryFrom<String> for Schedule {
    type Error = String;

    fn try_from(s: String) -> Result<Schedule, String> {
        Schedule::parse(&s)
    }
}

impl Schedule {
    pub fn parse(s: &str) -> Result<Schedule, String> {
        match s.trim() {
            "daily" => return Ok(Schedule::Daily),
            "hourly" => return Ok(Schedule::Hourly),
            _ => {}
        }
        let fields: Vec<&str> = s.split_whitespace().collect();
        let names = ["minute", "hour", "day of month", "month", "day of week"];
        let ranges = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)];
        if fields.len() != 5 {
            return Err(format!(
                "schedule `{s}`: write daily, hourly, or a cron expression of five fields"
            ));
        }
        for ((field, name), (lo, hi)) in fields.iter().zip(names).zip(ranges) {
            for part in field.split(',') {
                let (range, step) = part.split_once('/').unwrap_or((part, "1"));
                let step_ok = step.parse::<u32>().is_ok_and(|n| n > 0);
                let range_ok = range == "*"
                    || range
                        .split('-')
                        .all(|n| n.parse::<u32>().is_ok_and(|n| (lo..=hi).contains(&n)));
                if !step_ok || !range_ok || range.is_empty() {
                    return Err(format!(
                        "schedule `{s}`: the {name} field `{field}` is not a cron field ({lo}-{hi}, *, lists, ranges, /steps)"
                    ));
                }
            }
        }
        Ok(Schedule::Cron(fields.join(" ")))
    }

    /// The last time at or before `t` (UTC, to the minute) this schedule fired, looking back
    /// up to 35 days; Cloud Scheduler runs sluice's crons in UTC. Cron's rule for the two day
    /// fields holds: when both are restricted, either may match.
    pub fn last_due(
        &self,
        t: chrono::DateTime<chrono::Utc>,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        use chrono::{Datelike, Timelike};
        let cron = self.cron();
        let f: Vec<&str> = cron.split_whitespace().collect();
        let set = |i: usize, lo: u32, hi: u32| field_set(f[i], lo, hi);
        let (min, hour, dom, mon, mut dow) = (
            set(0, 0, 59),
            set(1, 0, 23),
            set(2, 1, 31),
            set(3, 1, 12),
            set(4, 0, 7),
        );
        dow[0] |= dow[7];
        let (dom_any, dow_any) = (f[2] == "*", f[4] == "*");
        let mut at = t.with_second(0)?.with_nanosecond(0)?;
        for _ in 0..35 * 24 * 60 {
            let day_ok = {
                let d = dom[at.day() as usize];
                let w = dow[at.weekday().num_days_from_sunday() as usize];
                match (dom_any, dow_any) {
                    (true, true) => true,
                    (false, true) => d,
                    (true, false) => w,
                    (false, false) => d || w,
                }
            };
            if day_ok
                && mon[at.month() as usize]
                && hour[at.hour() as usize]
                && min[at.minute() as usize]
            {
                return Some(at);
            }
            at -= chrono::Duration::minutes(1);
        }
        None
    }

    /// As a cron expression: daily at 06:00 UTC (after the night's copies), hourly at a
    /// quarter past.
    pub fn cron(&self) -> String {
        match self {
            Schedule::Daily => "0 6 * * *".into(),
            Schedule::Hourly => "15 * * * *".into(),
            Schedule::Cron(c) => c.clone(),
        }
    }

    /// The minutes of the day (0 is midnight, UTC) at which it fires on the days it fires,
    /// ascending: what its minute and hour fields say; the day fields only choose the days.
    pub fn times_of_day(&self) -> Vec<u32> {
        let cron = self.cron();
        let f: Vec<&str> = cron.split_whitespace().collect();
        if f.len() != 5 {
            return vec![];
        }
        let (min, hour) = (field_set(f[0], 0, 59), field_set(f[1], 0, 23));
        (0..24 * 60)
            .filter(|t| hour[(t / 60) as usize] && min[(t % 60) as usize])
            .collect()
    }
}

/// Which values of `lo..=hi` one cron field (`*`, lists, ranges, `/steps`) selects, indexed by
/// value.
fn field_set(field: &str, lo: u32, hi: u32) -> Vec<bool> {
    let mut v = vec![false; hi as usize + 1];
    for part in field.split(',') {
        let (range, step) = part.split_once('/').unwrap_or((part, "1"));
        let step: u32 = step.parse().unwrap_or(1).max(1);
        let (a, b) = match range {
            "*" => (lo, hi),
            r => match r.split_once('-') {
                Some((a, b)) => (a.parse().unwrap_or(lo), b.parse().unwrap_or(hi)),
                None => {
                    let a = r.parse().unwrap_or(lo);
                    (a, if part.contains('/') { hi } else { a })
                }
            },
        };
        for n in (a..=b.min(hi)).step_by(step as usize) {
            v[n as usize] = true;
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_parse_or_say_which_field_is_wrong() {
        assert_eq!(Schedule::parse("daily").unwrap(), Schedule::Daily);
        assert_eq!(Schedule::parse("hourly").unwrap().cron(), "15 * * * *");
        assert_eq!(
            Schedule::parse("30 5 * * 1-5").unwrap(),
            Schedule::Cron("30 5 * * 1-5".into())
        );
        assert!(Schedule::parse("*/15 0,12 1 1-6/2 *").is_ok());
        assert!(Schedule::parse("weekly")
            .unwrap_err()
            .contains("five fields"));
        assert!(Schedule::parse("61 * * * *")
            .unwrap_err()
            .contains("minute field `61`"));
        let t = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().to_utc();
        let due = |c: &str, at: &str| {
            Schedule::parse(c)
                .unwrap()
                .last_due(t(at))
                .map(|d| d.to_rfc3339())
        };
        assert_eq!(
            due("daily", "2026-12-03T05:59:59Z").unwrap(),
            "2026-12-02T06:00:00+00:00"
        );
        assert_eq!(
            due("daily", "2026-12-03T06:00:30Z").unwrap(),
            "2026-12-03T06:00:00+00:00"
        );
        assert_eq!(
            due("*/5 * * * *", "2026-12-03T10:14:00Z").unwrap(),
            "2026-12-03T10:10:00+00:00"
        );
        // Thursday 3 December: the last weekday run at 05:30 is today's, the last Sunday one is the 29th.
        assert_eq!(
            due("30 5 * * 1-5", "2026-12-03T06:00:00Z").unwrap(),
            "2026-12-03T05:30:00+00:00"
        );
        assert_eq!(
            due("0 0 * * 7", "2026-12-03T06:00:00Z").unwrap(),
            "2026-11-29T00:00:00+00:00"
        );
        assert_eq!(
            due("0 0 1 * 0", "2026-12-03T06:00:00Z").unwrap(),
            "2026-12-01T00:00:00+00:00"
        );
        assert_eq!(due("0 12 31 2 *", "2026-12-03T06:00:00Z"), None);
        assert!(Schedule::parse("0 6 * * mon")
            .unwrap_err()
            .contains("day of week"));
    }

    #[test]
    fn times_of_day_come_from_the_minute_and_hour_fields() {
        let at = |c: &str| Schedule::parse(c).unwrap().times_of_day();
        assert_eq!(at("daily"), [360]);
        assert_eq!(at("hourly").len(), 24);
        assert_eq!(at("hourly")[..2], [15, 75]);
        assert_eq!(
            at("30 4,18 * * 1-5"),
            [270, 1110],
            "the day fields only choose days"
        );
        assert_eq!(at("*/5 * * * *").len(), 288);
        assert_eq!(at("0 */6 * * *"), [0, 360, 720, 1080]);
    }
}

//! When something runs: `daily` (the default), `hourly`, or a five-field cron expression
//! (minute hour day-of-month month day-of-week), which Cloud Scheduler and BigQuery
//! scheduled queries both take. The one schedule type of pg-copy's tables and of marts.

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

    /// As a cron expression: daily at 06:00 UTC (after the night's copies), hourly at a
    /// quarter past.
    pub fn cron(&self) -> String {
        match self {
            Schedule::Daily => "0 6 * * *".into(),
            Schedule::Hourly => "15 * * * *".into(),
            Schedule::Cron(c) => c.clone(),
        }
    }
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
        assert!(Schedule::parse("0 6 * * mon")
            .unwrap_err()
            .contains("day of week"));
    }
}

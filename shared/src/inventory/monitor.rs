//! The monitor's part of the inventory: its check every 10 minutes and its daily digest, in
//! the digest's time zone. It lands no tables of the pipeline (its own two of `ops` are in
//! the open `ops` dataset), and nothing expects its units: a stopped monitor cannot report
//! itself missing.

use super::{Inventory, Unit};
use crate::config::{clock_minutes, Pipeline};
use crate::ledger::Worker;
use crate::schedule::Schedule;
use crate::{Error, Result};

/// When `monitor check` runs.
const CHECK_CRON: &str = "*/10 * * * *";

/// `"08:30"` → `"30 8 * * *"`.
fn daily_cron(at: &str) -> Result<String> {
    let m = clock_minutes(at).ok_or_else(|| {
        Error::config(format!("alerts.digest.at: `{at}` is not a time like 08:30"))
    })?;
    Ok(format!("{} {} * * *", m % 60, m / 60))
}

/// The check and the digest; an error when the digest's time is not a time of day.
pub(super) fn add(inv: &mut Inventory, p: &Pipeline) -> Result<()> {
    let alerts = p.alerts.clone().unwrap_or_default();
    let digest = Schedule::Cron(daily_cron(&alerts.digest.at)?);
    let unit = |command: &'static str, schedule, time_zone| Unit {
        worker: Worker::Monitor,
        source: command.to_string(),
        table: None,
        schedule,
        time_zone,
        owner: None,
        command: Some(command),
        args: vec![],
        large: false,
        expected: false,
    };
    inv.units.extend([
        unit("check", Schedule::Cron(CHECK_CRON.into()), None),
        unit("digest", digest, Some(alerts.digest.time_zone)),
    ]);
    Ok(())
}

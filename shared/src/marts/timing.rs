//! When each mart runs: the schedule it is deployed with, derived from when what it reads is
//! ready. `export-deployment` (the crons of the mart-build jobs, the scheduled queries'
//! schedules), `export-scheduled-queries`, `plan` and the monitor's missed-run check all take a
//! mart's time from [`schedules`], so a mart never runs before its inputs and the heartbeat
//! expects it when the scheduler starts it.
//!
//! Times are UTC: Cloud Scheduler and BigQuery's Data Transfer Service run sluice's schedules in
//! UTC, and logical dates are UTC days. A `daily` mart (the default) and a mart with a cron
//! build yesterday; an `hourly` one runs every hour (a scheduled query then builds today so far).
//!
//! **When an input is ready** for yesterday, to a daily mart (to an hourly one: the minute of
//! the hour, the first run of each hour counting for an input that runs more often):
//! - a pg-copy table: the first run of its schedule at or after midnight (`daily` 06:00,
//!   `hourly` 00:15, a cron its first time of day);
//! - a cdc-sync replica or history: the first cdc-sync run at or after midnight (its freshness is
//!   "a run started after the day ended"; `crate::schedule::CDC_CRON` starts one at 00:00);
//! - an event table or view (streamed), an ops table: midnight, when the day has ended;
//! - an upstream mart: the first time of day it runs (every run was checked to come after its
//!   own inputs, so its first run builds yesterday whole);
//! - a table the pipeline does not land (another project's, or a `depends_on` made elsewhere):
//!   sluice cannot know, so it is taken to land like a copy of the mart's own cadence, daily at
//!   06:00 or hourly at :15, which is when `daily` and `hourly` ran before times were derived.
//!   Give such a mart an explicit cron when its input lands later.
//!
//! **The margin** is 30 minutes after the latest input is ready, and a derived time is rounded
//! up to 5 minutes. An input's time is when its run starts, not when it ends: the margin is the
//! time its run may take. A scheduled query has no other protection (BigQuery runs it at its
//! time, whatever the inputs hold); a mart-build job also waits (`--wait`) until the ledger says
//! each input is fresh, so an input later than its margin delays it rather than breaking it. A
//! day also needs the margin after midnight, so no daily mart runs before 00:30 (late events,
//! cdc-sync's first run of the day).
//!
//! A mart-build upstream that runs at the same cron is built in the same job, by the same
//! `mart-build run`, which builds in dependency order: no margin. So a mart reading only such a
//! mart joins its job rather than running 30 minutes later. An upstream of the other runner (a
//! scheduled query, or a mart read by a scheduled query) or in another job needs the margin.
//!
//! **Daily** (`daily`, or no `schedule`): a cron `M H * * *` at the earliest such time. A time
//! that would pass midnight is refused: the run would fall on the next day, whose yesterday's
//! inputs are not ready, and yesterday would never be built.
//!
//! **Hourly**: a cron `M * * * *` at the minute soonest after the latest input with at least the
//! margin after every input's minute (`hourly` pg-copy :15 gives :45; a daily input counts with
//! its own minute, 06:00 as :00). When no minute of the hour is far enough from all inputs (two
//! hourly inputs half an hour apart), it is refused.
//!
//! **An explicit cron** is deployed as written, after a check: every time of day it fires (its
//! minute and hour fields) must be at or after the daily time its inputs allow, since every run
//! builds yesterday; a cron that also fires earlier (`0 0,12 * * *`) would build yesterday before
//! its inputs are there. The refusal names the mart's file, the input, both times and the cron to
//! write instead (the allowed time with the mart's own day fields). What is not checked: the day
//! fields. A mart that runs on fewer days than its inputs (`0 7 * * 1`) is its own choice; one
//! that runs on days its input skips waits in mart-build until `--wait` fails it, and as a
//! scheduled query reads the input's last run.

use std::collections::{BTreeMap, BTreeSet};

use crate::catalog::Producer;
use crate::config::Pipeline;
use crate::schedule::{Schedule, CDC_CRON};
use crate::{Error, Result};

use crate::marts::dag::{producer, Dag};
use crate::marts::header::Runner;
use crate::marts::mart::Mart;

/// Minutes a mart runs after its latest input is ready (the input's run may take them).
pub const MARGIN_MINUTES: u32 = 30;
/// Derived times are rounded up to this many minutes.
const ROUND_TO: u32 = 5;
const DAY: u32 = 24 * 60;

/// The input that decided a mart's time: its latest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct After {
    /// `dataset.table` (with the project when the SQL names one).
    pub table: String,
    /// What lands it, and when: `pg-copy, daily at 06:00 UTC`.
    pub by: String,
    /// When it is ready, as this mart reads it: `06:00` (daily and cron marts), `:15` (hourly).
    pub ready: String,
    /// A mart-build upstream built in the same job, so without margin.
    pub same_run: bool,
}

/// The schedule a mart is deployed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timing {
    /// As the header writes it (`daily` when it says nothing): which day a run builds (an
    /// hourly scheduled query builds today, every other run yesterday).
    pub written: Schedule,
    /// When it runs: a five-field cron, UTC.
    pub cron: String,
    /// Derived here (false: the header's own cron, checked; or, for a refused mart, what the
    /// header says).
    pub derived: bool,
    /// Its latest input, when it reads any.
    pub after: Option<After>,
}

impl Timing {
    /// The deployed time as a schedule (always a cron).
    pub fn schedule(&self) -> Schedule {
        Schedule::Cron(self.cron.clone())
    }

    /// In words, for `plan`: `every day 06:30 UTC (derived; after shop_raw.orders, …)`: the
    /// latest input, which it runs at least the margin after.
    pub fn describe(&self) -> String {
        let when = match cron_shape(&self.cron) {
            Some(Shape::Daily(t)) => format!("every day {} UTC", hhmm(t)),
            Some(Shape::Hourly(m)) => format!("every hour at :{m:02}"),
            None => format!("`{}` UTC", self.cron),
        };
        let how = if self.derived {
            "derived"
        } else {
            "as written"
        };
        match &self.after {
            None => format!("{when} ({how})"),
            Some(a) if a.same_run => format!(
                "{when} ({how}; in the same run as {}, built first)",
                a.table
            ),
            Some(a) => format!(
                "{when} ({how}; after {}, ready at {}: {})",
                a.table, a.ready, a.by
            ),
        }
    }
}

/// Every mart's deployed schedule, in run order of the DAG.
#[derive(Debug, Clone, Default)]
pub struct Schedules {
    /// By `dataset.name`. A refused mart keeps what its header says (its cron, or `daily`'s
    /// 06:00 / `hourly`'s :15), so its readers and the monitor still have a time.
    pub marts: BTreeMap<String, Timing>,
    /// One message per refused mart, naming its file.
    pub refused: Vec<String>,
}

impl Schedules {
    /// The schedules, or every refusal as one config error (one line each).
    pub fn checked(self) -> Result<BTreeMap<String, Timing>> {
        if self.refused.is_empty() {
            Ok(self.marts)
        } else {
            Err(Error::config(self.refused.join("\n")))
        }
    }

    /// One line per selected mart in run order: its runner and when it runs; then refusals.
    pub fn text(&self, dag: &Dag, selected: &BTreeSet<String>) -> String {
        let mut out = String::new();
        let width = selected.iter().map(String::len).max().unwrap_or(0);
        for id in dag.order().filter(|id| selected.contains(*id)) {
            let Some(t) = self.marts.get(id) else {
                continue;
            };
            let runner = match dag.marts[id].header.runner {
                Runner::MartBuild => "mart-build",
                Runner::ScheduledQuery => "scheduled query",
            };
            out.push_str(&format!("  {id:<width$}  {runner:<15}  {}\n", t.describe()));
        }
        for r in &self.refused {
            out.push_str(&format!("  refused: {r}\n"));
        }
        out
    }
}

/// Derives or checks the schedule of every mart of `dag`, upstream marts first.
pub fn schedules(p: &Pipeline, dag: &Dag) -> Schedules {
    let mut out = Schedules::default();
    for id in dag.order() {
        let m = &dag.marts[id];
        let written = m.header.schedule.clone().unwrap_or_default();
        let needs = needs(p, dag, &out.marts, m, &written);
        let timing = match &written {
            Schedule::Daily => daily(&needs).map(|(t, after)| Timing {
                written: written.clone(),
                cron: format!("{} {} * * *", t % 60, t / 60),
                derived: true,
                after,
            }),
            Schedule::Hourly => hourly(&needs).map(|(minute, after)| Timing {
                written: written.clone(),
                cron: format!("{minute} * * * *"),
                derived: true,
                after,
            }),
            Schedule::Cron(c) => checked_cron(c, &needs).map(|after| Timing {
                written: written.clone(),
                cron: c.clone(),
                derived: false,
                after,
            }),
        };
        let timing = timing.unwrap_or_else(|why| {
            out.refused.push(format!("{}: {why}", m.file.display()));
            Timing {
                written: written.clone(),
                cron: written.cron(),
                derived: false,
                after: None,
            }
        });
        out.marts.insert(id.clone(), timing);
    }
    out
}

/// One input of a mart, with the times of day it is ready.
struct Need {
    table: String,
    by: String,
    /// Minutes of the day its runs start (every minute: continuous), ascending, never empty.
    fires: Vec<u32>,
    /// The cron of a mart-build upstream of a mart-build mart: at that same cron the two are
    /// one job, built in order in one run.
    joinable: Option<String>,
}

impl Need {
    /// Ready for yesterday: its first run at or after midnight.
    fn daily(&self) -> u32 {
        self.fires[0]
    }

    /// The minutes of the hour it is ready: its first run in each hour it runs.
    fn minutes(&self) -> BTreeSet<u32> {
        let mut seen = BTreeSet::new();
        self.fires
            .iter()
            .filter(|t| seen.insert(*t / 60))
            .map(|t| t % 60)
            .collect()
    }
}

/// What each input of `m` is and when it runs; upstream marts from `done`.
fn needs(
    p: &Pipeline,
    dag: &Dag,
    done: &BTreeMap<String, Timing>,
    m: &Mart,
    written: &Schedule,
) -> Vec<Need> {
    let mut out: Vec<Need> = vec![];
    let mut seen = BTreeSet::new();
    for r in &m.references {
        let table = r.name.to_string();
        if !seen.insert(table.clone()) {
            continue;
        }
        let short = r.name.short();
        let upstream = r
            .name
            .project
            .is_none()
            .then(|| dag.marts.get(&short).zip(done.get(&short)))
            .flatten();
        if let Some((up, t)) = upstream {
            let (runner, joinable) = match (up.header.runner, m.header.runner) {
                (Runner::MartBuild, Runner::MartBuild) => ("mart-build", Some(t.cron.clone())),
                (Runner::MartBuild, _) => ("mart-build", None),
                (Runner::ScheduledQuery, _) => ("scheduled query", None),
            };
            out.push(Need {
                table,
                by: format!("{runner} mart at `{}`", t.cron),
                fires: Schedule::Cron(t.cron.clone()).times_of_day(),
                joinable,
            });
            continue;
        }
        let continuous = || (0..DAY).collect::<Vec<u32>>();
        let (by, fires) = match producer(&dag.inputs, &r.name) {
            Some(Producer::PgCopy {
                source, table: t, ..
            }) => {
                let s = p
                    .sources
                    .get(source)
                    .and_then(|s| s.tables.get(t))
                    .map(|t| t.schedule.clone())
                    .unwrap_or_default();
                (format!("pg-copy, {}", words(&s)), s.times_of_day())
            }
            Some(Producer::Cdc { .. }) => (
                format!("cdc-sync, at `{CDC_CRON}`"),
                Schedule::Cron(CDC_CRON.into()).times_of_day(),
            ),
            Some(Producer::Events) => ("log-ingest, streamed".into(), continuous()),
            Some(Producer::Ops) => ("sluice's ops tables".into(), continuous()),
            None => {
                let like = match written {
                    Schedule::Hourly => Schedule::Hourly,
                    _ => Schedule::Daily,
                };
                (
                    format!(
                        "made outside the pipeline, taken to land like a copy {}",
                        words(&like)
                    ),
                    like.times_of_day(),
                )
            }
        };
        if fires.is_empty() {
            continue;
        }
        out.push(Need {
            table,
            by,
            fires,
            joinable: None,
        });
    }
    out
}

/// `daily at 06:00 UTC`, `hourly at :15`, ``at `0 2 * * 1-5` UTC``.
fn words(s: &Schedule) -> String {
    match (s, cron_shape(&s.cron())) {
        (Schedule::Daily, Some(Shape::Daily(t))) => format!("daily at {} UTC", hhmm(t)),
        (Schedule::Hourly, Some(Shape::Hourly(m))) => format!("hourly at :{m:02}"),
        _ => format!("at `{}` UTC", s.cron()),
    }
}

/// A cron that runs once a day (`M H * * *`) or once an hour (`M * * * *`).
pub(crate) enum Shape {
    /// Minutes after midnight.
    Daily(u32),
    /// Minute of the hour.
    Hourly(u32),
}

/// The shape of a cron, if it is one of the two (the other crons have no scheduled-query
/// form and name their jobs by their fields).
pub(crate) fn cron_shape(cron: &str) -> Option<Shape> {
    let f: Vec<&str> = cron.split_whitespace().collect();
    let num = |x: &str| x.parse::<u32>().ok();
    match f.as_slice() {
        [m, "*", "*", "*", "*"] => num(m).filter(|m| *m < 60).map(Shape::Hourly),
        [m, h, "*", "*", "*"] => {
            let (m, h) = (num(m).filter(|m| *m < 60)?, num(h).filter(|h| *h < 24)?);
            Some(Shape::Daily(h * 60 + m))
        }
        _ => None,
    }
}

/// `06:30` for 390 minutes after midnight.
fn hhmm(t: u32) -> String {
    format!("{:02}:{:02}", t / 60, t % 60)
}

fn round_up(t: u32) -> u32 {
    t.div_ceil(ROUND_TO) * ROUND_TO
}

/// The input ready latest for a daily run (the first of equals), if any.
fn latest(needs: &[Need]) -> Option<&Need> {
    needs.iter().rev().max_by_key(|n| n.daily())
}

fn after_daily(n: &Need, same_run: bool) -> After {
    After {
        table: n.table.clone(),
        by: n.by.clone(),
        ready: hhmm(n.daily()),
        same_run,
    }
}

/// The refusal of a time past midnight, naming the input that pushed it there.
fn past_midnight(n: Option<&Need>) -> String {
    match n {
        Some(n) => format!(
            "its input {} is ready at {} UTC ({}); {MARGIN_MINUTES} minutes later is past midnight, so the mart would run on the next day, when yesterday is another day whose inputs are not ready, and never build this one: move that input earlier",
            n.table,
            hhmm(n.daily()),
            n.by
        ),
        None => "a daily time past midnight".into(),
    }
}

/// A daily mart's time (minutes after midnight) and its latest input.
fn daily(needs: &[Need]) -> std::result::Result<(u32, Option<After>), String> {
    // Mart-build upstreams that run once a day can be joined: the same cron, no margin.
    let join_time = |n: &Need| match n.joinable.as_deref().map(cron_shape) {
        Some(Some(Shape::Daily(t))) => Some(t),
        _ => None,
    };
    let joins: Vec<(u32, &Need)> = needs
        .iter()
        .filter_map(|n| join_time(n).map(|t| (t, n)))
        .collect();
    let base = needs
        .iter()
        .filter(|n| join_time(n).is_none())
        .map(|n| n.daily() + MARGIN_MINUTES)
        .max()
        .unwrap_or(0)
        .max(MARGIN_MINUTES);
    let allowed = |t: u32| {
        t >= base
            && joins
                .iter()
                .all(|(j, _)| t == *j || t >= j + MARGIN_MINUTES)
    };
    let mut candidates = vec![round_up(base)];
    for (j, _) in &joins {
        candidates.extend([*j, round_up(j + MARGIN_MINUTES)]);
    }
    candidates.sort_unstable();
    // The largest candidate satisfies every input, so there is always one.
    let t = candidates.into_iter().find(|t| allowed(*t)).unwrap_or(DAY);
    if t >= DAY {
        return Err(past_midnight(latest(needs)));
    }
    let joined = joins.iter().find(|(j, _)| *j == t).map(|(_, n)| *n);
    let after = match joined {
        Some(n) if latest(needs).is_none_or(|l| l.daily() <= n.daily()) => {
            Some(after_daily(n, true))
        }
        _ => latest(needs).map(|n| after_daily(n, false)),
    };
    Ok((t, after))
}

/// An hourly mart's minute and its latest input.
fn hourly(needs: &[Need]) -> std::result::Result<(u32, Option<After>), String> {
    let join_minute = |n: &Need| match n.joinable.as_deref().map(cron_shape) {
        Some(Some(Shape::Hourly(m))) => Some(m),
        _ => None,
    };
    let sets: Vec<(BTreeSet<u32>, Option<u32>, &Need)> = needs
        .iter()
        .map(|n| (n.minutes(), join_minute(n), n))
        .collect();
    // Minutes since the latest input's run (None: not allowed); without inputs, since the
    // top of the hour.
    let since_latest = |t: u32| -> Option<u32> {
        if sets.is_empty() {
            return (t >= MARGIN_MINUTES).then_some(t);
        }
        let mut least = u32::MAX;
        for (minutes, join, _) in &sets {
            if *join == Some(t) {
                least = 0;
                continue;
            }
            for h in minutes {
                let gap = (t + 60 - h) % 60;
                if gap < MARGIN_MINUTES {
                    return None;
                }
                least = least.min(gap);
            }
        }
        Some(least)
    };
    let best = |step: usize| {
        (0..60)
            .step_by(step)
            .filter_map(|t| since_latest(t).map(|gap| (gap, t)))
            .min()
    };
    let Some((_, t)) = best(ROUND_TO as usize).or_else(|| best(1)) else {
        let each: Vec<String> = sets
            .iter()
            .map(|(minutes, _, n)| {
                let at: Vec<String> = minutes.iter().map(|m| format!(":{m:02}")).collect();
                format!("{} at {} ({})", n.table, at.join(", "), n.by)
            })
            .collect();
        return Err(format!(
            "no minute of the hour is {MARGIN_MINUTES} minutes after each of its inputs' runs: {}; read them in a daily mart, or move an input's schedule",
            each.join("; ")
        ));
    };
    // The input whose run comes last before the mart's minute.
    let after = sets
        .iter()
        .filter_map(|(minutes, join, n)| {
            if *join == Some(t) {
                return Some((0, n, true, t));
            }
            minutes
                .iter()
                .map(|h| ((t + 60 - h) % 60, n, false, *h))
                .min_by_key(|(gap, ..)| *gap)
        })
        .min_by_key(|(gap, ..)| *gap)
        .map(|(_, n, same_run, h)| After {
            table: n.table.clone(),
            by: n.by.clone(),
            ready: format!(":{h:02}"),
            same_run,
        });
    Ok((t, after))
}

/// Checks an explicit cron: each of its runs builds yesterday, so every time of day it fires
/// must be at or after its inputs' daily time plus the margin (none for a mart-build upstream
/// at this same cron: the same job).
fn checked_cron(cron: &str, needs: &[Need]) -> std::result::Result<Option<After>, String> {
    let outside: Vec<&Need> = needs
        .iter()
        .filter(|n| n.joinable.as_deref() != Some(cron))
        .collect();
    let latest_outside = outside.iter().rev().max_by_key(|n| n.daily()).copied();
    let earliest = latest_outside
        .map(|n| n.daily() + MARGIN_MINUTES)
        .unwrap_or(0)
        .max(MARGIN_MINUTES);
    if earliest >= DAY {
        return Err(past_midnight(latest_outside));
    }
    let fires = Schedule::Cron(cron.into()).times_of_day();
    let first = fires.first().copied().unwrap_or(0);
    if first < earliest {
        let f: Vec<&str> = cron.split_whitespace().collect();
        let at = round_up(earliest).min(DAY - 1);
        let write = format!("{} {} {} {} {}", at % 60, at / 60, f[2], f[3], f[4]);
        let runs = if fires.len() > 1 {
            format!("runs first at {} UTC", hhmm(first))
        } else {
            format!("runs at {} UTC", hhmm(first))
        };
        let why = match latest_outside {
            Some(n) => format!(
                "its input {} is ready at {} UTC ({}) and the mart needs {MARGIN_MINUTES} minutes after it",
                n.table,
                hhmm(n.daily()),
                n.by
            ),
            None => format!(
                "the day it builds ends at midnight and the mart needs {MARGIN_MINUTES} minutes after it"
            ),
        };
        return Err(format!(
            "schedule \"{cron}\" {runs}, too early to build yesterday: {why}; write `schedule: \"{write}\"` ({} UTC), or leave `schedule` out to have the time derived",
            hhmm(at)
        ));
    }
    let after = latest(needs).map(|n| after_daily(n, n.joinable.as_deref() == Some(cron)));
    Ok(after)
}

#[cfg(test)]
mod tests;

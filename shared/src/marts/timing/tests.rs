//! Unit tests of `timing`: crons, shapes and the order marts run in.
use std::path::Path;

use super::*;
use crate::marts::dag::Landed;

/// Daily `orders`, hourly `clicks`, a cdc replica of `users`.
const PIPELINE: &str = "name: t\nbigquery: { project: p }\nlake: { bucket: b }\n\
     sources:\n  shop:\n    dsn: { env: X }\n    dataset: raw\n    tables:\n      orders: { mode: incremental, watermark_column: at }\n      clicks: { mode: incremental, watermark_column: at, schedule: hourly }\n\
     \x20   cdc:\n      tables: [users]\n";

/// A mart `m.<name>` with more header lines, reading `reads`.
fn mart(name: &str, header: &str, reads: &[&str]) -> Mart {
    let from: Vec<String> = reads
        .iter()
        .map(|r| format!("SELECT 1 AS x FROM {r}"))
        .collect();
    let sql = format!(
        "/*\ndescription: {name}\n{header}\n*/\n{}",
        from.join("\nUNION ALL ")
    );
    Mart::parse(&sql, Path::new(&format!("marts/m/{name}.sql")), "m", name).unwrap()
}

fn derive(marts: Vec<Mart>) -> Schedules {
    let p = Pipeline::parse(PIPELINE, "t").unwrap();
    let dag = Dag::build(marts, &Landed::of(&p, Path::new("."))).unwrap();
    schedules(&p, &dag)
}

fn crons(s: &Schedules) -> Vec<(&str, &str)> {
    s.marts
        .iter()
        .map(|(k, t)| (k.as_str(), t.cron.as_str()))
        .collect()
}

/// The repository's pipeline.yaml and marts/.
fn sample(edit: impl Fn(&Path, String) -> String) -> (Pipeline, Dag) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let p = Pipeline::load(&root.join("pipeline.yaml")).unwrap();
    let marts: Vec<Mart> = crate::marts::dag::load_dir(&root.join("marts"))
        .unwrap()
        .into_iter()
        .map(|m| {
            let text = std::fs::read_to_string(&m.file).unwrap();
            let file = m.file.strip_prefix(&root).unwrap_or(&m.file).to_path_buf();
            let text = edit(&file, text);
            Mart::parse(&text, &file, &m.id.dataset, &m.id.table).unwrap()
        })
        .collect();
    let dag = Dag::build(marts, &Landed::of(&p, &root)).unwrap();
    (p, dag)
}

#[test]
fn the_sample_marts_run_after_their_inputs() {
    let (p, dag) = sample(|_, text| text);
    let s = schedules(&p, &dag);
    assert_eq!(s.refused, Vec::<String>::new());
    // pg-copy copies every shop table daily at 06:00; events and ops are ready at midnight.
    assert_eq!(
        crons(&s),
        [
            ("finance.daily_revenue", "30 6 * * *"),
            ("finance.payments_by_provider", "30 6 * * *"),
            ("growth.first_orders", "30 6 * * *"),
            ("growth.retention_cohort", "30 6 * * *"),
            ("growth.signup_funnel", "30 6 * * *"),
            ("product.user_daily_activity", "30 6 * * *"),
        ]
    );
    let funnel = s.marts["growth.signup_funnel"].after.clone().unwrap();
    assert!(
        funnel.same_run && funnel.table == "growth.first_orders",
        "{funnel:?}"
    );
    let payments = &s.marts["finance.payments_by_provider"];
    assert_eq!(
        payments.describe(),
        "every day 06:30 UTC (derived; after shop_raw.payments, ready at 06:00: pg-copy, daily at 06:00 UTC)"
    );
    // Every mart runs at least the margin after each pg-copy input's run.
    for (id, m) in &dag.marts {
        let at = Schedule::Cron(s.marts[id].cron.clone()).times_of_day()[0];
        for r in &m.references {
            if let Some(Producer::PgCopy { source, table, .. }) = producer(&dag.inputs, &r.name) {
                let copy = p.sources[source].tables[table].schedule.times_of_day()[0];
                assert!(
                    at >= copy + MARGIN_MINUTES,
                    "{id} at {at}, {table} at {copy}"
                );
            }
        }
    }
}

#[test]
fn the_sample_scheduled_query_at_04_30_is_refused_naming_mart_input_and_times() {
    let (p, dag) = sample(|file, text| {
        if file.ends_with("payments_by_provider.sql") {
            text.replacen(
                "runner: scheduled_query\n",
                "runner: scheduled_query\nschedule: \"30 4 * * *\"\n",
                1,
            )
        } else {
            text
        }
    });
    let e = schedules(&p, &dag).checked().unwrap_err().into_message();
    assert_eq!(
        e,
        "marts/finance/payments_by_provider.sql: schedule \"30 4 * * *\" runs at 04:30 UTC, too early to build yesterday: \
         its input shop_raw.payments is ready at 06:00 UTC (pg-copy, daily at 06:00 UTC) and the mart needs 30 minutes after it; \
         write `schedule: \"30 6 * * *\"` (06:30 UTC), or leave `schedule` out to have the time derived"
    );
}

#[test]
fn hourly_inputs_set_hourly_and_daily_marts() {
    let s = derive(vec![
        mart("hourly", "schedule: hourly", &["raw.clicks"]),
        mart("daily", "", &["raw.clicks"]),
        mart("both", "schedule: hourly", &["raw.clicks", "raw.orders"]),
        mart("reader", "schedule: hourly", &["m.hourly"]),
    ]);
    assert_eq!(s.refused, Vec::<String>::new());
    assert_eq!(
        crons(&s),
        [
            // Ready after the first hourly copy past midnight, 00:15.
            ("m.both", "45 * * * *"),
            ("m.daily", "45 0 * * *"),
            // 30 minutes after each :15 copy.
            ("m.hourly", "45 * * * *"),
            // An hourly mart-build upstream at :45 is the same job.
            ("m.reader", "45 * * * *"),
        ]
    );
    assert_eq!(
        s.marts["m.hourly"].describe(),
        "every hour at :45 (derived; after raw.clicks, ready at :15: pg-copy, hourly at :15)"
    );
    assert!(s.marts["m.reader"].after.as_ref().unwrap().same_run);
}

#[test]
fn an_hourly_mart_between_inputs_half_an_hour_apart_is_refused() {
    let s = derive(vec![
        mart(
            "q",
            "schedule: hourly\nrunner: scheduled_query",
            &["raw.clicks"],
        ),
        mart("late", "schedule: hourly", &["raw.clicks", "m.q"]),
    ]);
    assert_eq!(s.marts["m.q"].cron, "45 * * * *");
    let e = s.checked().unwrap_err().into_message();
    assert!(
        e.starts_with("marts/m/late.sql: no minute of the hour is 30 minutes after each of its inputs' runs: raw.clicks at :15"),
        "{e}"
    );
    assert!(
        e.contains("m.q at :45 (scheduled query mart at `45 * * * *`)"),
        "{e}"
    );
}

#[test]
fn replicas_are_ready_shortly_after_midnight() {
    let s = derive(vec![
        mart("live", "", &["shop_replica.users"]),
        mart("live_hourly", "schedule: hourly", &["shop_replica.users"]),
        mart("ledger", "", &["ops.runs"]),
    ]);
    assert_eq!(
        crons(&s),
        [
            ("m.ledger", "30 0 * * *"),
            ("m.live", "30 0 * * *"),
            ("m.live_hourly", "30 * * * *"),
        ]
    );
    assert!(s.marts["m.live"]
        .describe()
        .contains("shop_replica.users, ready at 00:00: cdc-sync, at `*/5 * * * *`"));
}

#[test]
fn an_upstream_scheduled_query_needs_the_margin_a_same_job_upstream_does_not() {
    let s = derive(vec![
        mart("q", "runner: scheduled_query", &["raw.orders"]),
        mart("after_q", "", &["m.q"]),
        mart("built", "", &["raw.orders"]),
        mart("after_built", "", &["m.built", "shop_replica.users"]),
        mart("q_after_built", "runner: scheduled_query", &["m.built"]),
        mart("elsewhere", "", &["otherproject.ds.t"]),
    ]);
    assert_eq!(s.refused, Vec::<String>::new());
    assert_eq!(
        crons(&s),
        [
            ("m.after_built", "30 6 * * *"),
            ("m.after_q", "0 7 * * *"),
            ("m.built", "30 6 * * *"),
            ("m.elsewhere", "30 6 * * *"),
            ("m.q", "30 6 * * *"),
            ("m.q_after_built", "0 7 * * *"),
        ]
    );
    assert!(s.marts["m.elsewhere"]
        .describe()
        .contains("made outside the pipeline, taken to land like a copy daily at 06:00 UTC"));
}

#[test]
fn explicit_crons_are_checked_at_every_time_of_day_they_fire() {
    let s = derive(vec![
        mart("weekly", "schedule: \"0 7 * * 1\"", &["raw.orders"]),
        mart("often", "schedule: \"0 0,6,12,18 * * *\"", &["raw.orders"]),
        mart("same_job", "schedule: \"0 7 * * 1\"", &["m.weekly"]),
    ]);
    assert_eq!(s.marts["m.weekly"].cron, "0 7 * * 1");
    assert_eq!(
        s.marts["m.same_job"].cron, "0 7 * * 1",
        "one job: no margin"
    );
    assert_eq!(
        s.refused,
        ["marts/m/often.sql: schedule \"0 0,6,12,18 * * *\" runs first at 00:00 UTC, too early to build yesterday: \
          its input raw.orders is ready at 06:00 UTC (pg-copy, daily at 06:00 UTC) and the mart needs 30 minutes after it; \
          write `schedule: \"30 6 * * *\"` (06:30 UTC), or leave `schedule` out to have the time derived"]
    );
    // A refused mart keeps its header's cron, for its readers and the monitor.
    assert_eq!(s.marts["m.often"].cron, "0 0,6,12,18 * * *");
}

#[test]
fn a_time_past_midnight_is_refused() {
    let s = derive(vec![
        mart("late", "schedule: \"45 23 * * *\"", &["raw.orders"]),
        mart("joins", "", &["m.late"]),
        mart("q", "runner: scheduled_query", &["m.late"]),
    ]);
    assert_eq!(s.marts["m.late"].cron, "45 23 * * *");
    assert_eq!(
        s.marts["m.joins"].cron, "45 23 * * *",
        "a mart-build reader shares the upstream's run"
    );
    assert_eq!(
        s.refused,
        ["marts/m/q.sql: its input m.late is ready at 23:45 UTC (mart-build mart at `45 23 * * *`); \
          30 minutes later is past midnight, so the mart would run on the next day, when yesterday is another day whose inputs are not ready, \
          and never build this one: move that input earlier"]
    );
}

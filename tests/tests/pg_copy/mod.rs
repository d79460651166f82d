//! pg-copy end to end: Postgres → lake → BigQuery emulator, one file per feature: every type
//! (`types`), incremental copies (`incremental`), date ranges (`backfill`), the lake as the
//! source of a load (`from_lake`), parallel ranges (`parallel`) and failures (`failures`).

use pg_copy::{Options, Summary};
use sluice::config::Pipeline;
use sluice::ledger::Status;
use sluice_tests::d;

mod backfill;
mod failures;
mod from_lake;
mod incremental;
mod parallel;
mod types;

/// Runs pg-copy on the `local` target as of 2024-03-10, with options set by `f`.
async fn copy(p: &Pipeline, f: impl FnOnce(&mut Options)) -> Summary {
    let mut o = Options::new("local");
    o.today = Some(d("2024-03-10"));
    f(&mut o);
    pg_copy::run(p, &o).await.expect("the run itself starts")
}

/// Every unit of the run succeeded; the first that did not is named with its error.
fn assert_ok(s: &Summary) {
    for u in &s.units {
        assert_eq!(
            u.status,
            Status::Success,
            "{}: {:?}",
            u.unit.label(),
            u.error
        );
    }
}

/// `orders`: one a minute over three days from 2024-03-01 (1,440 a day).
const ORDERS: &str = "
CREATE TABLE orders (id bigint PRIMARY KEY, amount numeric(10,2) NOT NULL, created_at timestamptz NOT NULL);
INSERT INTO orders SELECT g, g / 100.0, timestamptz '2024-03-01 00:00:00+00' + g * interval '1 minute'
FROM generate_series(0, 3 * 1440 - 1) g;
";

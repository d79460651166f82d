//! The lake as the source of a load: `--from-lake` reloads a day without Postgres,
//! `--lake-only` writes the files and loads nothing.

use pg_copy::{Dates, Options};
use sluice_tests::{d, TestEnv};

use super::{assert_ok, copy, ORDERS};

#[tokio::test]
async fn from_lake_reloads_without_postgres() {
    let env = TestEnv::new().await;
    env.sql(ORDERS).await;
    let p = env.pipeline("orders: { mode: incremental, watermark_column: created_at }");
    assert_ok(&copy(&p, |o| o.dates = Dates::One(d("2024-03-02"))).await);
    let manifest = env
        .lake_bucket_dir()
        .join("raw/src/orders/dt=2024-03-02/_manifest.json");
    assert!(manifest.exists(), "{}", manifest.display());

    // Postgres loses the table; the lake still has the day.
    env.sql("DROP TABLE orders").await;
    env.bq_query(&format!(
        "DELETE FROM {} WHERE TRUE",
        env.bq_table("src", "orders")
    ))
    .await;
    let s = copy(&p, |o| {
        o.dates = Dates::One(d("2024-03-02"));
        o.from_lake = true;
    })
    .await;
    assert_ok(&s);
    assert_eq!(env.bq_count("src", "orders", "").await, 1440);

    // A date never copied is a clear error, not an empty partition.
    let s = copy(&p, |o| {
        o.dates = Dates::One(d("2024-03-05"));
        o.from_lake = true;
    })
    .await;
    let err = s.units[0].error.clone().unwrap();
    assert!(
        err.contains("no complete copy in the lake")
            && err.contains("dt=2024-03-05/_manifest.json"),
        "{err}"
    );
}

#[tokio::test]
async fn lake_only_writes_the_files_and_loads_nothing_until_from_lake() {
    let env = TestEnv::new().await;
    env.sql(ORDERS).await;
    let p = env.pipeline("orders: { mode: incremental, watermark_column: created_at }");
    let s = copy(&p, |o| {
        o.dates = Dates::One(d("2024-03-02"));
        o.lake_only = true;
        o.verify = true;
    })
    .await;
    assert_ok(&s);
    assert_eq!((s.units[0].rows_read, s.units[0].rows_loaded), (1440, 0));
    assert_eq!(
        s.units[0].postgres_rows,
        Some(1440),
        "--verify compares with the lake"
    );
    let manifest = env
        .lake_bucket_dir()
        .join("raw/src/orders/dt=2024-03-02/_manifest.json");
    assert!(manifest.exists(), "{}", manifest.display());
    // Nothing in BigQuery: no table, no ledger (a mart must not take the day as loaded).
    for (ds, table) in [("src", "orders"), ("ops", "runs")] {
        let t = env.bq.get_table(&env.dataset(ds), table).await.unwrap();
        assert!(t.is_none(), "{ds}.{table} exists after --lake-only");
    }
    // Later, the load reads only the lake.
    env.sql("DROP TABLE orders").await;
    let s = copy(&p, |o| {
        o.dates = Dates::One(d("2024-03-02"));
        o.from_lake = true;
    })
    .await;
    assert_ok(&s);
    assert_eq!(env.bq_count("src", "orders", "").await, 1440);
    // Both at once is refused.
    let both = pg_copy::run(&p, &{
        let mut o = Options::new("local");
        o.lake_only = true;
        o.from_lake = true;
        o
    })
    .await
    .err()
    .unwrap()
    .to_string();
    assert!(
        both.contains("--lake-only") && both.contains("--from-lake"),
        "{both}"
    );
}

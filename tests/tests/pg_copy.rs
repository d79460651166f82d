//! pg-copy end to end: Postgres → lake → BigQuery emulator.

use pg_copy::{Dates, Options, Summary};
use serde_json::Value;
use sluice::config::Pipeline;
use sluice::ledger::Status;
use sluice_tests::{d, TestEnv};

async fn copy(p: &Pipeline, f: impl FnOnce(&mut Options)) -> Summary {
    let mut o = Options::new("local");
    o.today = Some(d("2024-03-10"));
    f(&mut o);
    pg_copy::run(p, &o).await.expect("the run itself starts")
}

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

/// Every check column of every row must be `true`; failures are listed by name.
fn assert_checks(rows: &sluice::bigquery::QueryRows) {
    let mut failed = vec![];
    for (r, row) in rows.rows.iter().enumerate() {
        for (c, v) in row.iter().enumerate().skip(1) {
            if v != &Value::String("true".into()) {
                failed.push(format!("row {} ({}): {} = {v}", r, row[0], rows.columns[c]));
            }
        }
    }
    assert!(!rows.rows.is_empty(), "no rows");
    assert!(failed.is_empty(), "checks failed:\n{}", failed.join("\n"));
}

const ALL_TYPES: &str = r#"
CREATE TYPE mood AS ENUM ('sad', 'happy');
CREATE TABLE all_types (
  id int PRIMARY KEY,
  i2 smallint, i4 integer, i8 bigint,
  n numeric(12,2), nb numeric(30,10), nw numeric, ns numeric(40,5),
  f4 real, f8 double precision,
  txt text, vc varchar(10), ch char(5), nm name,
  b boolean,
  d date, ts timestamp, tstz timestamptz, tm time,
  iv interval, u uuid,
  j json, jb jsonb, by bytea,
  ip inet, net cidr, ip6 inet,
  arr integer[], tarr text[], narr numeric(6,2)[],
  en mood
);
INSERT INTO all_types VALUES
 (1, -32768, 2147483647, -9223372036854775808,
  1234567890.12, 12345678901234567890.1234567891, 3.5, 123456789012345678901234567890123.12345,
  0.1, 1.7976931348623157e308,
  'Zoë 山田 ✓', 'abc', 'ab', 'pg_name',
  true,
  '2024-02-29', '2024-01-02 03:04:05.678901', '2024-01-02 03:04:05.678901+02', '23:59:59.999999',
  '1 year 2 mons 3 days 04:05:06.5', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
  '{"b": 1, "a": [1, 2]}', '{"k": "Zoë", "n": null, "arr": [true]}', '\x00ff10',
  '192.168.0.1', '10.0.0.0/8', '2001:db8::1/64',
  '{1,NULL,3}', '{"a b","c"}', '{1.50,-2.25}',
  'happy'),
 (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'NaN', '-Infinity', NULL, NULL, NULL, NULL, NULL,
  'infinity', 'infinity', '-infinity', '24:00:00', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, '{}', NULL, NULL),
 (3, 0, 0, 0, -0.01, -1, 0, 0, 'Infinity', -0.0, '', '', '', '', false,
  '-infinity', '-infinity', 'infinity', '00:00:00', '-1 hours -30 minutes', NULL, 'null', '[]', '',
  NULL, NULL, NULL, '{}', '{NULL}', '{}', 'sad');
"#;

#[tokio::test]
async fn every_mapped_type_round_trips_with_values_compared() {
    let env = TestEnv::new().await;
    env.sql(ALL_TYPES).await;
    let p = env.pipeline("all_types: { mode: full, numeric_as_string: [ns] }");
    let s = copy(&p, |_| {}).await;
    assert_ok(&s);
    let u = &s.units[0];
    assert_eq!((u.rows_read, u.rows_loaded), (3, 3));

    let t = env.bq_table("src", "all_types");
    let schema = env
        .bq
        .get_table(&env.dataset("src"), "all_types")
        .await
        .unwrap()
        .unwrap();
    let types: Vec<String> = schema["schema"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "{}:{}:{}",
                f["name"].as_str().unwrap(),
                f["type"].as_str().unwrap(),
                f["mode"].as_str().unwrap_or("NULLABLE")
            )
        })
        .collect();
    for expected in [
        "i2:INTEGER",
        "n:NUMERIC",
        "nb:BIGNUMERIC",
        "nw:BIGNUMERIC",
        "ns:STRING",
        "f4:FLOAT",
        "txt:STRING",
        "b:BOOLEAN",
        "d:DATE",
        "ts:DATETIME",
        "tstz:TIMESTAMP",
        "tm:TIME",
        "iv:STRING",
        "u:STRING",
        "j:JSON",
        "jb:JSON",
        "by:BYTES",
        "ip:STRING",
        "arr:INTEGER:REPEATED",
        "tarr:STRING:REPEATED",
        "narr:NUMERIC:REPEATED",
        "en:STRING",
    ] {
        assert!(
            types.iter().any(|t| t.starts_with(expected)),
            "{expected} not in {types:?}"
        );
    }

    let row1 = env
        .bq_query(&format!(
            r#"SELECT id,
              i2 = -32768 AS i2, i4 = 2147483647 AS i4, i8 = -9223372036854775808 AS i8,
              n = NUMERIC '1234567890.12' AS n, nb = BIGNUMERIC '12345678901234567890.1234567891' AS nb,
              nw = BIGNUMERIC '3.5' AS nw, ns = '123456789012345678901234567890123.12345' AS ns,
              f4 = 0.1 AS f4, f8 = 1.7976931348623157e308 AS f8,
              txt = 'Zoë 山田 ✓' AS txt, vc = 'abc' AS vc, ch = 'ab   ' AS ch, nm = 'pg_name' AS nm, b AS b,
              d = DATE '2024-02-29' AS d, ts = DATETIME '2024-01-02 03:04:05.678901' AS ts,
              tstz = TIMESTAMP '2024-01-02 01:04:05.678901+00' AS tstz, tm = TIME '23:59:59.999999' AS tm,
              iv = 'P1Y2M3DT4H5M6.5S' AS iv, u = 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11' AS u,
              JSON_VALUE(j, '$.b') = '1' AND JSON_VALUE(j, '$.a[1]') = '2' AS j,
              JSON_VALUE(jb, '$.k') = 'Zoë' AND JSON_VALUE(jb, '$.arr[0]') = 'true' AS jb,
              by = FROM_HEX('00ff10') AS by,
              ip = '192.168.0.1' AS ip, net = '10.0.0.0/8' AS net, ip6 = '2001:db8::1/64' AS ip6,
              ARRAY_LENGTH(arr) = 2 AND arr[OFFSET(0)] = 1 AND arr[OFFSET(1)] = 3 AS arr,
              ARRAY_TO_STRING(tarr, '|') = 'a b|c' AS tarr,
              ARRAY_LENGTH(narr) = 2 AND narr[OFFSET(1)] = NUMERIC '-2.25' AS narr,
              en = 'happy' AS en
            FROM {t} WHERE id = 1"#
        ))
        .await;
    assert_checks(&row1);

    let row2 = env
        .bq_query(&format!(
            r#"SELECT id,
              i2 IS NULL AND i4 IS NULL AND i8 IS NULL AS ints, n IS NULL AND nb IS NULL AND nw IS NULL AND ns IS NULL AS nums,
              IS_NAN(f4) AS f4, f8 = CAST('-inf' AS FLOAT64) AS f8,
              txt IS NULL AND vc IS NULL AND ch IS NULL AND b IS NULL AS texts,
              d = DATE '9999-12-31' AS d_inf, ts = DATETIME '9999-12-31 23:59:59.999999' AS ts_inf,
              tstz = TIMESTAMP '0001-01-01 00:00:00+00' AS tstz_minf, tm = TIME '23:59:59.999999' AS tm_24,
              iv IS NULL AND u IS NULL AND j IS NULL AND jb IS NULL AND by IS NULL AND ip IS NULL AS rest,
              ARRAY_LENGTH(arr) = 0 AS null_array_is_empty, ARRAY_LENGTH(tarr) = 0 AS empty_array,
              en IS NULL AS en
            FROM {t} WHERE id = 2"#
        ))
        .await;
    assert_checks(&row2);

    let row3 = env
        .bq_query(&format!(
            r#"SELECT id,
              n = NUMERIC '-0.01' AS n, nb = BIGNUMERIC '-1' AS nb, ns = '0.00000' AS ns,
              f4 = CAST('inf' AS FLOAT64) AS f4, f8 = 0 AS f8, txt = '' AS txt, ch = '     ' AS ch, NOT b AS b,
              d = DATE '0001-01-01' AS d_minf, ts = DATETIME '0001-01-01 00:00:00' AS ts_minf,
              tstz = TIMESTAMP '9999-12-31 23:59:59.999999+00' AS tstz_inf, tm = TIME '00:00:00' AS tm,
              iv = 'PT-1H-30M' AS iv, by = b'' AS by,
              ARRAY_LENGTH(tarr) = 0 AS null_elements_dropped, en = 'sad' AS en
            FROM {t} WHERE id = 3"#
        ))
        .await;
    assert_checks(&row3);

    // The ledger says what was adjusted on the way.
    let ledger = env
        .bq_query(&format!(
            "SELECT status, rows_in, rows_loaded, JSON_VALUE(details, '$.decode.values_clamped') AS clamped, \
             JSON_VALUE(details, '$.decode.null_array_elements_dropped') AS dropped FROM {}",
            env.bq_table("ops", "runs")
        ))
        .await;
    assert_eq!(ledger.get(0, "status"), Some("success"));
    assert_eq!(ledger.get(0, "rows_loaded"), Some("3"));
    // ±infinity dates and timestamps (6) and 24:00:00 (1).
    assert_eq!(ledger.get(0, "clamped"), Some("7"));
    assert_eq!(ledger.get(0, "dropped"), Some("2"));
}

const ORDERS: &str = "
CREATE TABLE orders (id bigint PRIMARY KEY, amount numeric(10,2) NOT NULL, created_at timestamptz NOT NULL);
INSERT INTO orders SELECT g, g / 100.0, timestamptz '2024-03-01 00:00:00+00' + g * interval '1 minute'
FROM generate_series(0, 3 * 1440 - 1) g;
";

#[tokio::test]
async fn incremental_replaces_one_partition_and_reruns_idempotently() {
    let env = TestEnv::new().await;
    env.sql(ORDERS).await;
    let p = env.pipeline("orders: { mode: incremental, watermark_column: created_at }");
    let s = copy(&p, |o| o.dates = Dates::One(d("2024-03-02"))).await;
    assert_ok(&s);
    assert_eq!(s.units[0].rows_loaded, 1440);
    assert_eq!(env.bq_count("src", "orders", "").await, 1440);

    // The same date again: same rows, no duplicates.
    assert_ok(&copy(&p, |o| o.dates = Dates::One(d("2024-03-02"))).await);
    assert_eq!(env.bq_count("src", "orders", "").await, 1440);
    let ids = env
        .bq_query(&format!(
            "SELECT COUNT(DISTINCT id) AS n, MIN(id) AS lo, MAX(id) AS hi FROM {}",
            env.bq_table("src", "orders")
        ))
        .await;
    assert_eq!(
        (ids.get(0, "n"), ids.get(0, "lo"), ids.get(0, "hi")),
        (Some("1440"), Some("1440"), Some("2879"))
    );

    // Another date lands beside it; then the source changes and a rerun replaces only its date.
    assert_ok(&copy(&p, |o| o.dates = Dates::One(d("2024-03-01"))).await);
    env.sql("DELETE FROM orders WHERE id % 2 = 0 AND created_at < '2024-03-02'; UPDATE orders SET amount = 0 WHERE id = 1")
        .await;
    assert_ok(&copy(&p, |o| o.dates = Dates::One(d("2024-03-01"))).await);
    assert_eq!(
        env.bq_count("src", "orders", "WHERE DATE(created_at) = '2024-03-01'")
            .await,
        720
    );
    assert_eq!(
        env.bq_count("src", "orders", "WHERE DATE(created_at) = '2024-03-02'")
            .await,
        1440
    );
    assert_eq!(
        env.bq_count("src", "orders", "WHERE id = 1 AND amount = 0")
            .await,
        1
    );

    let table = env
        .bq
        .get_table(&env.dataset("src"), "orders")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(table["timePartitioning"]["field"], "created_at");
}

#[tokio::test]
async fn backfill_copies_each_date_and_records_each_in_the_ledger() {
    let env = TestEnv::new().await;
    env.sql(ORDERS).await;
    env.sql("CREATE TABLE users (id int PRIMARY KEY, name text); INSERT INTO users SELECT g, 'u' || g FROM generate_series(1, 50) g")
        .await;
    let p = env.pipeline(
        "orders: { mode: incremental, watermark_column: created_at }\nusers: { mode: full }",
    );
    let s = copy(&p, |o| {
        o.dates = Dates::Range(d("2024-02-29"), d("2024-03-03"));
        o.concurrency = 3;
    })
    .await;
    assert_ok(&s);
    let labels: Vec<String> = s
        .units
        .iter()
        .map(|u| format!("{} {}", u.unit.label(), u.rows_loaded))
        .collect();
    assert_eq!(
        labels,
        [
            "src.orders 2024-02-29 0",
            "src.orders 2024-03-01 1440",
            "src.orders 2024-03-02 1440",
            "src.orders 2024-03-03 1440",
            "src.users 2024-03-03 50"
        ]
    );
    assert_eq!(env.bq_count("src", "orders", "").await, 3 * 1440);
    let ledger = env
        .bq_query(&format!(
            "SELECT COUNT(*) AS n, COUNT(DISTINCT run_id) AS runs, SUM(rows_loaded) AS rows FROM {} WHERE status = 'success' AND worker = 'pg-copy'",
            env.bq_table("ops", "runs")
        ))
        .await;
    assert_eq!(
        (
            ledger.get(0, "n"),
            ledger.get(0, "runs"),
            ledger.get(0, "rows")
        ),
        (Some("5"), Some("1"), Some("4370"))
    );
}

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

#[tokio::test]
async fn parallel_ranges_copy_every_row_once() {
    let env = TestEnv::new().await;
    env.sql(
        "CREATE TABLE big (id bigint PRIMARY KEY, pad text);
         INSERT INTO big SELECT g, md5(g::text) || md5((g * 7)::text) FROM generate_series(1, 60000) g;
         DELETE FROM big WHERE id % 7 = 0; ANALYZE big;",
    )
    .await;
    let p = env.pipeline("big: { mode: full }");
    let s = copy(&p, |o| {
        // Three ranges even on a small table and a two-core machine.
        o.extract.parallel = Some(3);
        o.extract.cpus = 3;
        o.extract.range_pages = 1;
        o.extract.batch_rows = 4096;
        o.extract.limits.file_bytes = 256 * 1024;
        o.extract.limits.row_group_rows = 4096;
    })
    .await;
    assert_ok(&s);
    assert!(
        s.units[0].files > 3,
        "files rolled by size and range: {}",
        s.units[0].files
    );
    let expected_sum = env.pg_i64("SELECT sum(id)::int8 FROM big").await;
    let r = env
        .bq_query(&format!(
            "SELECT COUNT(*) AS n, COUNT(DISTINCT id) AS d, SUM(id) AS s FROM {}",
            env.bq_table("src", "big")
        ))
        .await;
    assert_eq!(r.get(0, "n"), Some("51429"));
    assert_eq!(r.get(0, "d"), Some("51429"));
    assert_eq!(r.get(0, "s"), Some(expected_sum.to_string().as_str()));
}

#[tokio::test]
async fn a_failed_copy_leaves_the_previous_table_intact() {
    let env = TestEnv::new().await;
    env.sql("CREATE TABLE t (id int PRIMARY KEY, at timestamp); INSERT INTO t SELECT g, '2024-01-01' FROM generate_series(1, 10) g")
        .await;
    let p = env.pipeline("t: { mode: full }");
    assert_ok(&copy(&p, |_| {}).await);
    // A timestamp BigQuery cannot hold fails the next copy in the middle of decoding.
    env.sql("INSERT INTO t VALUES (11, '20000-01-01')").await;
    let s = copy(&p, |_| {}).await;
    let err = s.units[0].error.clone().unwrap();
    assert!(
        err.contains("t.at") || err.contains("src.t") && err.contains("at"),
        "{err}"
    );
    assert!(err.contains("outside BigQuery's range"), "{err}");
    assert_eq!(env.bq_count("src", "t", "").await, 10);
    let ledger = env
        .bq_query(&format!(
            "SELECT status, error FROM {} WHERE status = 'failed'",
            env.bq_table("ops", "runs")
        ))
        .await;
    assert!(ledger
        .get(0, "error")
        .unwrap()
        .contains("outside BigQuery's range"));
}

#[tokio::test]
async fn bad_dsn_missing_table_and_unsupported_type_are_clear_errors() {
    let env = TestEnv::new().await;
    env.sql("CREATE TABLE shapes (id int PRIMARY KEY, area polygon, name text); INSERT INTO shapes VALUES (1, '((0,0),(1,1),(1,0))', 'tri')")
        .await;

    // Unsupported type: names table and column.
    let p = env.pipeline("shapes: { mode: full }");
    let err = copy(&p, |_| {}).await.units[0].error.clone().unwrap();
    assert!(
        err.contains("public.shapes.area") && err.contains("polygon"),
        "{err}"
    );

    // ... unless the table says to skip such columns.
    let p = env.pipeline("shapes: { mode: full, on_unsupported: skip }");
    assert_ok(&copy(&p, |_| {}).await);
    let t = env
        .bq
        .get_table(&env.dataset("src"), "shapes")
        .await
        .unwrap()
        .unwrap();
    let names: Vec<&str> = t["schema"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["id", "name"]);

    // Missing table.
    let p = env.pipeline("nope: { mode: full }");
    let err = copy(&p, |_| {}).await.units[0].error.clone().unwrap();
    assert!(err.contains("table public.nope does not exist"), "{err}");

    // Bad DSN: a database that does not exist, then a port nothing listens on.
    std::env::set_var(env.dsn_var(), env.stack.dsn("no_such_db"));
    let p = env.pipeline("shapes: { mode: full }");
    let err = copy(&p, |_| {}).await.units[0].error.clone().unwrap();
    assert!(
        err.contains("connecting to source src") && err.contains("no_such_db"),
        "{err}"
    );
    std::env::set_var(
        env.dsn_var(),
        "postgres://postgres:secret-pw@127.0.0.1:1/db",
    );
    let err = copy(&p, |_| {}).await.units[0].error.clone().unwrap();
    assert!(err.contains("127.0.0.1:1/db"), "{err}");
    assert!(!err.contains("secret-pw"), "the password leaked: {err}");
}

#[tokio::test]
async fn new_source_columns_are_added_to_the_partitioned_table() {
    let env = TestEnv::new().await;
    env.sql(ORDERS).await;
    let p = env.pipeline("orders: { mode: incremental, watermark_column: created_at }");
    assert_ok(&copy(&p, |o| o.dates = Dates::One(d("2024-03-01"))).await);
    env.sql("ALTER TABLE orders ADD COLUMN coupon text; UPDATE orders SET coupon = 'SPRING' WHERE id % 10 = 0").await;
    assert_ok(&copy(&p, |o| o.dates = Dates::One(d("2024-03-02"))).await);
    assert_eq!(
        env.bq_count("src", "orders", "WHERE coupon = 'SPRING'")
            .await,
        144
    );
    assert_eq!(
        env.bq_count(
            "src",
            "orders",
            "WHERE DATE(created_at) = '2024-03-01' AND coupon IS NULL"
        )
        .await,
        1440
    );

    // A type change cannot be applied in place: the error says what changed.
    env.sql("ALTER TABLE orders ALTER COLUMN coupon TYPE integer USING NULL")
        .await;
    let err = copy(&p, |o| o.dates = Dates::One(d("2024-03-02")))
        .await
        .units[0]
        .error
        .clone()
        .unwrap();
    assert!(
        err.contains("coupon: NULLABLE STRING → NULLABLE INTEGER"),
        "{err}"
    );
}

//! Every type pg-copy maps, copied and compared value by value in BigQuery.

use serde_json::Value;
use sluice_tests::TestEnv;

use super::{assert_ok, copy};

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

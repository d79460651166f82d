//! A table copied over parallel key ranges: every row once.

use sluice_tests::TestEnv;

use super::{assert_ok, copy};

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

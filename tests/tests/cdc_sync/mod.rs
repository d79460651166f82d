//! cdc-sync end to end: Postgres slot → lake → staging → MERGE into replicas in the emulator.
//!
//! Replicas are checked against the source row for row and column by column: pg-copy (whose
//! values are checked against Postgres in its own tests) copies the source tables next to the
//! replicas, and every column of every row is compared in BigQuery.
//!
//! One file per feature: the snapshot and the stream of every type and of TOASTed values
//! (`stream`), schema changes and append-only tables (`schema_changes`), crashes and kills at
//! any step (`crashes`), errors that stop a run by name (`errors`), breaks in a source's
//! continuity (`continuity`) and WAL kept bounded meanwhile (`wal`), `cdc-sync status` proving
//! replicas by content (`verify`, `verify_types`), and the rights a role needs (`rights`).

use sluice::config::Pipeline;
use sluice_tests::TestEnv;

mod continuity;
mod crashes;
mod errors;
mod rights;
mod schema_changes;
mod stream;
mod verify;
mod verify_types;
mod wal;

/// Copies `table` with pg-copy into `src` and compares it with its replica: every column of
/// every live row (`_sluice_deleted` rows do not count as live).
async fn assert_replica_matches(env: &TestEnv, p: &Pipeline, table: &str, key: &str) {
    let mut o = pg_copy::Options::new("local");
    o.tables = vec![table.to_string()];
    let s = pg_copy::run(p, &o).await.expect("pg-copy");
    assert_eq!(s.failed(), 0, "pg-copy of {table}: {:?}", s.units[0].error);
    // (column, comparable expression over alias `x`): the emulator's TO_JSON_STRING renders
    // BYTES from a subquery differently, so BYTES compare through base64.
    let cols: Vec<(String, String)> = env
        .pg
        .query(
            "SELECT attname::text, atttypid = 'bytea'::regtype FROM pg_attribute WHERE attrelid = $1::text::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            &[&table],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let c: String = r.get(0);
            let bytes: bool = r.get(1);
            let e = if bytes {
                format!("TO_JSON_STRING(TO_BASE64(x.`{c}`))")
            } else {
                format!("TO_JSON_STRING(x.`{c}`)")
            };
            (c, e)
        })
        .collect();
    let same = |c: &str, e: &str| {
        format!(
            "{} = {} AS `same_{c}`",
            e.replace("x.", "a."),
            e.replace("x.", "b.")
        )
    };
    let all: Vec<String> = cols
        .iter()
        .map(|(c, e)| {
            same(c, e)
                .split(" AS ")
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    let src = env.bq_table("src", table);
    let rep = env.bq_table("src_replica", table);
    let live = format!("(SELECT * FROM {rep} WHERE NOT IFNULL(_sluice_deleted, FALSE))");
    let sql = format!(
        "SELECT CAST(COALESCE(a.`{key}`, b.`{key}`) AS STRING) AS k, a.`{key}` IS NULL AS missing_in_source, b.`{key}` IS NULL AS missing_in_replica, {cols}
         FROM {src} a FULL OUTER JOIN {live} b ON a.`{key}` = b.`{key}`
         WHERE a.`{key}` IS NULL OR b.`{key}` IS NULL OR NOT ({all})
         ORDER BY 1 LIMIT 20",
        cols = cols
            .iter()
            .map(|(c, e)| same(c, e))
            .collect::<Vec<_>>()
            .join(", "),
        all = all.join(" AND "),
    );
    let diff = env.bq_query(&sql).await;
    assert!(
        diff.rows.is_empty(),
        "replica of {table} differs from the source:\ncolumns {:?}\n{:#?}",
        diff.columns,
        diff.rows
    );
    let n_src = env.pg_i64(&format!("SELECT count(*) FROM {table}")).await as u64;
    let n_rep = env
        .bq_count(
            "src_replica",
            table,
            "WHERE NOT IFNULL(_sluice_deleted, FALSE)",
        )
        .await;
    assert_eq!(n_src, n_rep, "live rows of {table}");
}

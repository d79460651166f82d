//! Comparing a table with its replica by content: both engines checksum buckets of keys with
//! one aggregate query each, and only where buckets differ do they look deeper (256 buckets
//! per bucket) until the differing buckets are small enough to fetch each row's key and hash
//! and diff them here. An equal table costs one query per side.
//!
//! `canonical` writes a row's text identically in both SQL dialects, `checksum` the queries
//! over it, `narrow` decides which buckets to look into and diffs the fetched rows.

mod canonical;
mod checksum;
mod narrow;

use serde::Serialize;
use sluice::bigquery::BigQuery;
use sluice::postgres::PgConnection;
use sluice::{Error, ErrorKind, Result};

pub(crate) use canonical::{Column, JsonKeys, Replica};
pub use narrow::Difference;

use checksum::Side;
use narrow::{Bucket, Buckets, Search, LEVEL_HEX};

/// How many differing keys a report names.
pub const FIRST_KEYS: usize = 10;
/// How many differing buckets a report names.
const FIRST_BUCKETS: usize = 10;

/// The queries comparing one table: the same questions in both dialects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    pg: Side,
    bq: Side,
}

impl Plan {
    /// For `columns` (in the table's order) with the key `key` (indices into them), read from
    /// the Postgres table `pg_from` and the live rows of the replica `bq_from` (quoted).
    pub(crate) fn new(
        columns: &[Column],
        key: &[usize],
        pg_from: String,
        bq_from: String,
        keys: JsonKeys,
    ) -> Plan {
        let key_columns: Vec<Column> = key.iter().map(|&i| columns[i].clone()).collect();
        Plan {
            pg: Side {
                from: pg_from,
                filter: None,
                key: canonical::pg_text(&key_columns, keys),
                row: canonical::pg_text(columns, keys),
            },
            bq: Side {
                from: bq_from,
                filter: Some(format!("NOT IFNULL({}, FALSE)", crate::sql::DELETED)),
                key: canonical::bq_text(&key_columns),
                row: canonical::bq_text(columns),
            },
        }
    }
}

/// Queries run on each side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Queries {
    pub postgres: u32,
    pub bigquery: u32,
}

/// The keys found to differ.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Found {
    /// Differing keys: exact when every differing bucket was looked into, else at least.
    pub differing: u64,
    pub exact: bool,
    /// The first differing keys (canonical text: columns joined by `|`), in key order.
    pub first: Vec<(String, Difference)>,
    /// The differing buckets looked into (prefixes of the key's hash), the first few.
    pub buckets: Vec<String>,
}

/// One table compared.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Checked {
    pub postgres_rows: u64,
    pub replica_rows: u64,
    pub queries: Queries,
    /// None when every bucket is equal, or when not narrowed.
    pub found: Option<Found>,
    pub equal: bool,
}

fn bad_answer(what: &str, detail: String) -> Error {
    Error::bigquery(what, ErrorKind::Permanent, detail)
}

async fn pg_buckets(pg: &PgConnection, sql: &str, what: &str) -> Result<Buckets> {
    let rows = pg.query(what, sql, &[]).await?;
    let mut out = Buckets::new();
    for r in rows {
        let (b, n, s): (String, i64, String) = (r.get(0), r.get(1), r.get(2));
        let sum = checksum::parse_sum(&s).ok_or_else(|| Error::Postgres {
            context: what.to_string(),
            message: format!("a bucket's hash sum is not a whole number: {s}"),
            kind: ErrorKind::Permanent,
            source: None,
        })?;
        out.insert(
            b,
            Bucket {
                rows: n as u64,
                sum,
            },
        );
    }
    Ok(out)
}

async fn bq_buckets(bq: &BigQuery, sql: &str, what: &str) -> Result<Buckets> {
    let r = bq.query(sql, &[]).await.map_err(|e| e.within(what))?;
    let mut out = Buckets::new();
    for i in 0..r.rows.len() {
        let (b, n, s) = (r.get(i, "b"), r.get(i, "n"), r.get(i, "s"));
        let (Some(b), Some(rows), Some(sum)) = (
            b,
            n.and_then(|n| n.parse().ok()),
            s.and_then(checksum::parse_sum),
        ) else {
            return Err(bad_answer(
                what,
                format!("unexpected bucket row {:?}", r.rows[i]),
            ));
        };
        out.insert(b.to_string(), Bucket { rows, sum });
    }
    Ok(out)
}

/// Both sides' answers to one question, asked at once.
async fn both<A, B>(
    pg: impl std::future::Future<Output = Result<A>>,
    bq: impl std::future::Future<Output = Result<B>>,
    table: &str,
) -> Result<(A, B)> {
    let started = std::time::Instant::now();
    let seconds = move || started.elapsed().as_secs_f64();
    let ((a, pg_s), (b, bq_s)) = tokio::join!(async { (pg.await, seconds()) }, async {
        (bq.await, seconds())
    });
    tracing::debug!(
        table,
        postgres_s = pg_s,
        bigquery_s = bq_s,
        "checksum queries answered"
    );
    Ok((a?, b?))
}

fn total(b: &Buckets) -> u64 {
    b.values().map(|b| b.rows).sum()
}

/// Compares a table with its replica; with `narrow` false, only the first level (rows and
/// whether equal).
pub(crate) async fn compare(
    pg: &PgConnection,
    bq: &BigQuery,
    table: &str,
    plan: &Plan,
    narrow: bool,
) -> Result<Checked> {
    let what_pg = format!("checksumming {table} in Postgres");
    let what_bq = format!("checksumming the replica of {table}");
    let mut queries = Queries::default();
    let mut level = |pg_sql: String, bq_sql: String| {
        queries.postgres += 1;
        queries.bigquery += 1;
        (pg_sql, bq_sql)
    };
    let (p, q) = level(
        checksum::pg_buckets(&plan.pg, LEVEL_HEX, &[]),
        checksum::bq_buckets(&plan.bq, LEVEL_HEX, &[]),
    );
    let (pg0, bq0) = both(
        pg_buckets(pg, &p, &what_pg),
        bq_buckets(bq, &q, &what_bq),
        table,
    )
    .await?;
    let mut checked = Checked {
        postgres_rows: total(&pg0),
        replica_rows: total(&bq0),
        queries: Queries::default(),
        found: None,
        equal: pg0 == bq0,
    };
    if checked.equal || !narrow {
        checked.queries = queries;
        return Ok(checked);
    }
    let mut search = Search::default();
    let mut split = search.level(&pg0, &bq0, LEVEL_HEX);
    let mut len = LEVEL_HEX;
    while !split.is_empty() {
        len += LEVEL_HEX;
        let (p, q) = level(
            checksum::pg_buckets(&plan.pg, len, &split),
            checksum::bq_buckets(&plan.bq, len, &split),
        );
        let (a, b) = both(
            pg_buckets(pg, &p, &what_pg),
            bq_buckets(bq, &q, &what_bq),
            table,
        )
        .await?;
        split = search.level(&a, &b, len);
    }
    let (p, q) = level(
        checksum::pg_rows(&plan.pg, &search.fetch),
        checksum::bq_rows(&plan.bq, &search.fetch),
    );
    let (ours, r) = both(
        async {
            let rows = pg
                .query(&format!("reading differing rows of {table}"), &p, &[])
                .await?;
            Ok(rows
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect::<Vec<(String, String)>>())
        },
        async {
            bq.query(&q, &[])
                .await
                .map_err(|e| e.within(&format!("reading differing rows of the replica of {table}")))
        },
        table,
    )
    .await?;
    let theirs: Vec<(String, String)> = (0..r.rows.len())
        .filter_map(|i| Some((r.get(i, "k")?.to_string(), r.get(i, "h")?.to_string())))
        .collect();
    let diff = narrow::diff_rows(&ours, &theirs);
    let found = diff.len() as u64;
    let exact = !search.sampled && found > 0;
    checked.queries = queries;
    checked.found = Some(Found {
        differing: if exact {
            found
        } else {
            found.max(search.at_least)
        },
        exact,
        first: diff.into_iter().take(FIRST_KEYS).collect(),
        buckets: search.fetch.into_iter().take(FIRST_BUCKETS).collect(),
    });
    Ok(checked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice::types::{BqType, PgKind};

    #[test]
    fn a_plan_reads_live_replica_rows_and_keys_by_their_own_columns() {
        let cols = vec![
            Column {
                name: "a".into(),
                kind: PgKind::Text,
                pg_type: "text".into(),
                replica: Replica::Of(BqType::String),
            },
            Column {
                name: "id".into(),
                kind: PgKind::Int4,
                pg_type: "int4".into(),
                replica: Replica::Of(BqType::Int64),
            },
        ];
        let p = Plan::new(
            &cols,
            &[1],
            "\"public\".\"t\"".into(),
            "`p.d.t`".into(),
            JsonKeys::Sorted,
        );
        assert_eq!(p.pg.key, r#"COALESCE(("id")::text, '\N')"#);
        assert_eq!(p.bq.key, r"IFNULL(CAST(`id` AS STRING), '\\N')");
        assert!(p
            .pg
            .row
            .ends_with(r#" || '|' || COALESCE(("id")::text, '\N')"#));
        assert_eq!(
            p.bq.filter.as_deref(),
            Some("NOT IFNULL(_sluice_deleted, FALSE)")
        );
        assert_eq!(p.pg.filter, None);
    }
}

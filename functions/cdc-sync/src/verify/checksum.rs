//! The two questions each side answers, as pure functions of the canonical texts: per bucket
//! of keys, how many rows and the sum of their hashes; and, for a few buckets, each row's key
//! and hash.
//!
//! A key's bucket is a prefix of the hex MD5 of its canonical text, not a range of keys: text
//! keys sort differently under Postgres collations and in BigQuery, hashes do not. A row's hash
//! is the MD5 of its canonical text; a bucket sums the first 15 hex digits (60 bits) of its
//! rows' hashes, as NUMERIC in BigQuery (an INT64 sum would overflow) and numeric in Postgres.

/// Hex digits of a row's hash summed per bucket: 60 bits.
pub(crate) const SUM_HEX: usize = 15;

/// Where one side's rows are and how to write their texts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Side {
    /// The quoted table.
    pub from: String,
    /// Which of its rows count (the replica's live rows), if not all.
    pub filter: Option<String>,
    /// The canonical text of a row's key, and of the whole row.
    pub key: String,
    pub row: String,
}

/// Buckets are prefixes of hex digits: nothing else is ever spliced into the SQL.
fn hex(buckets: &[String]) -> impl Iterator<Item = &String> {
    buckets
        .iter()
        .filter(|b| !b.is_empty() && b.bytes().all(|c| c.is_ascii_hexdigit()))
}

/// `(substr(h, 1, 2) IN ('0a', …) OR substr(h, 1, 4) IN (…))`, with the engine's substring
/// function; `TRUE` for no buckets (every key).
fn within(substr: &str, h: &str, buckets: &[String]) -> String {
    let mut by_len: std::collections::BTreeMap<usize, Vec<String>> = Default::default();
    for b in hex(buckets) {
        by_len
            .entry(b.len())
            .or_default()
            .push(format!("'{}'", b.to_ascii_lowercase()));
    }
    if by_len.is_empty() {
        return "TRUE".into();
    }
    let parts: Vec<String> = by_len
        .iter()
        .map(|(len, bs)| format!("{substr}({h}, 1, {len}) IN ({})", bs.join(", ")))
        .collect();
    format!("({})", parts.join(" OR "))
}

fn pg_where(s: &Side) -> String {
    s.filter
        .as_ref()
        .map(|f| format!(" WHERE {f}"))
        .unwrap_or_default()
}

/// Postgres: per bucket of `len` hex digits (among those starting with one of `parents`, or
/// all), `b`, rows `n` and hash sum `s` (text).
pub(crate) fn pg_buckets(s: &Side, len: usize, parents: &[String]) -> String {
    format!(
        "SELECT substr(kh, 1, {len}) AS b, count(*) AS n, sum(('x' || substr(rh, 1, {SUM_HEX}))::bit({bits})::int8)::text AS s \
         FROM (SELECT md5(convert_to({key}, 'UTF8')) AS kh, md5(convert_to({row}, 'UTF8')) AS rh FROM {from}{filter}) _sluice_h \
         WHERE {within} GROUP BY 1",
        bits = SUM_HEX * 4,
        key = s.key,
        row = s.row,
        from = s.from,
        filter = pg_where(s),
        within = within("substr", "kh", parents),
    )
}

/// Postgres: key `k` and row hash `h` of every row in these buckets.
pub(crate) fn pg_rows(s: &Side, buckets: &[String]) -> String {
    format!(
        "SELECT k, md5(convert_to(r, 'UTF8')) AS h \
         FROM (SELECT {key} AS k, {row} AS r FROM {from}{filter}) _sluice_r \
         WHERE {within}",
        key = s.key,
        row = s.row,
        from = s.from,
        filter = pg_where(s),
        within = within("substr", "md5(convert_to(k, 'UTF8'))", buckets),
    )
}

fn bq_where(s: &Side) -> String {
    pg_where(s)
}

/// BigQuery: as `pg_buckets`.
pub(crate) fn bq_buckets(s: &Side, len: usize, parents: &[String]) -> String {
    format!(
        "SELECT SUBSTR(kh, 1, {len}) AS b, COUNT(*) AS n, \
         CAST(SUM(CAST(CAST(CONCAT('0x', SUBSTR(rh, 1, {SUM_HEX})) AS INT64) AS NUMERIC)) AS STRING) AS s \
         FROM (SELECT TO_HEX(MD5({key})) AS kh, TO_HEX(MD5({row})) AS rh FROM {from}{filter}) \
         WHERE {within} GROUP BY b",
        key = s.key,
        row = s.row,
        from = s.from,
        filter = bq_where(s),
        within = within("SUBSTR", "kh", parents),
    )
}

/// BigQuery: as `pg_rows`.
pub(crate) fn bq_rows(s: &Side, buckets: &[String]) -> String {
    format!(
        "SELECT k, TO_HEX(MD5(r)) AS h FROM (SELECT {key} AS k, {row} AS r FROM {from}{filter}) \
         WHERE {within}",
        key = s.key,
        row = s.row,
        from = s.from,
        filter = bq_where(s),
        within = within("SUBSTR", "TO_HEX(MD5(k))", buckets),
    )
}

/// A hash sum as either engine writes it: digits, maybe with a zero fraction (the emulator's
/// NUMERIC keeps its scale).
pub(crate) fn parse_sum(s: &str) -> Option<u128> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if !frac.bytes().all(|c| c == b'0') {
        return None;
    }
    int.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side() -> Side {
        Side {
            from: "\"public\".\"t\"".into(),
            filter: None,
            key: "K".into(),
            row: "R".into(),
        }
    }

    #[test]
    fn level_zero_reads_every_key_in_one_query() {
        assert_eq!(
            pg_buckets(&side(), 2, &[]),
            "SELECT substr(kh, 1, 2) AS b, count(*) AS n, sum(('x' || substr(rh, 1, 15))::bit(60)::int8)::text AS s \
             FROM (SELECT md5(convert_to(K, 'UTF8')) AS kh, md5(convert_to(R, 'UTF8')) AS rh FROM \"public\".\"t\") _sluice_h \
             WHERE TRUE GROUP BY 1"
        );
        let live = Side {
            from: "`p.d.t`".into(),
            filter: Some("NOT IFNULL(_sluice_deleted, FALSE)".into()),
            ..side()
        };
        assert_eq!(
            bq_buckets(&live, 2, &[]),
            "SELECT SUBSTR(kh, 1, 2) AS b, COUNT(*) AS n, \
             CAST(SUM(CAST(CAST(CONCAT('0x', SUBSTR(rh, 1, 15)) AS INT64) AS NUMERIC)) AS STRING) AS s \
             FROM (SELECT TO_HEX(MD5(K)) AS kh, TO_HEX(MD5(R)) AS rh FROM `p.d.t` WHERE NOT IFNULL(_sluice_deleted, FALSE)) \
             WHERE TRUE GROUP BY b"
        );
    }

    #[test]
    fn deeper_levels_look_only_inside_their_parents() {
        let sql = pg_buckets(&side(), 4, &["0a".into(), "FF".into()]);
        assert!(
            sql.ends_with("WHERE (substr(kh, 1, 2) IN ('0a', 'ff')) GROUP BY 1"),
            "{sql}"
        );
        let sql = bq_buckets(&side(), 4, &["0a".into()]);
        assert!(
            sql.ends_with("WHERE (SUBSTR(kh, 1, 2) IN ('0a')) GROUP BY b"),
            "{sql}"
        );
    }

    #[test]
    fn rows_are_fetched_by_buckets_of_any_length_and_only_hex_is_spliced() {
        let buckets = vec!["ab".into(), "0123".into(), "cd".into(), "x'; DROP".into()];
        assert_eq!(
            pg_rows(&side(), &buckets),
            "SELECT k, md5(convert_to(r, 'UTF8')) AS h FROM (SELECT K AS k, R AS r FROM \"public\".\"t\") _sluice_r \
             WHERE (substr(md5(convert_to(k, 'UTF8')), 1, 2) IN ('ab', 'cd') OR substr(md5(convert_to(k, 'UTF8')), 1, 4) IN ('0123'))"
        );
        assert!(bq_rows(&side(), &buckets)
            .ends_with("WHERE (SUBSTR(TO_HEX(MD5(k)), 1, 2) IN ('ab', 'cd') OR SUBSTR(TO_HEX(MD5(k)), 1, 4) IN ('0123'))"));
    }

    #[test]
    fn sums_parse_from_either_engine() {
        assert_eq!(
            parse_sum("61393615155188240411"),
            Some(61393615155188240411)
        );
        assert_eq!(
            parse_sum("61393615155188240411.000000000"),
            Some(61393615155188240411)
        );
        assert_eq!(parse_sum("1.5"), None);
        assert_eq!(parse_sum("x"), None);
    }
}

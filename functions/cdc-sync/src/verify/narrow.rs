//! Narrowing a difference down, as pure logic: compare the two sides' buckets at one level,
//! split the differing buckets that are still large one level deeper, fetch the small ones'
//! rows, and diff those rows by key.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

/// Rows and hash sum of one bucket of keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Bucket {
    pub rows: u64,
    pub sum: u128,
}

/// Buckets by their prefix of the key hash.
pub(crate) type Buckets = BTreeMap<String, Bucket>;

/// Hex digits a level adds to the bucket prefix: 256 buckets per bucket.
pub(crate) const LEVEL_HEX: usize = 2;
/// The longest prefix: a whole MD5.
const HASH_HEX: usize = 32;
/// A differing bucket this small (on the larger side) has its rows fetched and diffed.
pub(crate) const SMALL_BUCKET: u64 = 1_000;
/// At most this many differing buckets are split per level...
pub(crate) const MAX_SPLIT: usize = 64;
/// ...and at most this many rows fetched per side: beyond, the difference is sampled.
pub(crate) const MAX_FETCH_ROWS: u64 = 50_000;

/// The buckets whose rows or sums differ, with the larger side's rows and the difference in
/// rows, in prefix order.
pub(crate) fn differing(pg: &Buckets, bq: &Buckets) -> Vec<(String, u64, u64)> {
    let names: BTreeSet<&String> = pg.keys().chain(bq.keys()).collect();
    names
        .into_iter()
        .filter_map(|b| {
            let (p, q) = (pg.get(b), bq.get(b));
            (p != q).then(|| {
                let (p, q) = (
                    p.copied().unwrap_or_default(),
                    q.copied().unwrap_or_default(),
                );
                (b.clone(), p.rows.max(q.rows), p.rows.abs_diff(q.rows))
            })
        })
        .collect()
}

/// Where the search for differing keys stands.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Search {
    /// Differing buckets small enough to fetch, in the order found.
    pub fetch: Vec<String>,
    fetch_rows: u64,
    /// At least this many keys differ: per differing top-level bucket, its difference in rows
    /// (at least one).
    pub at_least: u64,
    /// Some differing buckets were not looked into (the limits above): what is found is a
    /// sample and the count a lower bound.
    pub sampled: bool,
}

impl Search {
    /// Takes one level's buckets (prefixes of `len` hex digits) from both sides; returns the
    /// differing buckets to split at the next level.
    pub(crate) fn level(&mut self, pg: &Buckets, bq: &Buckets, len: usize) -> Vec<String> {
        let diff = differing(pg, bq);
        if len <= LEVEL_HEX {
            self.at_least = diff.iter().map(|(_, _, d)| (*d).max(1)).sum();
        }
        let mut split = vec![];
        for (b, rows, _) in diff {
            if rows <= SMALL_BUCKET || len >= HASH_HEX {
                if !self.fetch.is_empty() && self.fetch_rows + rows > MAX_FETCH_ROWS {
                    self.sampled = true;
                    continue;
                }
                self.fetch.push(b);
                self.fetch_rows += rows;
            } else if split.len() < MAX_SPLIT {
                split.push(b);
            } else {
                self.sampled = true;
            }
        }
        split
    }
}

/// How a key differs between Postgres and its replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Difference {
    /// In Postgres, not in the replica.
    Missing,
    /// In the replica, not in Postgres.
    Extra,
    /// In both, with different values.
    Different,
    /// More than one live row in the replica.
    Duplicated,
}

impl Difference {
    pub fn describe(self) -> &'static str {
        match self {
            Difference::Missing => "missing in the replica",
            Difference::Extra => "extra in the replica (not in Postgres)",
            Difference::Different => "values differ",
            Difference::Duplicated => "more than one row in the replica",
        }
    }
}

/// Keys in a natural order: integers first, by value, then anything else by its text.
pub(crate) fn key_order(a: &str, b: &str) -> Ordering {
    match (a.parse::<i128>().ok(), b.parse::<i128>().ok()) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

/// The keys that differ between the (key, row hash) rows of both sides, in key order.
pub(crate) fn diff_rows(
    pg: &[(String, String)],
    bq: &[(String, String)],
) -> Vec<(String, Difference)> {
    let mut theirs: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (k, h) in bq {
        theirs.entry(k).or_default().push(h);
    }
    let mut out = vec![];
    let mut ours: BTreeSet<&str> = BTreeSet::new();
    for (k, h) in pg {
        ours.insert(k);
        match theirs.get(k.as_str()).map(Vec::as_slice) {
            None => out.push((k.clone(), Difference::Missing)),
            Some([one]) if one == h => {}
            Some([_]) => out.push((k.clone(), Difference::Different)),
            Some(_) => out.push((k.clone(), Difference::Duplicated)),
        }
    }
    for (k, hs) in &theirs {
        if !ours.contains(k) {
            let d = if hs.len() > 1 {
                Difference::Duplicated
            } else {
                Difference::Extra
            };
            out.push((k.to_string(), d));
        }
    }
    out.sort_by(|a, b| key_order(&a.0, &b.0));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buckets(v: &[(&str, u64, u128)]) -> Buckets {
        v.iter()
            .map(|(b, rows, sum)| {
                (
                    b.to_string(),
                    Bucket {
                        rows: *rows,
                        sum: *sum,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn equal_sides_need_nothing_more() {
        let a = buckets(&[("00", 4000, 7), ("01", 3900, 9)]);
        let mut s = Search::default();
        assert!(s.level(&a, &a.clone(), 2).is_empty());
        assert_eq!(s, Search::default());
    }

    #[test]
    fn large_differing_buckets_split_small_ones_are_fetched() {
        let pg = buckets(&[("00", 4000, 7), ("01", 900, 9), ("02", 10, 1)]);
        // 00: one cell differs; 01: one row missing; 02 only in Postgres.
        let bq = buckets(&[("00", 4000, 8), ("01", 899, 5)]);
        let mut s = Search::default();
        let split = s.level(&pg, &bq, 2);
        assert_eq!(split, ["00"]);
        assert_eq!(s.fetch, ["01", "02"]);
        assert_eq!(s.at_least, 1 + 1 + 10);
        // One level down the differing child of 00 is small: fetched too.
        let pg = buckets(&[("0000", 16, 3), ("0001", 15, 4)]);
        let bq = buckets(&[("0000", 16, 3), ("0001", 15, 5)]);
        assert!(s.level(&pg, &bq, 4).is_empty());
        assert_eq!(s.fetch, ["01", "02", "0001"]);
        assert_eq!(s.at_least, 12, "kept from the top level");
        assert!(!s.sampled);
    }

    #[test]
    fn limits_turn_the_search_into_a_sample() {
        // An empty replica: every bucket differs.
        let pg: Buckets = (0..256)
            .map(|i| (format!("{i:02x}"), Bucket { rows: 3900, sum: 1 }))
            .collect();
        let mut s = Search::default();
        let split = s.level(&pg, &Buckets::new(), 2);
        assert_eq!(split.len(), MAX_SPLIT);
        assert!(s.sampled);
        assert_eq!(s.at_least, 256 * 3900);
        let children: Buckets = (0..256)
            .map(|i| (format!("00{i:02x}"), Bucket { rows: 400, sum: 1 }))
            .collect();
        let mut t = Search::default();
        t.level(&children, &Buckets::new(), 4);
        assert_eq!(t.fetch.len() as u64, MAX_FETCH_ROWS / 400);
        assert!(t.sampled);
        // A whole hash is never split again.
        let mut u = Search::default();
        let dup = buckets(&[("0123456789abcdef0123456789abcdef", 2, 9)]);
        let one = buckets(&[("0123456789abcdef0123456789abcdef", 1, 9)]);
        assert!(u.level(&one, &dup, 32).is_empty());
        assert_eq!(u.fetch.len(), 1);
    }

    #[test]
    fn rows_diff_by_key() {
        let pg = vec![
            ("10".to_string(), "a".to_string()),
            ("9".into(), "b".into()),
            ("7".into(), "c".into()),
            ("5".into(), "d".into()),
        ];
        let bq = vec![
            ("10".to_string(), "a".to_string()),
            ("9".into(), "x".into()),
            ("11".into(), "e".into()),
            ("5".into(), "d".into()),
            ("5".into(), "d".into()),
        ];
        assert_eq!(
            diff_rows(&pg, &bq),
            [
                ("5".to_string(), Difference::Duplicated),
                ("7".into(), Difference::Missing),
                ("9".into(), Difference::Different),
                ("11".into(), Difference::Extra),
            ]
        );
    }

    #[test]
    fn keys_sort_naturally() {
        let mut v = vec!["10", "9", "b", "-1", "a"];
        v.sort_by(|a, b| key_order(a, b));
        assert_eq!(v, ["-1", "9", "10", "a", "b"]);
    }
}

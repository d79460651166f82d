//! What `cdc-sync status` found, and how it reads: a verdict per table, a source's report
//! lines, and the problems that fail the command.

use sluice::postgres::pgoutput::Lsn;

use crate::slot;
use crate::verify::{Found, Queries};

/// Changes a peek reads at most to find the pending tables; beyond, every table counts as
/// pending.
pub(super) const PENDING_CAP: u64 = 200_000;

/// What a table's comparison found.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Every row equal, as of the source's position.
    Equal,
    /// Some keys differ.
    Differs(Found),
    /// Changes committed before the position are not in the replica yet (how many, when the
    /// peek read them all): not compared.
    Pending(Option<u64>),
    /// Not snapshotted yet: the next run takes it.
    NoReplica,
    /// The lake says the table is replicated but its replica table is gone.
    ReplicaMissing,
    /// No primary key: its replica is an append-only history of changes, not compared.
    NoKey,
    /// Another session held the slot throughout: in-flight changes cannot be told from
    /// differences, so not compared.
    SlotBusy,
}

impl Verdict {
    /// The word the ledger keeps.
    pub fn name(&self) -> &'static str {
        match self {
            Verdict::Equal => "equal",
            Verdict::Differs(_) => "differs",
            Verdict::Pending(_) => "pending",
            Verdict::NoReplica => "no_replica",
            Verdict::ReplicaMissing => "replica_missing",
            Verdict::NoKey => "no_key",
            Verdict::SlotBusy => "slot_busy",
        }
    }

    /// The replica is known not to hold what Postgres holds.
    pub fn is_difference(&self) -> bool {
        matches!(self, Verdict::Differs(_) | Verdict::ReplicaMissing)
    }

    /// As the table line shows it.
    fn label(&self) -> String {
        match self {
            Verdict::Equal => "equal".into(),
            Verdict::Differs(f) => format!(
                "DIFFERS: {}{} key{}",
                if f.exact { "" } else { "≥" },
                f.differing,
                if f.differing == 1 { "" } else { "s" }
            ),
            Verdict::Pending(_) => "changes pending".into(),
            Verdict::NoReplica => "no replica yet".into(),
            Verdict::ReplicaMissing => "REPLICA MISSING".into(),
            Verdict::NoKey => "no key: not compared".into(),
            Verdict::SlotBusy => "not compared".into(),
        }
    }
}

/// One published table against its replica.
#[derive(Debug, Clone, PartialEq)]
pub struct TableStatus {
    /// `schema.table`.
    pub table: String,
    pub postgres_rows: i64,
    /// Live rows of the replica (not soft-deleted), or every change of an append-only one;
    /// None without a replica.
    pub replica_rows: Option<u64>,
    pub verdict: Verdict,
    /// Queries the comparison took on each side (zero when not compared).
    pub queries: Queries,
    pub seconds: f64,
}

/// One source: its slot and its tables, as of one position.
#[derive(Debug, Clone)]
pub struct SourceStatus {
    pub source: String,
    pub health: slot::SlotHealth,
    /// Postgres's position the tables were compared at (of the last check, after a recheck).
    pub position: Lsn,
    /// The slot moved during the check: the differing tables were checked again.
    pub rechecked: bool,
    pub tables: Vec<TableStatus>,
    /// The run id of its ledger rows.
    pub run_id: String,
    /// A break in the stream's continuity (`continuity::Break`), as its one line: nothing was
    /// compared.
    pub stopped: Option<String>,
}

impl SourceStatus {
    /// The tables whose replicas differ, as `table (n keys)`.
    pub fn differing(&self) -> Vec<String> {
        self.tables
            .iter()
            .filter_map(|t| match &t.verdict {
                Verdict::Differs(f) => Some(format!(
                    "{} ({}{} differing key{})",
                    t.table,
                    if f.exact { "" } else { "at least " },
                    f.differing,
                    if f.differing == 1 { "" } else { "s" }
                )),
                Verdict::ReplicaMissing => Some(format!("{} (replica table missing)", t.table)),
                _ => None,
            })
            .collect()
    }

    /// What should fail the command, one phrase each: differing replicas, or none compared.
    pub fn problems(&self) -> Vec<String> {
        let mut out: Vec<String> = self.stopped.iter().cloned().collect();
        let differing = self.differing();
        if !differing.is_empty() {
            out.push(format!(
                "source {}: replicas differ from Postgres: {}",
                self.source,
                differing.join(", ")
            ));
        }
        if self.tables.iter().any(|t| t.verdict == Verdict::SlotBusy) {
            out.push(format!(
                "source {}: the slot was in use by another session, replicas not compared",
                self.source
            ));
        }
        out
    }

    /// The report: the slot's line, one aligned line per table, then what differs.
    pub fn lines(&self) -> Vec<String> {
        if let Some(stop) = &self.stopped {
            return vec![stop.clone()];
        }
        let mut out = vec![format!(
            "source {}: slot at {}, retaining {:.1} MiB of WAL; Postgres read as of {}{}",
            self.source,
            self.health.confirmed_flush,
            self.health.retained_wal_bytes as f64 / (1024.0 * 1024.0),
            self.position,
            if self.rechecked {
                " (a run moved the slot meanwhile: differing tables checked again)"
            } else {
                ""
            }
        )];
        let w = self
            .tables
            .iter()
            .map(|t| t.table.len())
            .max()
            .unwrap_or(0)
            .max(5);
        out.push(format!(
            "{:<w$}  {:<22} {:>12} {:>12} {:>9} {:>8}",
            "table", "verdict", "postgres", "replica", "queries", "time"
        ));
        for t in &self.tables {
            let compared = t.queries.postgres + t.queries.bigquery > 0;
            out.push(format!(
                "{:<w$}  {:<22} {:>12} {:>12} {:>9} {:>8}",
                t.table,
                t.verdict.label(),
                t.postgres_rows,
                t.replica_rows.map_or("-".to_string(), |n| n.to_string()),
                if compared {
                    format!("{} + {}", t.queries.postgres, t.queries.bigquery)
                } else {
                    "-".into()
                },
                if compared {
                    format!("{:.1}s", t.seconds)
                } else {
                    "-".into()
                },
            ));
        }
        for t in &self.tables {
            match &t.verdict {
                Verdict::Differs(f) => {
                    out.push(format!(
                        "{}: {}{} differing key{} in key-hash buckets {}",
                        t.table,
                        if f.exact { "" } else { "at least " },
                        f.differing,
                        if f.differing == 1 { "" } else { "s" },
                        f.buckets.join(", ")
                    ));
                    for (k, d) in &f.first {
                        out.push(format!("{}: key {k}: {}", t.table, d.describe()));
                    }
                }
                Verdict::Pending(Some(n)) => out.push(format!(
                    "{}: {n} committed change{} not in the replica yet: run `cdc-sync run` first, then check again",
                    t.table,
                    if *n == 1 { "" } else { "s" }
                )),
                Verdict::Pending(None) => out.push(format!(
                    "{}: the slot holds more than {PENDING_CAP} changes not in the replicas yet, maybe of this table: run `cdc-sync run` first, then check again",
                    t.table
                )),
                Verdict::ReplicaMissing => out.push(format!(
                    "{}: the replica table is gone; run `cdc-sync resync --table {}`",
                    t.table, t.table
                )),
                Verdict::NoKey => out.push(format!(
                    "{}: no primary key, so its replica keeps every change (append-only history) and is not compared",
                    t.table
                )),
                Verdict::SlotBusy => out.push(format!(
                    "{}: slot in use by another session (a run?) throughout: in-flight changes cannot be told from differences; try again when it ends",
                    t.table
                )),
                Verdict::Equal | Verdict::NoReplica => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::Difference;

    fn source(tables: Vec<TableStatus>) -> SourceStatus {
        SourceStatus {
            source: "shop".into(),
            health: slot::SlotHealth {
                confirmed_flush: Lsn(0x1_6B3F28),
                retained_wal_bytes: 3 * 1024 * 1024 / 2,
            },
            position: Lsn(0x1_6B4000),
            rechecked: false,
            tables,
            run_id: "r".into(),
            stopped: None,
        }
    }

    fn table(name: &str, verdict: Verdict, q: u32) -> TableStatus {
        TableStatus {
            table: name.into(),
            postgres_rows: 1_000_000,
            replica_rows: Some(1_000_000),
            verdict,
            queries: Queries {
                postgres: q,
                bigquery: q,
            },
            seconds: 2.345,
        }
    }

    #[test]
    fn the_report_aligns_tables_then_names_what_differs() {
        let found = Found {
            differing: 2,
            exact: true,
            first: vec![
                ("42".into(), Difference::Different),
                ("1017".into(), Difference::Missing),
            ],
            buckets: vec!["3f1a".into(), "c2".into()],
        };
        let s = source(vec![
            table("public.users", Verdict::Equal, 1),
            table("public.orders", Verdict::Differs(found), 3),
            table("public.events", Verdict::NoKey, 0),
            table("public.items", Verdict::Pending(Some(3)), 1),
        ]);
        let lines = s.lines();
        assert_eq!(
            lines[0],
            "source shop: slot at 0/16B3F28, retaining 1.5 MiB of WAL; Postgres read as of 0/16B4000"
        );
        assert_eq!(
            lines[1],
            "table          verdict                    postgres      replica   queries     time"
        );
        assert_eq!(
            lines[2],
            "public.users   equal                       1000000      1000000     1 + 1     2.3s"
        );
        assert_eq!(
            lines[3],
            "public.orders  DIFFERS: 2 keys             1000000      1000000     3 + 3     2.3s"
        );
        assert_eq!(
            lines[4],
            "public.events  no key: not compared        1000000      1000000         -        -"
        );
        assert_eq!(
            &lines[6..],
            [
                "public.orders: 2 differing keys in key-hash buckets 3f1a, c2",
                "public.orders: key 42: values differ",
                "public.orders: key 1017: missing in the replica",
                "public.events: no primary key, so its replica keeps every change (append-only history) and is not compared",
                "public.items: 3 committed changes not in the replica yet: run `cdc-sync run` first, then check again",
            ]
        );
        assert_eq!(s.differing(), ["public.orders (2 differing keys)"]);
        assert_eq!(
            s.problems(),
            ["source shop: replicas differ from Postgres: public.orders (2 differing keys)"]
        );
        let busy = source(vec![table("public.users", Verdict::SlotBusy, 1)]);
        assert_eq!(
            busy.problems(),
            ["source shop: the slot was in use by another session, replicas not compared"]
        );
    }
}

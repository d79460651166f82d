//! Is the stream a run is about to read the continuation of the one the replicas were built
//! from? The lake keeps, per source, where the replicas are (`cdc/<source>/_stream.json`:
//! the database's identity and the position the slot was last advanced to, written *before*
//! each advance); every run compares it with the database and its slot before it reads or
//! merges anything. A slot that is gone, invalidated, ahead of that position (dropped and
//! recreated, or advanced by hand), a database that is not the same one (restored from a
//! backup, a promoted standby, a new cluster), or a replicated table that left the publication
//! each end the run with one named stop, recorded in the ledger, and the replicas untouched.
//! `resync --all` (or `forget` for a table) is the way back, and records why it ran.

use object_store::path::Path;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sluice::error::ErrorKind;
use sluice::lake::Lake;
use sluice::ledger::{RunRecord, Status};
use sluice::postgres::pgoutput::Lsn;
use sluice::postgres::PgConnection;
use sluice::{Error, Result};

use crate::slot::{self, SlotRow};
use crate::source::SourceCtx;

/// Which database a stream comes from: a restore, a failover or a new cluster changes one of
/// these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// `pg_control_system().system_identifier`: one per cluster, kept by physical copies.
    pub system_identifier: String,
    /// The WAL timeline: a point-in-time restore or a promoted standby starts a new one.
    pub timeline: i64,
    /// The database's OID: a database dropped and restored from a dump gets a new one.
    pub database_oid: i64,
    pub database: String,
}

/// What the lake remembers of a source's stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamState {
    pub slot: String,
    pub origin: Origin,
    /// Every change committed before this position is in the replicas: the slot is advanced
    /// to it only after this is written, so the slot is never ahead of it.
    pub position: String,
    pub updated_at: String,
    /// Why the stream was (re)started: `init`, `adopted`, or a resync's cause.
    pub started_by: String,
}

impl StreamState {
    fn position(&self) -> Lsn {
        self.position.parse().unwrap_or_default()
    }
}

/// A break in continuity: each is a named stop.
#[derive(Debug, Clone, PartialEq)]
pub enum Break {
    SlotMissing,
    SlotInvalidated(String),
    /// The slot is ahead of where the replicas are.
    SlotMoved {
        slot: Lsn,
        replicas: Lsn,
    },
    /// Another database than the replicas' (what differs).
    SourceReplaced(String),
    /// A replicated table left the publication (still in Postgres or not).
    TableUnpublished {
        table: String,
        exists: bool,
    },
}

impl Break {
    /// The case's name in messages, the ledger and the README.
    pub fn case(&self) -> &'static str {
        match self {
            Break::SlotMissing => "slot-missing",
            Break::SlotInvalidated(_) => "slot-invalidated",
            Break::SlotMoved { .. } => "slot-moved",
            Break::SourceReplaced(_) => "source-replaced",
            Break::TableUnpublished { .. } => "table-unpublished",
        }
    }

    /// One line: the source, the case, what happened and what to do.
    pub fn message(&self, source: &str, slot: &str, publication: &str) -> String {
        let resync = format!("run `cdc-sync resync --all --source {source}`");
        let what = match self {
            Break::SlotMissing => format!(
                "replication slot {slot} does not exist (dropped, or the database was restored or failed over without it), so changes since the last run were never read; {resync} to create a new slot and snapshot every table"
            ),
            Break::SlotInvalidated(why) => format!(
                "Postgres invalidated replication slot {slot} ({why}), so changes were lost; {resync} to replace the slot and snapshot every table"
            ),
            Break::SlotMoved { slot: at, replicas } => format!(
                "replication slot {slot} is at {at} but the replicas hold changes only up to {replicas} (the slot was dropped and recreated, or advanced by hand), so the changes in between were never read; {resync} to snapshot every table from the slot's position"
            ),
            Break::SourceReplaced(what) => format!(
                "the database is not the one the replicas were built from ({what}); {resync} to snapshot every table from this database"
            ),
            Break::TableUnpublished { table, exists } => {
                let gone = if *exists {
                    "is no longer in"
                } else {
                    "was dropped from Postgres and so from"
                };
                let back = if *exists {
                    format!("add it back (ALTER PUBLICATION {publication} ADD TABLE {table}) and run `cdc-sync resync --source {source} --table {table}`, or ")
                } else {
                    String::new()
                };
                format!(
                    "{table} has a replica but {gone} publication {publication}, so its changes are not read; {back}run `cdc-sync forget --source {source} --table {table}` to stop replicating it (its replica stays as it is)"
                )
            }
        };
        format!("source {source}: {}: {what}", self.case())
    }
}

/// The break, if any, between what the lake remembers and what the database shows now.
/// Without a remembered stream (a source set up before sluice remembered it) only the slot
/// itself can be judged.
pub fn assess(
    recorded: Option<&StreamState>,
    now: &Origin,
    slot: Option<&SlotRow>,
) -> Option<Break> {
    if let Some(r) = recorded {
        let was = &r.origin;
        if was.system_identifier != now.system_identifier {
            return Some(Break::SourceReplaced(format!(
                "system identifier {} where the replicas came from {}: another cluster, such as a restore from a backup",
                now.system_identifier, was.system_identifier
            )));
        }
        if was.timeline != now.timeline {
            return Some(Break::SourceReplaced(format!(
                "timeline {} where the replicas came from timeline {}: the server was restored to a point in time or a standby was promoted",
                now.timeline, was.timeline
            )));
        }
        if was.database_oid != now.database_oid {
            return Some(Break::SourceReplaced(format!(
                "database {} has OID {} where the replicas came from OID {}: it was dropped and made again, such as from a dump",
                now.database, now.database_oid, was.database_oid
            )));
        }
    }
    // No slot and no stream remembered: a source not set up yet (`init` says so).
    let Some(slot) = slot else {
        return recorded.map(|_| Break::SlotMissing);
    };
    if let Some(why) = slot.invalidated() {
        return Some(Break::SlotInvalidated(why));
    }
    let at = slot.confirmed_flush.unwrap_or_default();
    match recorded {
        Some(r) if at > r.position() => Some(Break::SlotMoved {
            slot: at,
            replicas: r.position(),
        }),
        _ => None,
    }
}

/// The replicated tables (those with a state in the lake) the publication no longer covers.
pub fn unpublished(
    replicated: &[(String, String)],
    published: &[(String, String)],
) -> Vec<(String, String)> {
    replicated
        .iter()
        .filter(|t| !published.contains(t))
        .cloned()
        .collect()
}

fn state_path(source: &str) -> Path {
    Path::from(format!("cdc/{source}/_stream.json"))
}

pub async fn read_state(lake: &Lake, source: &str) -> Result<Option<StreamState>> {
    let p = state_path(source);
    match lake.get_opt(&p).await? {
        None => Ok(None),
        Some(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| Error::lake_other(format!("reading {}", lake.gs_uri(&p)), e)),
    }
}

async fn write_state(lake: &Lake, source: &str, s: &StreamState) -> Result<()> {
    let body = serde_json::to_vec_pretty(s).map_err(|e| Error::lake_other("stream state", e))?;
    lake.put(&state_path(source), body.into()).await
}

/// Reads which database this is.
pub async fn origin(conn: &PgConnection) -> Result<Origin> {
    // The timeline of a primary is in the name of its current WAL file; a standby's is the
    // one of its last checkpoint.
    let r = conn
        .query_one(
            "reading the database's identity",
            "SELECT (SELECT system_identifier::text FROM pg_control_system()),
                    CASE WHEN pg_is_in_recovery() THEN (SELECT timeline_id::int8 FROM pg_control_checkpoint())
                         ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int8 END,
                    (SELECT oid::int8 FROM pg_database WHERE datname = current_database()),
                    current_database()::text",
            &[],
        )
        .await?;
    Ok(Origin {
        system_identifier: r.get(0),
        timeline: r.get(1),
        database_oid: r.get(2),
        database: r.get(3),
    })
}

/// Starts remembering a stream of the database `origin` at `position` (after `init` made the
/// slot, after a resync, or for a source set up before sluice remembered streams).
pub async fn start(
    lake: &Lake,
    source: &str,
    slot: &str,
    origin: Origin,
    position: Lsn,
    started_by: &str,
) -> Result<()> {
    let state = StreamState {
        slot: slot.to_string(),
        origin,
        position: position.to_string(),
        updated_at: chrono::Utc::now().to_rfc3339(),
        started_by: started_by.to_string(),
    };
    write_state(lake, source, &state).await
}

/// Notes that the replicas now hold every change before `to`; called before the slot is
/// advanced to it. A copy of the slot (the benchmark's) leaves the state alone.
pub async fn advanced(ctx: &SourceCtx<'_>, to: Lsn) -> Result<()> {
    if ctx.slot != ctx.sink.slot {
        return Ok(());
    }
    let lake = &ctx.sink.lake;
    let Some(mut state) = read_state(lake, &ctx.name).await? else {
        let now = origin(&ctx.catalog).await?;
        return start(lake, &ctx.name, &ctx.slot, now, to, "adopted").await;
    };
    state.position = to.to_string();
    state.updated_at = chrono::Utc::now().to_rfc3339();
    write_state(lake, &ctx.name, &state).await
}

/// What the lake remembers of a source's stream, and what its database and slot show now:
/// read once, and judged by `verdict`.
pub struct Observed {
    pub recorded: Option<StreamState>,
    pub origin: Origin,
    pub slot: Option<SlotRow>,
}

impl Observed {
    pub async fn read(ctx: &SourceCtx<'_>) -> Result<Observed> {
        Ok(Observed {
            recorded: read_state(&ctx.sink.lake, &ctx.name).await?,
            origin: origin(&ctx.stream).await?,
            slot: slot::read(&ctx.stream, &ctx.slot).await?,
        })
    }

    /// The source-wide break, if any.
    pub fn verdict(&self) -> Option<Break> {
        assess(self.recorded.as_ref(), &self.origin, self.slot.as_ref())
    }
}

/// Checks a source before a run reads anything and returns the tables its publication covers
/// and its slot: a break is recorded in the ledger (so the monitor alerts) and returned as a
/// permanent error naming the case and the recovery. A source without a remembered stream
/// starts remembering it at the slot's position.
pub async fn check(ctx: &SourceCtx<'_>) -> Result<(Vec<(String, String)>, SlotRow)> {
    let started = chrono::Utc::now();
    let observed = Observed::read(ctx).await?;
    let mut found = observed.verdict();
    let mut published = vec![];
    if found.is_none() {
        published = slot::publication_tables(&ctx.stream, &ctx.publication).await?;
        let others =
            crate::tables::replicated_besides(&ctx.sink.lake, &ctx.name, &published).await?;
        if let Some((s, t)) = unpublished(&others, &published).into_iter().next() {
            let exists = ctx
                .catalog
                .query_opt(
                    "looking up a table",
                    "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2",
                    &[&s, &t],
                )
                .await?
                .is_some();
            found = Some(Break::TableUnpublished {
                table: format!("{s}.{t}"),
                exists,
            });
        }
    }
    let Some(b) = found else {
        // No break: the slot is there and valid, unless the source was never set up.
        let row = observed.slot.ok_or_else(|| slot::missing(&ctx.slot))?;
        if observed.recorded.is_none() {
            let at = row.confirmed_flush.unwrap_or_default();
            tracing::info!(source = %ctx.name, position = %at, "remembering the stream from the slot's position");
            let (lake, name) = (&ctx.sink.lake, &ctx.name);
            start(lake, name, &ctx.slot, observed.origin, at, "adopted").await?;
        }
        return Ok((published, row));
    };
    let message = b.message(&ctx.name, &ctx.slot, &ctx.publication);
    let error = Error::Postgres {
        context: "checking the stream's continuity".into(),
        message,
        kind: ErrorKind::Permanent,
        source: None,
    };
    ctx.record(RunRecord {
        status: Status::Failed,
        error: Some(error.to_string()),
        ..ctx.ledger_row(
            started,
            json!({"kind": "stop", "case": b.case(), "slot": ctx.slot}),
        )
    })
    .await?;
    Err(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Origin {
        Origin {
            system_identifier: "7716586723726890663".into(),
            timeline: 1,
            database_oid: 16384,
            database: "shop".into(),
        }
    }

    fn state(position: &str) -> StreamState {
        StreamState {
            slot: "sluice_shop".into(),
            origin: origin(),
            position: position.into(),
            updated_at: String::new(),
            started_by: "init".into(),
        }
    }

    fn slot_at(lsn: &str) -> SlotRow {
        SlotRow {
            same_database: true,
            confirmed_flush: Some(lsn.parse().unwrap()),
            wal_status: Some("reserved".into()),
            ..SlotRow::default()
        }
    }

    #[test]
    fn a_slot_at_or_behind_the_replicas_continues() {
        let s = state("0/3000000");
        assert_eq!(
            assess(Some(&s), &origin(), Some(&slot_at("0/3000000"))),
            None
        );
        // Behind: a crash after the state was written, before the slot advanced.
        assert_eq!(
            assess(Some(&s), &origin(), Some(&slot_at("0/2000000"))),
            None
        );
        // Nothing remembered yet: only the slot itself is judged.
        assert_eq!(assess(None, &origin(), Some(&slot_at("0/9000000"))), None);
    }

    #[test]
    fn each_break_is_named() {
        let s = state("0/3000000");
        let moved = assess(Some(&s), &origin(), Some(&slot_at("0/3000100"))).unwrap();
        assert_eq!(moved.case(), "slot-moved");
        let m = moved.message("shop", "sluice_shop", "sluice_shop");
        assert!(
            m.starts_with("source shop: slot-moved: replication slot sluice_shop is at 0/3000100 but the replicas hold changes only up to 0/3000000"),
            "{m}"
        );
        assert!(m.contains("`cdc-sync resync --all --source shop`"), "{m}");
        assert_eq!(assess(Some(&s), &origin(), None), Some(Break::SlotMissing));
        assert_eq!(
            assess(None, &origin(), None),
            None,
            "not set up yet: not a break"
        );
        let lost = SlotRow {
            wal_status: Some("lost".into()),
            ..slot_at("0/3000000")
        };
        assert_eq!(
            assess(Some(&s), &origin(), Some(&lost)).unwrap().case(),
            "slot-invalidated"
        );
        let conflict = SlotRow {
            conflicting: Some(true),
            ..slot_at("0/3000000")
        };
        assert!(matches!(
            assess(None, &origin(), Some(&conflict)),
            Some(Break::SlotInvalidated(w)) if w.contains("standby")
        ));
        for other in [
            Origin {
                system_identifier: "1".into(),
                ..origin()
            },
            Origin {
                timeline: 2,
                ..origin()
            },
            Origin {
                database_oid: 99,
                ..origin()
            },
        ] {
            // The database's identity comes first: its slot may well look fine.
            let b = assess(Some(&s), &other, Some(&slot_at("0/9000000"))).unwrap();
            assert_eq!(b.case(), "source-replaced", "{other:?}");
        }
    }

    #[test]
    fn a_table_that_left_the_publication_is_named_with_both_ways_back() {
        let t = |s: &str| ("public".to_string(), s.to_string());
        assert_eq!(
            unpublished(&[t("a"), t("b")], &[t("a"), t("c")]),
            vec![t("b")]
        );
        let b = Break::TableUnpublished {
            table: "public.b".into(),
            exists: true,
        };
        let m = b.message("shop", "sluice_shop", "sluice_shop");
        assert!(
            m.contains("ALTER PUBLICATION sluice_shop ADD TABLE public.b"),
            "{m}"
        );
        assert!(
            m.contains("`cdc-sync forget --source shop --table public.b`"),
            "{m}"
        );
        let gone = Break::TableUnpublished {
            table: "public.b".into(),
            exists: false,
        };
        assert!(!gone.message("shop", "s", "p").contains("ALTER PUBLICATION"));
    }
}

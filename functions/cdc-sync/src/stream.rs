//! Reading the slot in bounded batches: a peek streams up to `BATCHES_PER_PEEK` batches of
//! whole transactions, `BatchReader` turns pgoutput messages into per-table segments of
//! changes, and `for_each_batch` hands each batch on and advances the slot once all of a
//! peek's batches are handled. `cdc-sync run` and the benchmark's stage-only drain both read
//! through it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use futures::TryStreamExt;
use sluice::postgres::pgoutput::{self, Lsn, Message};
use sluice::postgres::Answer;
use sluice::types::PgType;
use sluice::{Error, Result};
use tokio_postgres::RowStream;

use crate::changes::{Position, TableChanges};
use crate::failpoints::{crash_at, CrashPoint};
use crate::source::SourceCtx;
use crate::tables::TableInfo;
use crate::{continuity, slot, tables};

/// One batch read from the slot.
pub(crate) struct Batch {
    /// Per table, segments of changes (a new segment when the table's columns change mid-batch).
    pub(crate) tables: BTreeMap<String, Vec<TableChanges>>,
    /// Where the batch starts (the slot's position) and ends (the last commit's end).
    pub(crate) from: Lsn,
    pub(crate) to: Option<Lsn>,
    pub(crate) changes: u64,
    pub(crate) transactions: u64,
    /// Commit time of the first transaction (µs since the Unix epoch), for lag.
    pub(crate) first_commit: Option<i64>,
}

/// Turns the rows of one peek into batches: a batch closes at the first commit after it holds
/// `max` changes, so batches are whole transactions of bounded size.
struct BatchReader<'c> {
    ctx: &'c SourceCtx<'c>,
    /// Relation messages come once per peek, before the first change of each table.
    relations: HashMap<u32, Arc<TableInfo>>,
    /// The open transaction: its position and the ordinal the next change gets.
    tx: Option<(Position, i64)>,
    batch: Batch,
    max: u64,
    /// The peek's rows have all been read: a finished RowStream must not be polled again.
    ended: bool,
    /// Rows (messages) read: Postgres counts these, not changes, against a peek's limit.
    rows: u64,
}

impl<'c> BatchReader<'c> {
    fn new(ctx: &'c SourceCtx<'c>, from: Lsn, max: u32) -> Self {
        BatchReader {
            ctx,
            relations: HashMap::new(),
            tx: None,
            batch: Batch::starting_at(from),
            max: max.max(1) as u64,
            ended: false,
            rows: 0,
        }
    }

    fn err(&self, detail: impl Into<String>) -> Error {
        Error::Decode {
            table: format!("slot {}", self.ctx.slot),
            detail: detail.into(),
        }
    }

    /// The position of the next change of the open transaction.
    fn next(&mut self, what: &str) -> Result<Position> {
        let Some((pos, ord)) = self.tx.as_mut() else {
            return Err(self.err(format!("{what} outside a transaction")));
        };
        let p = Position { ord: *ord, ..*pos };
        *ord += 1;
        Ok(p)
    }

    /// Feeds one message; returns the batch it completes, if any.
    async fn push(
        &mut self,
        data: &[u8],
        types: &mut HashMap<u32, PgType>,
    ) -> Result<Option<Batch>> {
        let msg = pgoutput::decode(data).map_err(|e| self.err(e.0))?;
        match msg {
            Message::Begin {
                final_lsn,
                commit_time,
                xid,
            } => {
                let pos = Position {
                    lsn: final_lsn.0,
                    ord: 0,
                    commit_time,
                    xid,
                };
                self.tx = Some((pos, 0));
                self.batch
                    .first_commit
                    .get_or_insert(pos.commit_unix_micros());
            }
            Message::Commit { end_lsn, .. } => {
                self.batch.to = Some(end_lsn);
                self.batch.transactions += 1;
                self.tx = None;
                if self.batch.changes >= self.max {
                    let next = Batch::starting_at(end_lsn);
                    return Ok(Some(std::mem::replace(&mut self.batch, next)));
                }
            }
            Message::Relation(rel) => {
                let info = tables::from_relation(
                    &self.ctx.catalog,
                    types,
                    &rel,
                    self.ctx.cdc.on_unsupported,
                )
                .await?;
                self.relations.insert(rel.id, Arc::new(info));
            }
            Message::Insert { relation, new } => {
                let pos = self.next("insert")?;
                segment(&mut self.batch, &self.relations, relation)?.insert(pos, &new)?;
                self.batch.changes += 1;
            }
            Message::Update { relation, old, new } => {
                let pos = self.next("update")?;
                let Some((_, next_ord)) = self.tx.as_mut() else {
                    return Err(self.err("update outside a transaction"));
                };
                segment(&mut self.batch, &self.relations, relation)?.update(
                    pos,
                    old.as_ref(),
                    &new,
                    next_ord,
                )?;
                self.batch.changes += 1;
            }
            Message::Delete { relation, old } => {
                let pos = self.next("delete")?;
                segment(&mut self.batch, &self.relations, relation)?.delete(pos, &old)?;
                self.batch.changes += 1;
            }
            Message::Truncate {
                relations: rels, ..
            } => {
                for r in rels {
                    let pos = self.next("truncate")?;
                    segment(&mut self.batch, &self.relations, r)?.truncate(pos);
                    self.batch.changes += 1;
                }
            }
            Message::Type { .. } | Message::Origin { .. } | Message::Message { .. } => {}
        }
        Ok(None)
    }

    /// Reads rows until a batch completes; at the end of the peek, the last (possibly
    /// smaller) batch, then None.
    async fn next_batch(
        &mut self,
        rows: &mut Answer<RowStream>,
        types: &mut HashMap<u32, PgType>,
    ) -> Result<Option<Batch>> {
        while !self.ended {
            let next = rows.try_next().await;
            match next.map_err(|e| slot::explain_active(e, &self.ctx.slot))? {
                Some(r) => {
                    self.rows += 1;
                    if let Some(b) = self.push(r.get(0), types).await? {
                        return Ok(Some(b));
                    }
                }
                None => self.ended = true,
            }
        }
        self.finish()
    }

    /// The last, possibly smaller batch once the peek has ended.
    fn finish(&mut self) -> Result<Option<Batch>> {
        if self.tx.is_some() {
            return Err(self.err("the peek ended inside a transaction"));
        }
        let rest = std::mem::replace(&mut self.batch, Batch::starting_at(Lsn(0)));
        Ok(rest.to.is_some().then_some(rest))
    }
}

impl Batch {
    /// `<from>-<to>` in 16 hex digits each: names the batch's files, tables and jobs.
    pub(crate) fn range(&self) -> String {
        let hex = |l: Lsn| format!("{:016X}", l.0);
        format!("{}-{}", hex(self.from), hex(self.to.unwrap_or(self.from)))
    }

    fn starting_at(from: Lsn) -> Batch {
        Batch {
            tables: BTreeMap::new(),
            from,
            to: None,
            changes: 0,
            transactions: 0,
            first_commit: None,
        }
    }
}

/// Opens a peek of up to `cap` rows (messages, in whole transactions) from the slot's
/// position, of the transactions committed before `upto` (None: all); the rows stream as the
/// caller reads them.
async fn peek<'c>(
    ctx: &'c SourceCtx<'c>,
    upto: Option<Lsn>,
    cap: u64,
) -> Result<Answer<RowStream>> {
    let cap = cap.clamp(1, i32::MAX as u64) as i32;
    let upto = upto.map(|l| l.to_string());
    ctx.stream
        .query_stream(
            &format!("reading slot {}", ctx.slot),
            slot::PEEK_SQL,
            &[&ctx.slot, &upto, &cap, &ctx.publication],
        )
        .await
        .map_err(|e| slot::explain_active(e, &ctx.slot))
}

/// Batches per peek: a peek decodes the slot's WAL from its restart point, so reading many
/// batches in one peek saves decoding the same WAL again for each.
const BATCHES_PER_PEEK: u64 = 20;

/// The changes of a relation's table, in a new segment when its columns changed.
fn segment<'b>(
    batch: &'b mut Batch,
    relations: &HashMap<u32, Arc<TableInfo>>,
    relation: u32,
) -> Result<&'b mut TableChanges> {
    let info = relations.get(&relation).ok_or_else(|| Error::Decode {
        table: format!("relation {relation}"),
        detail: "a change arrived before its Relation message".into(),
    })?;
    let segs = batch.tables.entry(info.bq_name.clone()).or_default();
    if segs.last().is_none_or(|s| s.info != *info) {
        segs.push(TableChanges::new(info.clone()));
    }
    Ok(segs.last_mut().expect("pushed above"))
}

/// How a peek ended.
pub(crate) struct Peeked {
    /// Where the slot was advanced to: the end of the last batch handed on.
    pub advanced_to: Option<Lsn>,
    /// The handler asked to stop.
    pub stopped: bool,
    /// The peek was full, so the slot may hold more changes.
    pub more: bool,
}

/// Reads one peek of at most `max` × `BATCHES_PER_PEEK` rows in batches of about `max`
/// changes, hands each batch to `handle` in order (it returns false to stop after that batch),
/// then advances the slot past the last batch handed on — or, when the peek read everything
/// committed (it was not full) and nothing stopped it, up to the server's WAL position taken
/// before the peek: every transaction committed before it was in the peek, so the slot
/// moves on (and Postgres recycles the WAL) even while the published tables are idle and
/// others churn. The position is remembered (`continuity::advanced`) before the slot moves.
/// A handler's error returns at once, without advancing: the rerun reads the same batches.
pub(crate) async fn for_each_batch(
    ctx: &SourceCtx<'_>,
    max: u32,
    types: &mut HashMap<u32, PgType>,
    crash: Option<CrashPoint>,
    mut handle: impl AsyncFnMut(Batch) -> Result<bool>,
) -> Result<Peeked> {
    let health = slot::health(&ctx.stream, &ctx.slot).await?;
    let horizon = slot::wal_position(&ctx.stream).await?;
    let cap = max.max(1) as u64 * BATCHES_PER_PEEK;
    let mut last: Option<Lsn> = None;
    let mut stopped = false;
    let rows;
    {
        let mut stream = peek(ctx, None, cap).await?;
        let mut reader = BatchReader::new(ctx, health.confirmed_flush, max);
        while let Some(batch) = reader.next_batch(&mut stream, types).await? {
            let to = batch.to;
            let go_on = handle(batch).await?;
            last = to.or(last);
            if !go_on {
                stopped = true;
                break;
            }
        }
        rows = reader.rows;
    }
    let more = rows >= cap;
    let caught_up = !stopped && !more;
    let to = if caught_up {
        last.max(Some(horizon))
    } else {
        last
    };
    // Only now, with every batch of the peek handled, may Postgres forget them.
    let to = to.filter(|&t| t > health.confirmed_flush);
    if let Some(to) = to {
        continuity::advanced(ctx, to).await?;
        crash_at(crash, CrashPoint::PositionRecorded)?;
        slot::advance(&ctx.stream, &ctx.slot, to).await?;
    }
    Ok(Peeked {
        advanced_to: to,
        stopped,
        more,
    })
}

/// Changes committed before a position that the replicas do not hold yet.
#[derive(Debug, Clone, Default)]
pub(crate) struct Pending {
    /// `schema.table` → changes.
    pub tables: BTreeMap<String, u64>,
    /// False when the peek hit its cap: every table may have more.
    pub complete: bool,
}

/// Counts, per table, the changes committed before `upto` that the slot still holds (read
/// with a peek of at most `cap` rows; nothing is consumed). A peek reads only flushed WAL:
/// with asynchronous commit, commits before `upto` reach the disk within a few WAL-writer
/// rounds, so this waits (up to 3 s) for the flush to pass `upto` first.
pub(crate) async fn pending_tables(ctx: &SourceCtx<'_>, upto: Lsn, cap: u64) -> Result<Pending> {
    let waited = std::time::Instant::now();
    while slot::wal_position(&ctx.stream).await? < upto
        && waited.elapsed() < std::time::Duration::from_secs(3)
    {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mut rows = peek(ctx, Some(upto), cap).await?;
    let mut names: HashMap<u32, String> = HashMap::new();
    let mut out = Pending::default();
    let mut read = 0u64;
    let mut count = |names: &HashMap<u32, String>, rel: u32| {
        let name = names
            .get(&rel)
            .cloned()
            .unwrap_or_else(|| format!("relation {rel}"));
        *out.tables.entry(name).or_default() += 1;
    };
    while let Some(r) = rows
        .try_next()
        .await
        .map_err(|e| slot::explain_active(e, &ctx.slot))?
    {
        read += 1;
        let msg = pgoutput::decode(r.get(0)).map_err(|e| Error::Decode {
            table: format!("slot {}", ctx.slot),
            detail: e.0,
        })?;
        match msg {
            Message::Relation(rel) => {
                names.insert(rel.id, format!("{}.{}", rel.schema, rel.name));
            }
            Message::Insert { relation, .. }
            | Message::Update { relation, .. }
            | Message::Delete { relation, .. } => count(&names, relation),
            Message::Truncate { relations, .. } => {
                for rel in relations {
                    count(&names, rel);
                }
            }
            _ => {}
        }
    }
    out.complete = read < cap;
    Ok(out)
}

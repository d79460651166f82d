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
use crate::source::SourceCtx;
use crate::tables::TableInfo;
use crate::{slot, tables};

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

/// Opens a peek of up to `cap` changes (whole transactions) from the slot's position; the
/// rows stream as the caller reads them.
async fn peek<'c>(ctx: &'c SourceCtx<'c>, cap: u64) -> Result<Answer<RowStream>> {
    let cap = cap.min(i32::MAX as u64) as i32;
    ctx.stream
        .query_stream(
            &format!("reading slot {}", ctx.slot),
            slot::PEEK_SQL,
            &[&ctx.slot, &cap, &ctx.publication],
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

/// Reads one peek of at most `max` × `BATCHES_PER_PEEK` changes in batches of about `max`,
/// hands each batch to `handle` in order (it returns false to stop after that batch), then
/// advances the slot past the last batch handed on. A handler's error returns at once,
/// without advancing: the rerun reads the same batches again.
pub(crate) async fn for_each_batch(
    ctx: &SourceCtx<'_>,
    max: u32,
    types: &mut HashMap<u32, PgType>,
    mut handle: impl AsyncFnMut(Batch) -> Result<bool>,
) -> Result<Peeked> {
    let health = slot::health(&ctx.stream, &ctx.slot).await?;
    let cap = max.max(1) as u64 * BATCHES_PER_PEEK;
    let mut last: Option<Lsn> = None;
    let mut read = 0u64;
    let mut stopped = false;
    {
        let mut rows = peek(ctx, cap).await?;
        let mut reader = BatchReader::new(ctx, health.confirmed_flush, max);
        while let Some(batch) = reader.next_batch(&mut rows, types).await? {
            read += batch.changes;
            let to = batch.to;
            let go_on = handle(batch).await?;
            last = to.or(last);
            if !go_on {
                stopped = true;
                break;
            }
        }
    }
    // Only now, with every batch of the peek handled, may Postgres forget them.
    if let Some(to) = last {
        slot::advance(&ctx.stream, &ctx.slot, to).await?;
    }
    Ok(Peeked {
        advanced_to: last,
        stopped,
        more: read >= cap,
    })
}

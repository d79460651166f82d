//! One batch of changes to one table: kept compact while the slot is read, unchanged-TOAST
//! values filled in from earlier changes of the same row where the batch has them, then turned
//! into one Arrow record batch with the change metadata columns.
//!
//! An unchanged TOAST value the batch cannot fill is in the replica, in the row as it stood when
//! the batch began. Usually that row has the change's own key and the MERGE keeps its value.
//! When the key changed (`UPDATE … SET id = …`, once or in a chain), the row stood under
//! another key: the change carries that key (its *origin*) in the `_sluice_toast_from_<i>`
//! columns, and the MERGE reads the value from there.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Builder, StringBuilder, TimestampMicrosecondBuilder};
use arrow::record_batch::RecordBatch;
use sluice::postgres::pgoutput::{OldKind, Value};
use sluice::postgres::wire::PG_EPOCH_OFFSET_MICROS;
use sluice::postgres::{ColumnBuilders, DecodeStats};
use sluice::{Error, Result};

use crate::layout;
use crate::tables::TableInfo;

/// Where a change sits in the stream: its transaction's commit and its place in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Commit LSN of the transaction.
    pub lsn: u64,
    /// Ordinal of the change within its transaction, from 0.
    pub ord: i64,
    /// Commit time, microseconds since 2000-01-01.
    pub commit_time: i64,
    pub xid: u32,
}

impl Position {
    /// Commit time as microseconds since the Unix epoch.
    pub fn commit_unix_micros(&self) -> i64 {
        self.commit_time + PG_EPOCH_OFFSET_MICROS
    }
}

#[derive(Debug, Clone, Copy)]
enum Val {
    Null,
    Toast,
    Bytes { start: usize, len: usize },
}

#[derive(Debug, Clone, Copy)]
struct Row {
    op: u8,
    pos: Position,
    /// Where the replica holds this row's unchanged TOAST values, when not under its own key:
    /// an index into `TableChanges::origins` (one key's values each).
    origin: Option<u32>,
}

/// Counts of a table's changes in a batch.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct ChangeCounts {
    pub inserts: u64,
    pub updates: u64,
    pub deletes: u64,
    pub truncates: u64,
    /// Unchanged TOAST values filled in from an earlier change of the row in the same batch.
    pub toast_filled: u64,
    /// Unchanged TOAST values left to the replica's stored value.
    pub toast_kept: u64,
    /// Of those, values of rows whose key changed: the replica holds them under the old key.
    pub toast_moved: u64,
}

impl ChangeCounts {
    #[cfg(test)]
    pub fn total(&self) -> u64 {
        self.inserts + self.updates + self.deletes + self.truncates
    }
}

/// The changes of one table in one batch.
pub struct TableChanges {
    pub info: Arc<TableInfo>,
    arena: Vec<u8>,
    rows: Vec<Row>,
    vals: Vec<Val>,
    /// Key values of the rows' origins (`Row::origin`), `info.key.len()` per origin.
    origins: Vec<Val>,
    /// Latest row of each key in this batch (keyed tables only), once something needed it.
    last_by_key: Option<HashMap<Vec<u8>, usize>>,
    /// The last truncate in the batch: only changes after it reach the replica.
    pub truncate: Option<Position>,
    pub counts: ChangeCounts,
}

impl TableChanges {
    pub fn new(info: Arc<TableInfo>) -> TableChanges {
        TableChanges {
            info,
            arena: Vec::new(),
            rows: Vec::new(),
            vals: Vec::new(),
            origins: Vec::new(),
            last_by_key: None,
            truncate: None,
            counts: ChangeCounts::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    fn val(&mut self, column: usize, v: &Value<'_>) -> Result<Val> {
        Ok(match v {
            Value::Null => Val::Null,
            Value::UnchangedToast => Val::Toast,
            Value::Binary(b) => {
                let start = self.arena.len();
                self.arena.extend_from_slice(b);
                Val::Bytes {
                    start,
                    len: b.len(),
                }
            }
            Value::Text(_) => {
                return Err(Error::Decode {
                    table: self.info.qualified(),
                    detail: format!(
                        "column {} arrived in text format, but cdc-sync asks for binary",
                        self.info.columns[column].name
                    ),
                })
            }
        })
    }

    fn bytes(&self, v: Val) -> Option<&[u8]> {
        match v {
            Val::Bytes { start, len } => Some(&self.arena[start..start + len]),
            _ => None,
        }
    }

    /// The mapped columns of a tuple, in order.
    fn tuple_vals(&mut self, tuple: &[Value<'_>]) -> Result<Vec<Val>> {
        let info = self.info.clone();
        if tuple.len() != info.relation_columns {
            return Err(Error::Decode {
                table: info.qualified(),
                detail: format!(
                    "a change has {} columns, the relation {}",
                    tuple.len(),
                    info.relation_columns
                ),
            });
        }
        let mut vals = Vec::with_capacity(info.source_index.len());
        for (j, &i) in info.source_index.iter().enumerate() {
            vals.push(self.val(j, &tuple[i])?);
        }
        Ok(vals)
    }

    /// The latest row of each key so far, built the first time an update needs it (most
    /// batches never do: only unchanged-TOAST values look back).
    fn key_index(&mut self) -> &mut HashMap<Vec<u8>, usize> {
        if self.last_by_key.is_none() {
            let ncols = self.info.columns.len();
            let mut map = HashMap::new();
            for (r, row) in self.rows.iter().enumerate() {
                if row.op != b'T' {
                    map.insert(self.key_of(&self.vals[r * ncols..(r + 1) * ncols]), r);
                }
            }
            self.last_by_key = Some(map);
        }
        self.last_by_key.as_mut().expect("built above")
    }

    fn key_of(&self, vals: &[Val]) -> Vec<u8> {
        self.key_bytes(self.key_vals(vals))
    }

    /// The key columns' values of a row's values.
    fn key_vals(&self, vals: &[Val]) -> Vec<Val> {
        self.info.key.iter().map(|&j| vals[j]).collect()
    }

    /// Key values as one comparable byte string.
    fn key_bytes(&self, key: Vec<Val>) -> Vec<u8> {
        let mut k = Vec::new();
        for v in key {
            match self.bytes(v) {
                Some(b) => {
                    k.extend_from_slice(&(b.len() as u32).to_be_bytes());
                    k.extend_from_slice(b);
                }
                None => k.extend_from_slice(&u32::MAX.to_be_bytes()),
            }
        }
        k
    }

    /// The key values of origin `o`.
    fn origin_key(&self, o: u32) -> &[Val] {
        let n = self.info.key.len();
        &self.origins[o as usize * n..(o as usize + 1) * n]
    }

    fn push(&mut self, op: u8, pos: Position, vals: Vec<Val>, origin: Option<u32>) {
        if self.info.keyed() && op != b'T' && self.last_by_key.is_some() {
            let key = self.key_of(&vals);
            let row = self.rows.len();
            if let Some(map) = self.last_by_key.as_mut() {
                map.insert(key, row);
            }
        }
        self.rows.push(Row { op, pos, origin });
        self.vals.extend(vals);
    }

    pub fn insert(&mut self, pos: Position, new: &[Value<'_>]) -> Result<()> {
        let vals = self.tuple_vals(new)?;
        self.counts.inserts += 1;
        self.push(b'I', pos, vals, None);
        Ok(())
    }

    pub fn update(
        &mut self,
        pos: Position,
        old: Option<&(OldKind, Vec<Value<'_>>)>,
        new: &[Value<'_>],
        next_ord: &mut i64,
    ) -> Result<()> {
        let mut vals = self.tuple_vals(new)?;
        let old_vals = match old {
            Some((_, t)) => Some(self.tuple_vals(t)?),
            None => None,
        };
        let full_old = matches!(old, Some((OldKind::Full, _)));
        self.counts.updates += 1;
        let ncols = vals.len();
        let keyed = self.info.keyed();
        let toasted = vals.iter().any(|v| matches!(v, Val::Toast));
        // The row before this update: its key (the old tuple's, when the key changed) and, when
        // the batch holds it, its latest change.
        let before = old_vals.as_deref().unwrap_or(&vals);
        let before_key = self.key_vals(before);
        let prev_row = if keyed && toasted {
            let key = self.key_bytes(before_key.clone());
            self.key_index().get(&key).copied()
        } else {
            None
        };
        let mut unresolved = 0;
        for j in 0..ncols {
            if !matches!(vals[j], Val::Toast) {
                continue;
            }
            // The full old row (replica identity full) or an earlier change in this batch has it.
            // A key-only old row (a key change) holds NULL for every other column: not a value.
            let from_old = old_vals
                .as_ref()
                .filter(|_| full_old)
                .map(|o| o[j])
                .filter(|v| !matches!(v, Val::Toast));
            let from_prev = prev_row
                .map(|r| self.vals[r * ncols + j])
                .filter(|v| !matches!(v, Val::Toast));
            if let Some(v) = from_old.or(from_prev) {
                vals[j] = v;
                self.counts.toast_filled += 1;
            } else {
                self.counts.toast_kept += 1;
                unresolved += 1;
            }
        }
        // What the batch could not fill is in the replica under the key the row had when the
        // batch began: the earlier change's origin if it had one, else the key before this update.
        let origin = if keyed && unresolved > 0 {
            let from = match prev_row.and_then(|r| self.rows[r].origin) {
                Some(o) => self.origin_key(o).to_vec(),
                None => before_key,
            };
            if self.key_bytes(from.clone()) == self.key_of(&vals) {
                None
            } else {
                self.counts.toast_moved += unresolved;
                let o = (self.origins.len() / self.info.key.len()) as u32;
                self.origins.extend(from);
                Some(o)
            }
        } else {
            None
        };
        if let (Some(o), true) = (&old_vals, keyed) {
            if self.key_of(o) != self.key_of(&vals) {
                // The key changed: the old key's row goes, the new key's row comes.
                let mut gone = o.clone();
                for v in gone.iter_mut() {
                    if matches!(v, Val::Toast) {
                        *v = Val::Null;
                    }
                }
                self.push(b'D', pos, gone, None);
                let pos = Position {
                    ord: *next_ord,
                    ..pos
                };
                *next_ord += 1;
                self.push(b'U', pos, vals, origin);
                return Ok(());
            }
        }
        self.push(b'U', pos, vals, origin);
        Ok(())
    }

    /// Whether some change's unchanged TOAST values are in the replica under another key.
    pub fn has_moved_toast(&self) -> bool {
        self.counts.toast_moved > 0
    }

    pub fn delete(&mut self, pos: Position, old: &(OldKind, Vec<Value<'_>>)) -> Result<()> {
        let mut vals = self.tuple_vals(&old.1)?;
        for v in vals.iter_mut() {
            if matches!(v, Val::Toast) {
                *v = Val::Null;
            }
        }
        self.counts.deletes += 1;
        self.push(b'D', pos, vals, None);
        Ok(())
    }

    pub fn truncate(&mut self, pos: Position) {
        let n = self.info.columns.len();
        self.counts.truncates += 1;
        self.truncate = Some(pos);
        self.push(b'T', pos, vec![Val::Null; n], None);
    }

    /// The batch as one record batch, and the decode counts.
    pub fn to_record_batch(&self) -> Result<(RecordBatch, DecodeStats)> {
        let info = &self.info;
        let ncols = info.columns.len();
        let mut cols = ColumnBuilders::new(info.qualified(), &info.columns);
        let mut op = StringBuilder::new();
        let mut lsn = Int64Builder::new();
        let mut ord = Int64Builder::new();
        let mut ts = TimestampMicrosecondBuilder::new().with_timezone("UTC");
        let mut xid = Int64Builder::new();
        let mut toast = StringBuilder::new();
        let mut origins = ColumnBuilders::new(info.qualified(), &layout::origin_columns(info));
        for (r, row) in self.rows.iter().enumerate() {
            let mut toasted = String::new();
            for j in 0..ncols {
                match self.vals[r * ncols + j] {
                    Val::Null => cols.append_null(j),
                    Val::Toast => {
                        cols.append_null(j);
                        if toasted.is_empty() {
                            toasted.push(',');
                        }
                        toasted.push_str(&info.columns[j].name);
                        toasted.push(',');
                    }
                    Val::Bytes { start, len } => {
                        cols.append(j, &self.arena[start..start + len], r as u64 + 1)?
                    }
                }
            }
            op.append_value(match row.op {
                b'I' => "I",
                b'U' => "U",
                b'D' => "D",
                _ => "T",
            });
            lsn.append_value(row.pos.lsn as i64);
            ord.append_value(row.pos.ord);
            ts.append_value(row.pos.commit_unix_micros());
            xid.append_value(row.pos.xid as i64);
            if toasted.is_empty() {
                toast.append_null();
            } else {
                toast.append_value(&toasted);
            }
            for i in 0..origins.len() {
                let v = row.origin.map(|o| self.origin_key(o)[i]);
                match v.and_then(|v| self.bytes(v)) {
                    Some(b) => origins.append(i, b, r as u64 + 1)?,
                    None => origins.append_null(i),
                }
            }
        }
        let mut arrays: Vec<ArrayRef> = cols.finish(1)?;
        arrays.push(Arc::new(op.finish()));
        arrays.push(Arc::new(lsn.finish()));
        arrays.push(Arc::new(ord.finish()));
        arrays.push(Arc::new(ts.finish()));
        arrays.push(Arc::new(xid.finish()));
        arrays.push(Arc::new(toast.finish()));
        arrays.extend(origins.finish(1)?);
        let batch =
            RecordBatch::try_new(layout::staged_arrow_schema(info), arrays).map_err(|e| {
                Error::Decode {
                    table: info.qualified(),
                    detail: format!("building the change batch: {e}"),
                }
            })?;
        Ok((batch, cols.stats()))
    }
}

#[cfg(test)]
mod tests;

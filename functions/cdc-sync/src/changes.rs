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
mod tests {
    use super::*;
    use crate::sql::{toast_origin_column, OP, ORD, TOAST};
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::Int64Type;
    use sluice::types::{map_column, MappingOptions, PgType};

    fn info(keyed: bool) -> Arc<TableInfo> {
        let o = MappingOptions::default();
        Arc::new(TableInfo {
            schema: "public".into(),
            name: "docs".into(),
            bq_name: "docs".into(),
            columns: vec![
                map_column("docs", "id", &PgType::scalar("int8"), false, o).unwrap(),
                map_column("docs", "body", &PgType::scalar("text"), false, o).unwrap(),
                map_column("docs", "n", &PgType::scalar("int4"), false, o).unwrap(),
            ],
            source_index: vec![0, 1, 2],
            relation_columns: 3,
            key: if keyed { vec![0] } else { vec![] },
        })
    }

    fn pos(lsn: u64, ord: i64) -> Position {
        Position {
            lsn,
            ord,
            commit_time: 0,
            xid: 7,
        }
    }

    const ID1: &[u8] = &[0, 0, 0, 0, 0, 0, 0, 1];
    const ID2: &[u8] = &[0, 0, 0, 0, 0, 0, 0, 2];
    const N5: &[u8] = &[0, 0, 0, 5];

    #[test]
    fn unchanged_toast_is_filled_from_an_earlier_change_in_the_batch() {
        let mut c = TableChanges::new(info(true));
        c.insert(
            pos(10, 0),
            &[Value::Binary(ID1), Value::Binary(b"big"), Value::Null],
        )
        .unwrap();
        let mut next = 2;
        c.update(
            pos(10, 1),
            None,
            &[Value::Binary(ID1), Value::UnchangedToast, Value::Binary(N5)],
            &mut next,
        )
        .unwrap();
        // Another row, never seen in this batch: the replica keeps its value.
        c.update(
            pos(11, 0),
            None,
            &[Value::Binary(ID2), Value::UnchangedToast, Value::Binary(N5)],
            &mut next,
        )
        .unwrap();
        assert_eq!((c.counts.toast_filled, c.counts.toast_kept), (1, 1));
        let (b, _) = c.to_record_batch().unwrap();
        let body = b.column(1).as_string::<i32>();
        assert_eq!(body.value(1), "big");
        assert!(body.is_null(2));
        let toast = b.column_by_name(TOAST).unwrap().as_string::<i32>();
        assert!(toast.is_null(0) && toast.is_null(1));
        assert_eq!(toast.value(2), ",body,");
        let ops = b.column_by_name(OP).unwrap().as_string::<i32>();
        assert_eq!((ops.value(0), ops.value(1)), ("I", "U"));
    }

    #[test]
    fn a_key_change_deletes_the_old_key() {
        let mut c = TableChanges::new(info(true));
        let mut next = 1;
        let old = (
            OldKind::Key,
            vec![Value::Binary(ID1), Value::Null, Value::Null],
        );
        c.update(
            pos(10, 0),
            Some(&old),
            &[Value::Binary(ID2), Value::Binary(b"x"), Value::Null],
            &mut next,
        )
        .unwrap();
        assert_eq!(next, 2);
        let (b, _) = c.to_record_batch().unwrap();
        let ops = b.column_by_name(OP).unwrap().as_string::<i32>();
        let ids = b.column(0).as_primitive::<Int64Type>();
        let ords = b.column_by_name(ORD).unwrap().as_primitive::<Int64Type>();
        assert_eq!((ops.value(0), ids.value(0), ords.value(0)), ("D", 1, 0));
        assert_eq!((ops.value(1), ids.value(1), ords.value(1)), ("U", 2, 1));
    }

    const ID3: &[u8] = &[0, 0, 0, 0, 0, 0, 0, 3];

    fn key_only(id: &'static [u8]) -> (OldKind, Vec<Value<'static>>) {
        (
            OldKind::Key,
            vec![Value::Binary(id), Value::Null, Value::Null],
        )
    }

    /// One staged row: (op, id, body, toast list, origin id).
    type Staged = (String, i64, Option<String>, Option<String>, Option<i64>);

    /// Each staged row.
    fn staged(c: &TableChanges) -> Vec<Staged> {
        let (b, _) = c.to_record_batch().unwrap();
        let ops = b.column_by_name(OP).unwrap().as_string::<i32>();
        let ids = b.column(0).as_primitive::<Int64Type>();
        let body = b.column(1).as_string::<i32>();
        let toast = b.column_by_name(TOAST).unwrap().as_string::<i32>();
        let from = b
            .column_by_name(&toast_origin_column(0))
            .unwrap()
            .as_primitive::<Int64Type>();
        let opt_s = |a: &arrow::array::StringArray, i: usize| {
            (!a.is_null(i)).then(|| a.value(i).to_string())
        };
        (0..b.num_rows())
            .map(|i| {
                (
                    ops.value(i).to_string(),
                    ids.value(i),
                    opt_s(body, i),
                    opt_s(toast, i),
                    (!from.is_null(i)).then(|| from.value(i)),
                )
            })
            .collect()
    }

    #[test]
    fn a_key_change_points_unchanged_toast_at_the_old_key() {
        let mut c = TableChanges::new(info(true));
        let mut next = 1;
        c.update(
            pos(10, 0),
            Some(&key_only(ID1)),
            &[Value::Binary(ID2), Value::UnchangedToast, Value::Binary(N5)],
            &mut next,
        )
        .unwrap();
        assert!(c.has_moved_toast());
        assert_eq!(
            staged(&c),
            vec![
                ("D".into(), 1, None, None, None),
                ("U".into(), 2, None, Some(",body,".into()), Some(1)),
            ]
        );
        assert_eq!((c.counts.toast_kept, c.counts.toast_moved), (1, 1));
    }

    #[test]
    fn chains_of_key_changes_and_later_updates_keep_the_first_origin() {
        let mut c = TableChanges::new(info(true));
        let mut next = 1;
        let toast = |id| [Value::Binary(id), Value::UnchangedToast, Value::Binary(N5)];
        // 1 → 2 → 3, then 3 updated without touching body: every row's body is row 1's.
        c.update(pos(10, 0), Some(&key_only(ID1)), &toast(ID2), &mut next)
            .unwrap();
        next = 1;
        c.update(pos(11, 0), Some(&key_only(ID2)), &toast(ID3), &mut next)
            .unwrap();
        next = 0;
        c.update(pos(12, 0), None, &toast(ID3), &mut next).unwrap();
        let rows = staged(&c);
        assert_eq!(rows.len(), 5);
        assert_eq!(
            rows[3],
            ("U".into(), 3, None, Some(",body,".into()), Some(1))
        );
        assert_eq!(
            rows[4],
            ("U".into(), 3, None, Some(",body,".into()), Some(1))
        );
        // Back to its first key: the replica's own row holds the value, no origin needed.
        next = 1;
        c.update(pos(13, 0), Some(&key_only(ID3)), &toast(ID1), &mut next)
            .unwrap();
        assert_eq!(
            staged(&c)[6],
            ("U".into(), 1, None, Some(",body,".into()), None)
        );
    }

    #[test]
    fn a_key_change_after_an_insert_in_the_batch_needs_no_origin() {
        let mut c = TableChanges::new(info(true));
        c.insert(
            pos(9, 0),
            &[Value::Binary(ID1), Value::Binary(b"big"), Value::Null],
        )
        .unwrap();
        let mut next = 1;
        c.update(
            pos(10, 0),
            Some(&key_only(ID1)),
            &[Value::Binary(ID2), Value::UnchangedToast, Value::Null],
            &mut next,
        )
        .unwrap();
        assert!(!c.has_moved_toast());
        assert_eq!(
            staged(&c)[2],
            ("U".into(), 2, Some("big".into()), None, None)
        );
    }

    #[test]
    fn replica_identity_full_fills_from_the_old_row() {
        let mut c = TableChanges::new(info(true));
        let mut next = 1;
        let old = (
            OldKind::Full,
            vec![Value::Binary(ID1), Value::Binary(b"old body"), Value::Null],
        );
        c.update(
            pos(10, 0),
            Some(&old),
            &[Value::Binary(ID2), Value::UnchangedToast, Value::Null],
            &mut next,
        )
        .unwrap();
        assert!(!c.has_moved_toast());
        assert_eq!(
            staged(&c)[1],
            ("U".into(), 2, Some("old body".into()), None, None)
        );
    }

    #[test]
    fn deletes_truncates_and_text_values() {
        let mut c = TableChanges::new(info(false));
        c.delete(
            pos(5, 0),
            &(
                OldKind::Full,
                vec![Value::Binary(ID1), Value::UnchangedToast, Value::Null],
            ),
        )
        .unwrap();
        c.truncate(pos(6, 0));
        assert_eq!(c.truncate, Some(pos(6, 0)));
        assert_eq!(c.counts.total(), 2);
        let err = c
            .insert(pos(7, 0), &[Value::Text(b"1"), Value::Null, Value::Null])
            .unwrap_err();
        assert!(
            err.to_string().contains("column id arrived in text format"),
            "{err}"
        );
        let short = c.insert(pos(7, 0), &[Value::Null]).unwrap_err();
        assert!(short.to_string().contains("has 1 columns"), "{short}");
    }
}

//! Unit tests of `changes`: unchanged TOAST filled in, key changes and their origins, deletes,
//! truncates, and the Arrow batch a table's changes become.

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
    let opt_s =
        |a: &arrow::array::StringArray, i: usize| (!a.is_null(i)).then(|| a.value(i).to_string());
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

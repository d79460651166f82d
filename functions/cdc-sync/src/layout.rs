//! The columns of the three kinds of table cdc-sync writes, in one place: staged changes (the
//! Parquet files and their staging tables), replicas, and append-only histories (also the
//! replicas of tables without a primary key). Names are those of `sql`, whose statements read
//! these tables.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field as ArrowField, Schema, SchemaRef, TimeUnit};
use sluice::bigquery::schema::{fields, Field};
use sluice::types::{BqType, ColumnMapping};

use crate::sql::{
    toast_origin_column, COMMIT_TS, DELETED, DELETED_AT, LSN, OP, ORD, ROW_LSN, ROW_ORD, SYNCED_AT,
    TOAST, XID,
};
use crate::tables::TableInfo;

/// Columns sluice adds to staged changes, replicas and histories: never taken for columns
/// dropped from the source.
pub const METADATA: &[&str] = &[
    ROW_LSN, ROW_ORD, SYNCED_AT, DELETED, DELETED_AT, OP, LSN, ORD, COMMIT_TS, XID, TOAST,
];

/// The key columns again, nullable and named `_sluice_toast_from_<i>`: where a change's
/// unchanged TOAST values are in the replica when not under its own key.
pub fn origin_columns(info: &TableInfo) -> Vec<ColumnMapping> {
    info.key
        .iter()
        .enumerate()
        .map(|(i, &k)| ColumnMapping {
            name: toast_origin_column(i),
            nullable: true,
            ..info.columns[k].clone()
        })
        .collect()
}

/// Arrow schema of the staged changes: the source columns, the change metadata, then the
/// origin key of moved unchanged TOAST values.
pub fn staged_arrow_schema(info: &TableInfo) -> SchemaRef {
    let utc = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let mut f: Vec<ArrowField> = info.columns.iter().map(|c| c.arrow_field()).collect();
    f.extend([
        ArrowField::new(OP, DataType::Utf8, false),
        ArrowField::new(LSN, DataType::Int64, false),
        ArrowField::new(ORD, DataType::Int64, false),
        ArrowField::new(COMMIT_TS, utc, false),
        ArrowField::new(XID, DataType::Int64, false),
        ArrowField::new(TOAST, DataType::Utf8, true),
    ]);
    f.extend(origin_columns(info).iter().map(|c| c.arrow_field()));
    Arc::new(Schema::new(f))
}

/// The change metadata as staged: `_op`, `_lsn` (commit LSN), `_ord` (place in the
/// transaction), `_commit_ts`, `_xid`, `_toast` (the unchanged-TOAST columns, `,a,b,`).
fn change_metadata() -> Vec<Field> {
    vec![
        Field::required(OP, BqType::String),
        Field::required(LSN, BqType::Int64),
        Field::required(ORD, BqType::Int64),
        Field::required(COMMIT_TS, BqType::Timestamp),
        Field::required(XID, BqType::Int64),
        Field::nullable(TOAST, BqType::String),
    ]
}

/// BigQuery fields of the staged changes, as `staged_arrow_schema` writes them.
pub fn staged_fields(info: &TableInfo) -> Vec<Field> {
    let mut f = fields(&info.columns);
    f.extend(change_metadata());
    f.extend(fields(&origin_columns(info)));
    f
}

/// BigQuery fields of the replica: every column NULLABLE (a row may be known only by its key),
/// then the replica metadata; a table without a key keeps every change instead.
pub fn replica_fields(info: &TableInfo) -> Vec<Field> {
    if !info.keyed() {
        return history_fields(info);
    }
    let mut f = optional(fields(&info.columns));
    f.extend([
        Field::nullable(ROW_LSN, BqType::Int64),
        Field::nullable(ROW_ORD, BqType::Int64),
        Field::nullable(SYNCED_AT, BqType::Timestamp),
        Field::nullable(DELETED, BqType::Bool),
        Field::nullable(DELETED_AT, BqType::Timestamp),
    ]);
    f
}

/// BigQuery fields of an append-only table of changes: the columns, the change metadata and
/// when it was synced, all NULLABLE.
pub fn history_fields(info: &TableInfo) -> Vec<Field> {
    let mut f = optional(fields(&info.columns));
    f.extend(optional(change_metadata()));
    f.push(Field::nullable(SYNCED_AT, BqType::Timestamp));
    f
}

fn optional(fields: Vec<Field>) -> Vec<Field> {
    fields.into_iter().map(Field::as_added).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice::bigquery::schema::Mode;
    use sluice::config::OnUnsupported;
    use sluice::postgres::catalog::{CatalogColumn, TableColumns};
    use sluice::types::PgType;

    fn info() -> TableInfo {
        let cat = TableColumns {
            qualified: "public.t".into(),
            columns: vec![
                CatalogColumn {
                    name: "id".into(),
                    ty: PgType::scalar("int8"),
                    not_null: true,
                },
                CatalogColumn {
                    name: "tags".into(),
                    ty: PgType::array_of(PgType::scalar("text")),
                    not_null: false,
                },
            ],
            primary_key: vec!["id".into()],
            pages: 0,
        };
        crate::tables::from_catalog(&cat, "public", "t", OnUnsupported::Error).unwrap()
    }

    #[test]
    fn replica_fields_are_nullable_with_metadata() {
        let t = info();
        let f = replica_fields(&t);
        assert_eq!(f[0].mode, Mode::Nullable);
        assert_eq!(f[1].mode, Mode::Repeated);
        assert_eq!(f[2].name, ROW_LSN);
        assert_eq!(f.len(), 7);
        let keyless = TableInfo { key: vec![], ..t };
        assert_eq!(replica_fields(&keyless)[2].name, "_op");
    }

    #[test]
    fn staged_fields_match_the_arrow_schema() {
        let t = info();
        let names: Vec<String> = staged_fields(&t).into_iter().map(|f| f.name).collect();
        let arrow: Vec<String> = staged_arrow_schema(&t)
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names, arrow);
        assert_eq!(
            names.last().map(String::as_str),
            Some("_sluice_toast_from_0")
        );
        // The change metadata is always there; the origin key only for moved TOAST values.
        let f = staged_fields(&t);
        assert_eq!((f[2].name.as_str(), f[2].mode), ("_op", Mode::Required));
        assert_eq!(f.last().map(|f| f.mode), Some(Mode::Nullable));
    }
}

//! What the Postgres catalog says about a table: its columns, types, key and size.

use super::PgConnection;
use crate::error::{Error, Result};
use crate::types::PgType;

/// One column as the catalog describes it.
#[derive(Debug, Clone)]
pub struct CatalogColumn {
    pub name: String,
    pub ty: PgType,
    pub not_null: bool,
}

/// A table's columns in order, its primary key and its size in pages.
#[derive(Debug, Clone)]
pub struct TableColumns {
    /// `schema.table`, as written in errors.
    pub qualified: String,
    pub columns: Vec<CatalogColumn>,
    pub primary_key: Vec<String>,
    pub pages: i64,
}

const COLUMNS_SQL: &str = "
SELECT a.attname::text,
       t.typname::text, t.typtype::text,
       et.typname::text, et.typtype::text,
       a.atttypmod, a.attnotnull
FROM pg_attribute a
JOIN pg_type dt ON dt.oid = a.atttypid
JOIN pg_type t ON t.oid = CASE WHEN dt.typtype = 'd' THEN dt.typbasetype ELSE dt.oid END
LEFT JOIN pg_type et0 ON et0.oid = t.typelem AND t.typcategory = 'A'
LEFT JOIN pg_type et ON et.oid = CASE WHEN et0.typtype = 'd' THEN et0.typbasetype ELSE et0.oid END
WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum";

const KEY_SQL: &str = "
SELECT a.attname::text
FROM pg_index i
JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) ON true
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indrelid = $1 AND i.indisprimary
ORDER BY k.ord";

/// Reads the catalog entry of `schema.table`; a missing table is a clear permanent error.
pub async fn table_columns(conn: &PgConnection, schema: &str, table: &str) -> Result<TableColumns> {
    let qualified = format!("{schema}.{table}");
    let ctx = format!("reading the catalog of {qualified}");
    let row = conn
        .query_opt(
            &ctx,
            "SELECT c.oid, (pg_relation_size(c.oid) / current_setting('block_size')::int)::int8
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p', 'v', 'm', 'f')",
            &[&schema, &table],
        )
        .await?;
    let Some(row) = row else {
        return Err(Error::Postgres {
            context: ctx,
            message: format!("table {qualified} does not exist in the source database"),
            kind: crate::error::ErrorKind::Permanent,
            source: None,
        });
    };
    let oid: u32 = row.get(0);
    let pages: i64 = row.get(1);
    let rows = conn.query(&ctx, COLUMNS_SQL, &[&oid]).await?;
    let columns = rows
        .iter()
        .map(|r| {
            let name: String = r.get(0);
            let typname: String = r.get(1);
            let typtype: String = r.get(2);
            let elem: Option<String> = r.get(3);
            let elem_typtype: Option<String> = r.get(4);
            let typmod: i32 = r.get(5);
            let not_null: bool = r.get(6);
            let ty = pg_type(typname, typtype, elem, elem_typtype, typmod);
            CatalogColumn { name, ty, not_null }
        })
        .collect();
    let primary_key = conn
        .query(&ctx, KEY_SQL, &[&oid])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    Ok(TableColumns {
        qualified,
        columns,
        primary_key,
        pages,
    })
}

/// A column type from its catalog names (domains already resolved to their base type).
fn pg_type(
    typname: String,
    typtype: String,
    elem: Option<String>,
    elem_typtype: Option<String>,
    typmod: i32,
) -> PgType {
    match elem {
        Some(e) => PgType::array_of(PgType {
            is_enum: elem_typtype.as_deref() == Some("e"),
            typmod,
            ..PgType::scalar(&e)
        }),
        None => PgType {
            is_enum: typtype == "e",
            typmod,
            ..PgType::scalar(&typname)
        },
    }
}

const TYPES_SQL: &str = "
SELECT dt.oid, t.typname::text, t.typtype::text, et.typname::text, et.typtype::text
FROM pg_type dt
JOIN pg_type t ON t.oid = CASE WHEN dt.typtype = 'd' THEN dt.typbasetype ELSE dt.oid END
LEFT JOIN pg_type et0 ON et0.oid = t.typelem AND t.typcategory = 'A'
LEFT JOIN pg_type et ON et.oid = CASE WHEN et0.typtype = 'd' THEN et0.typbasetype ELSE et0.oid END
WHERE dt.oid = ANY($1)";

/// Types by OID (as a replication stream names them), with typmod −1; set it per column.
pub async fn types_by_oid(
    conn: &PgConnection,
    oids: &[u32],
) -> Result<std::collections::HashMap<u32, PgType>> {
    let rows = conn
        .query("reading column types from the catalog", TYPES_SQL, &[&oids])
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let oid: u32 = r.get(0);
            (oid, pg_type(r.get(1), r.get(2), r.get(3), r.get(4), -1))
        })
        .collect())
}

/// `SELECT count(*) FROM schema.table`, quoted.
pub fn count_rows_sql(schema: &str, table: &str) -> String {
    format!(
        "SELECT count(*) FROM {}.{}",
        quote_ident(schema),
        quote_ident(table)
    )
}

/// Quotes an identifier for Postgres SQL.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    #[test]
    fn quote_ident_doubles_quotes() {
        assert_eq!(super::quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(
            super::count_rows_sql("billing", "in\"v"),
            "SELECT count(*) FROM \"billing\".\"in\"\"v\""
        );
    }
}

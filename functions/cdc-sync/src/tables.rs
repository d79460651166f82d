//! Replicated tables: their columns as the stream (or the catalog) describes them, mapped to
//! BigQuery, their key, and what the lake remembers about each (`_table.json`).

use std::collections::HashMap;

use crate::sql::{COMMIT_TS, LSN, OP, ORD, TOAST, XID};
use object_store::path::Path;
use serde::{Deserialize, Serialize};
use sluice::catalog;
use sluice::config::OnUnsupported;
use sluice::error::ErrorKind;
use sluice::lake::Lake;
use sluice::postgres::catalog::{types_by_oid, TableColumns};
use sluice::postgres::pgoutput::Relation;
use sluice::postgres::PgConnection;
use sluice::types::{map_column, ColumnMapping, MappingOptions, PgType};
use sluice::{Error, Result};

/// A table as one batch sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct TableInfo {
    pub schema: String,
    pub name: String,
    /// Its replica's name in BigQuery (`sluice::catalog::replica_table`).
    pub bq_name: String,
    /// The mapped columns (unsupported ones skipped when configured).
    pub columns: Vec<ColumnMapping>,
    /// For each mapped column, its position in the stream's tuples.
    pub source_index: Vec<usize>,
    /// How many columns the stream's tuples have.
    pub relation_columns: usize,
    /// Indices into `columns` of the primary key; empty for tables without one.
    pub key: Vec<usize>,
}

impl TableInfo {
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }

    pub fn keyed(&self) -> bool {
        !self.key.is_empty()
    }

    pub fn key_names(&self) -> Vec<String> {
        self.key
            .iter()
            .map(|&i| self.columns[i].name.clone())
            .collect()
    }

    pub fn column_names(&self) -> Vec<String> {
        self.columns.iter().map(|c| c.name.clone()).collect()
    }
}

/// Column names of the staged changes that are sluice's own (besides the `_sluice_` prefix).
const STAGED_METADATA: &[&str] = &[OP, LSN, ORD, COMMIT_TS, XID, TOAST];

/// Why a source column cannot be replicated under its own name, if it cannot: sluice's own
/// columns sit beside the source's in the staged changes and the replica, and BigQuery column
/// names ignore case.
fn reserved_name(qualified: &str, name: &str) -> Option<Error> {
    let lower = name.to_ascii_lowercase();
    (lower.starts_with("_sluice_") || STAGED_METADATA.contains(&lower.as_str())).then(|| {
        Error::config(format!(
            "{qualified}: column {name} has a name cdc-sync keeps for its own columns (names \
             starting with _sluice_, and {}); rename it in Postgres, or set `on_unsupported: skip` \
             in the cdc block to leave it out",
            STAGED_METADATA.join(", ")
        ))
    })
}

/// Maps columns, skipping or refusing unsupported types (and names) as configured.
fn map_columns(
    qualified: &str,
    columns: impl Iterator<Item = (usize, String, PgType)>,
    on_unsupported: OnUnsupported,
) -> Result<(Vec<ColumnMapping>, Vec<usize>)> {
    let mut mapped: Vec<ColumnMapping> = vec![];
    let mut index = vec![];
    for (i, name, ty) in columns {
        if let Some(e) = reserved_name(qualified, &name) {
            if on_unsupported == OnUnsupported::Skip {
                tracing::warn!(table = %qualified, column = %name, error = %e, "column skipped");
                continue;
            }
            return Err(e);
        }
        if let Some(other) = mapped.iter().find(|m| m.name.eq_ignore_ascii_case(&name)) {
            return Err(Error::config(format!(
                "{qualified}: columns {} and {name} differ only in case, which BigQuery column names ignore; rename one in Postgres",
                other.name
            )));
        }
        match map_column(qualified, &name, &ty, false, MappingOptions::default()) {
            Ok(m) => {
                mapped.push(m);
                index.push(i);
            }
            Err(e @ Error::UnsupportedType { .. }) if on_unsupported == OnUnsupported::Skip => {
                tracing::warn!(table = %qualified, column = %name, error = %e, "column skipped");
            }
            Err(e) => return Err(e),
        }
    }
    Ok((mapped, index))
}

/// The table a Relation message describes; type OIDs are looked up (and cached) in the catalog.
pub async fn from_relation(
    catalog: &PgConnection,
    types: &mut HashMap<u32, PgType>,
    rel: &Relation,
    on_unsupported: OnUnsupported,
) -> Result<TableInfo> {
    let missing: Vec<u32> = rel
        .columns
        .iter()
        .map(|c| c.type_oid)
        .filter(|o| !types.contains_key(o))
        .collect();
    if !missing.is_empty() {
        types.extend(types_by_oid(catalog, &missing).await?);
    }
    let qualified = format!("{}.{}", rel.schema, rel.name);
    let mut cols = vec![];
    for (i, c) in rel.columns.iter().enumerate() {
        let ty = types
            .get(&c.type_oid)
            .cloned()
            .ok_or_else(|| Error::Postgres {
                context: format!("reading the type of {qualified}.{}", c.name),
                message: format!("type oid {} is not in the catalog", c.type_oid),
                kind: ErrorKind::Permanent,
                source: None,
            })?;
        cols.push((i, c.name.clone(), ty.with_typmod(c.typmod)));
    }
    let (columns, source_index) = map_columns(&qualified, cols.into_iter(), on_unsupported)?;
    // Replica identity default or index: the flagged columns are the key. Full flags every
    // column, so the key comes from the catalog's primary key instead.
    let key_names: Vec<String> = if rel.replica_identity == b'f' {
        let row = catalog
            .query(
                &format!("reading the primary key of {qualified}"),
                "SELECT a.attname::text FROM pg_index i
                 JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) ON true
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                 WHERE i.indrelid = $1 AND i.indisprimary ORDER BY k.ord",
                &[&rel.id],
            )
            .await?;
        row.iter().map(|r| r.get(0)).collect()
    } else {
        rel.columns
            .iter()
            .filter(|c| c.key)
            .map(|c| c.name.clone())
            .collect()
    };
    let info = TableInfo {
        bq_name: catalog::replica_table(&rel.schema, &rel.name),
        schema: rel.schema.clone(),
        name: rel.name.clone(),
        key: key_indices(&qualified, &columns, &key_names)?,
        columns,
        source_index,
        relation_columns: rel.columns.len(),
    };
    Ok(info)
}

/// The table as the catalog describes it now (for snapshots).
pub fn from_catalog(
    cat: &TableColumns,
    schema: &str,
    name: &str,
    on_unsupported: OnUnsupported,
) -> Result<TableInfo> {
    let (columns, source_index) = map_columns(
        &cat.qualified,
        cat.columns
            .iter()
            .enumerate()
            .map(|(i, c)| (i, c.name.clone(), c.ty.clone())),
        on_unsupported,
    )?;
    Ok(TableInfo {
        schema: schema.to_string(),
        name: name.to_string(),
        bq_name: catalog::replica_table(schema, name),
        key: key_indices(&cat.qualified, &columns, &cat.primary_key)?,
        columns,
        source_index,
        relation_columns: cat.columns.len(),
    })
}

fn key_indices(qualified: &str, columns: &[ColumnMapping], names: &[String]) -> Result<Vec<usize>> {
    names
        .iter()
        .map(|k| {
            columns.iter().position(|c| &c.name == k).ok_or_else(|| {
                Error::config(format!(
                    "{qualified}: key column {k} has an unsupported type and cannot be skipped"
                ))
            })
        })
        .collect()
}

/// What the lake remembers of a replicated table: written after its snapshot is in BigQuery.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TableState {
    pub schema: String,
    pub table: String,
    /// Primary key at snapshot time; a different key later needs a resync.
    pub key: Vec<String>,
    /// The slot position the snapshot was stamped with.
    pub snapshot_lsn: String,
    pub snapshot_rows: u64,
    pub snapshot_at: String,
}

pub fn state_path(source: &str, bq_name: &str) -> Path {
    Path::from(format!("cdc/{source}/{bq_name}/_table.json"))
}

pub async fn read_state(lake: &Lake, source: &str, bq_name: &str) -> Result<Option<TableState>> {
    let p = state_path(source, bq_name);
    match lake.get_opt(&p).await? {
        None => Ok(None),
        Some(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| Error::lake_other(format!("reading {}", lake.gs_uri(&p)), e)),
    }
}

pub async fn write_state(lake: &Lake, source: &str, bq_name: &str, s: &TableState) -> Result<()> {
    let body = serde_json::to_vec_pretty(s).map_err(|e| Error::lake_other("table state", e))?;
    lake.put(&state_path(source, bq_name), body.into()).await
}

/// The (schema, table) of every table of a source with a replica (a state in the lake),
/// but those of `published` (whose replicas' names are not even looked up).
pub async fn replicated_besides(
    lake: &Lake,
    source: &str,
    published: &[(String, String)],
) -> Result<Vec<(String, String)>> {
    let known: std::collections::HashSet<String> = published
        .iter()
        .map(|(s, t)| catalog::replica_table(s, t))
        .collect();
    let mut out = vec![];
    for folder in lake.folders(&Path::from(format!("cdc/{source}"))).await? {
        let Some(bq_name) = folder.filename().filter(|n| !known.contains(*n)) else {
            continue;
        };
        if let Some(s) = read_state(lake, source, bq_name).await? {
            out.push((s.schema, s.table));
        }
    }
    out.sort();
    Ok(out)
}

/// Forgets one table: its replica stays as it is, no run touches it again.
pub async fn forget(lake: &Lake, source: &str, bq_name: &str) -> Result<bool> {
    let p = state_path(source, bq_name);
    if lake.get_opt(&p).await?.is_none() {
        return Ok(false);
    }
    lake.delete(&p).await?;
    Ok(true)
}

/// Deletes the state of every table of a source; returns how many there were.
pub async fn forget_all(lake: &Lake, source: &str) -> Result<usize> {
    let mut n = 0;
    for folder in lake.folders(&Path::from(format!("cdc/{source}"))).await? {
        if let Some(bq_name) = folder.filename() {
            n += usize::from(forget(lake, source, bq_name).await?);
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sluice_column_names_are_refused_or_skipped() {
        let cols = || {
            vec![
                (0, "id".to_string(), PgType::scalar("int8")),
                (1, "_SLUICE_deleted".to_string(), PgType::scalar("bool")),
                (2, "_op".to_string(), PgType::scalar("text")),
            ]
            .into_iter()
        };
        let e = map_columns("public.t", cols(), OnUnsupported::Error)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("public.t: column _SLUICE_deleted has a name cdc-sync keeps"),
            "{e}"
        );
        let (mapped, index) = map_columns("public.t", cols(), OnUnsupported::Skip).unwrap();
        assert_eq!((mapped.len(), index), (1, vec![0]));
        let twins = vec![
            (0, "Id".to_string(), PgType::scalar("int8")),
            (1, "id".to_string(), PgType::scalar("int8")),
        ];
        let e = map_columns("public.t", twins.into_iter(), OnUnsupported::Skip)
            .unwrap_err()
            .to_string();
        assert!(e.contains("columns Id and id differ only in case"), "{e}");
    }

    #[test]
    fn unsupported_key_columns_cannot_be_skipped() {
        let err = key_indices("public.t", &[], &["id".into()]).unwrap_err();
        assert!(err.to_string().contains("key column id"));
    }
}

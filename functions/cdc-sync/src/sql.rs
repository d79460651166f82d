//! The SQL that applies captured changes to replica tables, as pure functions.
//!
//! A batch of changes sits in a staging table with the source columns plus the metadata below.
//! A change is *newer* than a replica row when its (commit LSN, ordinal in transaction) is
//! greater than the row's (`_sluice_lsn`, `_sluice_ord`); only newer changes apply, so running
//! any statement here twice leaves the same replica.

use sluice::bigquery::sql::ident;
use sluice::config::DeleteMode;

/// Metadata columns of a staged change.
pub const OP: &str = "_op";
pub const LSN: &str = "_lsn";
pub const ORD: &str = "_ord";
pub const COMMIT_TS: &str = "_commit_ts";
pub const XID: &str = "_xid";
/// `,a,b,` — the columns whose value was unchanged TOAST (not sent), or NULL.
pub const TOAST: &str = "_toast";

/// Staged key of the replica row that holds a change's unchanged TOAST values when that row
/// stood under another key (the key changed): `_sluice_toast_from_<i>` for key column `i`.
pub fn toast_origin_column(i: usize) -> String {
    format!("_sluice_toast_from_{i}")
}

/// Metadata columns of a replica row.
pub const ROW_LSN: &str = "_sluice_lsn";
pub const ROW_ORD: &str = "_sluice_ord";
pub const SYNCED_AT: &str = "_sluice_synced_at";
pub const DELETED: &str = "_sluice_deleted";
pub const DELETED_AT: &str = "_sluice_deleted_at";

/// What one MERGE of a batch into a replica table needs.
#[derive(Debug, Clone)]
pub struct MergeSpec {
    /// Quoted replica table.
    pub target: String,
    /// Quoted staging table of the batch.
    pub staging: String,
    /// Primary key columns.
    pub key: Vec<String>,
    /// Source columns present in the batch (key included), in order.
    pub columns: Vec<String>,
    /// Replica columns the source no longer has, with their GoogleSQL type: set to NULL by
    /// every change from now on.
    pub dropped: Vec<(String, String)>,
    pub deletes: DeleteMode,
    /// Only changes after the position `@after_lsn`/`@after_ord` (set after a truncate).
    pub after_truncate: bool,
    /// Some changes' unchanged TOAST values are in the replica under another key (their
    /// `toast_origin_column`s): read them from there. Off, the replica is read only once.
    pub moved_toast: bool,
}

fn newer(s: &str, t: &str) -> String {
    format!(
        "({s}.{LSN} > {t}.{ROW_LSN} OR ({s}.{LSN} = {t}.{ROW_LSN} AND {s}.{ORD} > {t}.{ROW_ORD}))"
    )
}

/// The filter `position > (@after_lsn, @after_ord)` on staged changes.
fn after_position() -> String {
    format!("({LSN} > @after_lsn OR ({LSN} = @after_lsn AND {ORD} > @after_ord))")
}

/// MERGE of the latest change per key (by LSN, then ordinal) into the replica.
///
/// An unchanged TOAST value (named in `_toast`) keeps what the replica holds for the key; with
/// `moved_toast`, a change whose row stood under another key takes that row's values instead
/// (read from the replica as it was before this statement), so a key change keeps them too.
pub fn merge_changes(m: &MergeSpec) -> String {
    let q = |c: &String| ident(c);
    let key_list: Vec<String> = m.key.iter().map(q).collect();
    let meta = [OP, LSN, ORD, COMMIT_TS, TOAST];
    let origin: Vec<String> = (0..m.key.len()).map(toast_origin_column).collect();
    let select: Vec<String> = m
        .columns
        .iter()
        .map(q)
        .chain(meta.iter().map(|c| c.to_string()))
        .collect();
    // Truncates are applied on their own (`truncate_rows`); only row changes merge.
    let filter = if m.after_truncate {
        format!("\n    WHERE {OP} != 'T' AND {}", after_position())
    } else {
        format!("\n    WHERE {OP} != 'T'")
    };
    let latest = |inner: &[String]| {
        format!(
            "SELECT {cols}, ROW_NUMBER() OVER (PARTITION BY {keys} ORDER BY {LSN} DESC, {ORD} DESC) AS _sluice_rn\n    FROM {staging}{filter}",
            cols = inner.join(", "),
            keys = key_list.join(", "),
            staging = m.staging,
        )
    };
    let source = if m.moved_toast {
        let inner: Vec<String> = select.iter().cloned().chain(origin.clone()).collect();
        let moved = |c: &String| {
            format!(
                "IF(IFNULL(O._sluice_found, FALSE) AND STRPOS(IFNULL(C.{TOAST}, ''), ',{c},') > 0, O.{qc}, C.{qc}) AS {qc}",
                qc = q(c)
            )
        };
        let outer: Vec<String> = m
            .columns
            .iter()
            .map(|c| {
                if m.key.contains(c) {
                    format!("C.{}", q(c))
                } else {
                    moved(c)
                }
            })
            .chain([OP, LSN, ORD, COMMIT_TS].iter().map(|c| format!("C.{c}")))
            .chain([format!(
                "IF(IFNULL(O._sluice_found, FALSE), CAST(NULL AS STRING), C.{TOAST}) AS {TOAST}"
            )])
            .collect();
        let on: Vec<String> = key_list
            .iter()
            .zip(&origin)
            .map(|(k, o)| format!("O.{k} = C.{o}"))
            .collect();
        // A soft-deleted row is not the row before an update.
        format!(
            "SELECT {outer}\n  FROM (\n    {latest}\n  ) C\n  LEFT JOIN (SELECT *, TRUE AS _sluice_found FROM {target} WHERE NOT IFNULL({DELETED}, FALSE)) O ON {on}\n  WHERE C._sluice_rn = 1",
            outer = outer.join(", "),
            latest = latest(&inner),
            target = m.target,
            on = on.join(" AND "),
        )
    } else {
        format!(
            "SELECT {select}\n  FROM (\n    {latest}\n  )\n  WHERE _sluice_rn = 1",
            select = select.join(", "),
            latest = latest(&select),
        )
    };
    let on: Vec<String> = m
        .key
        .iter()
        .map(|k| format!("T.{k} = S.{k}", k = q(k)))
        .collect();
    let newer = newer("S", "T");
    let mut sets: Vec<String> = m
        .columns
        .iter()
        .filter(|c| !m.key.contains(c))
        .map(|c| {
            // An unchanged TOAST value was not sent: keep what the replica holds.
            format!(
                "{c} = IF(STRPOS(IFNULL(S.{TOAST}, ''), ',{raw},') > 0, T.{c}, S.{c})",
                c = q(c),
                raw = c
            )
        })
        .collect();
    // Typed NULLs: the emulator refuses a bare `SET c = NULL`.
    sets.extend(
        m.dropped
            .iter()
            .map(|(c, ty)| format!("{} = CAST(NULL AS {ty})", q(c))),
    );
    sets.push(format!("{ROW_LSN} = S.{LSN}"));
    sets.push(format!("{ROW_ORD} = S.{ORD}"));
    sets.push(format!("{SYNCED_AT} = CURRENT_TIMESTAMP()"));
    sets.push(format!("{DELETED} = FALSE"));
    sets.push(format!("{DELETED_AT} = CAST(NULL AS TIMESTAMP)"));
    let on_delete = match m.deletes {
        DeleteMode::Hard => "DELETE".to_string(),
        DeleteMode::Soft => format!(
            "UPDATE SET {DELETED} = TRUE, {DELETED_AT} = S.{COMMIT_TS}, {ROW_LSN} = S.{LSN}, \
             {ROW_ORD} = S.{ORD}, {SYNCED_AT} = CURRENT_TIMESTAMP()"
        ),
    };
    let insert_cols: Vec<String> = m
        .columns
        .iter()
        .map(q)
        .chain(
            [ROW_LSN, ROW_ORD, SYNCED_AT, DELETED]
                .iter()
                .map(|c| c.to_string()),
        )
        .collect();
    let insert_vals: Vec<String> = m
        .columns
        .iter()
        .map(|c| format!("S.{}", q(c)))
        .chain([
            format!("S.{LSN}"),
            format!("S.{ORD}"),
            "CURRENT_TIMESTAMP()".to_string(),
            "FALSE".to_string(),
        ])
        .collect();
    format!(
        "MERGE {target} T\n\
         USING (\n  {source}\n) S\n\
         ON {on}\n\
         WHEN MATCHED AND S.{OP} = 'D' AND {newer} THEN {on_delete}\n\
         WHEN MATCHED AND S.{OP} != 'D' AND {newer} THEN UPDATE SET {sets}\n\
         WHEN NOT MATCHED AND S.{OP} != 'D' THEN INSERT ({insert_cols}) VALUES ({insert_vals})",
        target = m.target,
        on = on.join(" AND "),
        sets = sets.join(", "),
        insert_cols = insert_cols.join(", "),
        insert_vals = insert_vals.join(", "),
    )
}

/// The live rows of a replica (not soft-deleted; every change of an append-only one) as `n`,
/// and when it was last synced as `t`: what `cdc-sync status` shows.
pub fn replica_status(target: &str, append_only: bool) -> String {
    let live = if append_only {
        "COUNT(*)".to_string()
    } else {
        format!("COUNTIF(NOT IFNULL({DELETED}, FALSE))")
    };
    format!("SELECT {live} AS n, CAST(MAX({SYNCED_AT}) AS STRING) AS t FROM {target}")
}

/// Changes a column's type in place, to one BigQuery widens it to (`BqType::widens_to`).
pub fn widen_column(target: &str, column: &str, to: sluice::types::BqType) -> String {
    format!(
        "ALTER TABLE {target} ALTER COLUMN {} SET DATA TYPE {}",
        ident(column),
        to.sql_name()
    )
}

/// Empties (or soft-deletes) every replica row older than the truncate at `@lsn`/`@ord`.
pub fn truncate_rows(target: &str, deletes: DeleteMode) -> String {
    let older = format!("({ROW_LSN} < @lsn OR ({ROW_LSN} = @lsn AND {ROW_ORD} < @ord))");
    match deletes {
        DeleteMode::Hard => format!("DELETE FROM {target} WHERE {older}"),
        DeleteMode::Soft => format!(
            "UPDATE {target} SET {DELETED} = TRUE, {DELETED_AT} = @ts, {ROW_LSN} = @lsn, \
             {ROW_ORD} = @ord, {SYNCED_AT} = CURRENT_TIMESTAMP() WHERE NOT {DELETED} AND {older}"
        ),
    }
}

/// Appends staged changes to an append-only table (`<table>_history`, or the replica of a
/// table without a primary key); changes already there (same LSN and ordinal) are skipped.
pub fn append_changes(target: &str, staging: &str, columns: &[String]) -> String {
    let cols: Vec<String> = columns
        .iter()
        .map(|c| ident(c))
        .chain(
            [OP, LSN, ORD, COMMIT_TS, XID, TOAST]
                .iter()
                .map(|c| c.to_string()),
        )
        .collect();
    let cols = cols.join(", ");
    format!(
        "INSERT INTO {target} ({cols}, {SYNCED_AT})\n\
         SELECT {cols}, CURRENT_TIMESTAMP() FROM {staging} S\n\
         WHERE NOT EXISTS (SELECT 1 FROM {target} H WHERE H.{LSN} = S.{LSN} AND H.{ORD} = S.{ORD})"
    )
}

/// Replaces a replica's rows with a snapshot, stamped with the position `@lsn` (ordinal −1, so
/// every change not yet applied is newer), in one transaction.
pub fn replace_with_snapshot(target: &str, staging: &str, columns: &[String]) -> String {
    let cols: Vec<String> = columns.iter().map(|c| ident(c)).collect();
    let cols = cols.join(", ");
    format!(
        "BEGIN TRANSACTION;\n\
         DELETE FROM {target} WHERE TRUE;\n\
         INSERT INTO {target} ({cols}, {ROW_LSN}, {ROW_ORD}, {SYNCED_AT}, {DELETED})\n\
         SELECT {cols}, @lsn, -1, CURRENT_TIMESTAMP(), FALSE FROM {staging};\n\
         COMMIT TRANSACTION;"
    )
}

/// Replaces an append-only table's rows with a snapshot (op `S`).
pub fn replace_history_with_snapshot(target: &str, staging: &str, columns: &[String]) -> String {
    let cols: Vec<String> = columns.iter().map(|c| ident(c)).collect();
    let cols = cols.join(", ");
    format!(
        "BEGIN TRANSACTION;\n\
         DELETE FROM {target} WHERE TRUE;\n\
         INSERT INTO {target} ({cols}, {OP}, {LSN}, {ORD}, {SYNCED_AT})\n\
         SELECT {cols}, 'S', @lsn, -1, CURRENT_TIMESTAMP() FROM {staging};\n\
         COMMIT TRANSACTION;"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> MergeSpec {
        MergeSpec {
            target: "`p.d.t`".into(),
            staging: "`p.s.c`".into(),
            key: vec!["id".into()],
            columns: vec!["id".into(), "body".into()],
            dropped: vec![("old".into(), "INT64".into())],
            deletes: DeleteMode::Hard,
            after_truncate: false,
            moved_toast: false,
        }
    }

    #[test]
    fn merge_takes_the_latest_change_per_key_and_applies_only_newer_ones() {
        let sql = merge_changes(&spec());
        assert_eq!(
            sql,
            "MERGE `p.d.t` T\n\
             USING (\n  SELECT `id`, `body`, _op, _lsn, _ord, _commit_ts, _toast\n  FROM (\n    SELECT `id`, `body`, _op, _lsn, _ord, _commit_ts, _toast, ROW_NUMBER() OVER (PARTITION BY `id` ORDER BY _lsn DESC, _ord DESC) AS _sluice_rn\n    FROM `p.s.c`\n    WHERE _op != 'T'\n  )\n  WHERE _sluice_rn = 1\n) S\n\
             ON T.`id` = S.`id`\n\
             WHEN MATCHED AND S._op = 'D' AND (S._lsn > T._sluice_lsn OR (S._lsn = T._sluice_lsn AND S._ord > T._sluice_ord)) THEN DELETE\n\
             WHEN MATCHED AND S._op != 'D' AND (S._lsn > T._sluice_lsn OR (S._lsn = T._sluice_lsn AND S._ord > T._sluice_ord)) THEN UPDATE SET \
             `body` = IF(STRPOS(IFNULL(S._toast, ''), ',body,') > 0, T.`body`, S.`body`), `old` = CAST(NULL AS INT64), \
             _sluice_lsn = S._lsn, _sluice_ord = S._ord, _sluice_synced_at = CURRENT_TIMESTAMP(), _sluice_deleted = FALSE, _sluice_deleted_at = CAST(NULL AS TIMESTAMP)\n\
             WHEN NOT MATCHED AND S._op != 'D' THEN INSERT (`id`, `body`, _sluice_lsn, _sluice_ord, _sluice_synced_at, _sluice_deleted) \
             VALUES (S.`id`, S.`body`, S._lsn, S._ord, CURRENT_TIMESTAMP(), FALSE)"
        );
    }

    #[test]
    fn soft_deletes_and_truncate_positions() {
        let m = MergeSpec {
            deletes: DeleteMode::Soft,
            after_truncate: true,
            key: vec!["a".into(), "b".into()],
            columns: vec!["a".into(), "b".into()],
            dropped: vec![],
            ..spec()
        };
        let sql = merge_changes(&m);
        assert!(sql.contains("THEN UPDATE SET _sluice_deleted = TRUE, _sluice_deleted_at = S._commit_ts, _sluice_lsn = S._lsn"));
        assert!(sql.contains("PARTITION BY `a`, `b`"));
        assert!(sql.contains("ON T.`a` = S.`a` AND T.`b` = S.`b`"));
        assert!(sql.contains(
            "WHERE _op != 'T' AND (_lsn > @after_lsn OR (_lsn = @after_lsn AND _ord > @after_ord))"
        ));
        // Only key columns: nothing to set but the metadata.
        assert!(sql.contains("UPDATE SET _sluice_lsn = S._lsn"));
    }

    #[test]
    fn moved_toast_values_come_from_the_row_under_the_old_key() {
        let sql = merge_changes(&MergeSpec {
            moved_toast: true,
            ..spec()
        });
        assert!(
            sql.contains(
                "USING (\n  SELECT C.`id`, IF(IFNULL(O._sluice_found, FALSE) AND STRPOS(IFNULL(C._toast, ''), ',body,') > 0, O.`body`, C.`body`) AS `body`, \
                 C._op, C._lsn, C._ord, C._commit_ts, IF(IFNULL(O._sluice_found, FALSE), CAST(NULL AS STRING), C._toast) AS _toast\n"
            ),
            "{sql}"
        );
        assert!(sql.contains("SELECT `id`, `body`, _op, _lsn, _ord, _commit_ts, _toast, _sluice_toast_from_0, ROW_NUMBER()"), "{sql}");
        assert!(
            sql.contains(
                "  ) C\n  LEFT JOIN (SELECT *, TRUE AS _sluice_found FROM `p.d.t` WHERE NOT IFNULL(_sluice_deleted, FALSE)) O \
                 ON O.`id` = C._sluice_toast_from_0\n  WHERE C._sluice_rn = 1\n) S\n"
            ),
            "{sql}"
        );
        // The rest is the MERGE without moved values.
        let tail = |s: &str| s[s.find(") S\n").unwrap()..].to_string();
        assert_eq!(tail(&sql), tail(&merge_changes(&spec())));
    }

    #[test]
    fn status_counts_live_rows() {
        assert_eq!(
            replica_status("`p.d.t`", false),
            "SELECT COUNTIF(NOT IFNULL(_sluice_deleted, FALSE)) AS n, CAST(MAX(_sluice_synced_at) AS STRING) AS t FROM `p.d.t`"
        );
        assert!(replica_status("`p.d.t`", true).starts_with("SELECT COUNT(*) AS n,"));
    }

    #[test]
    fn widening_names_the_googlesql_type() {
        assert_eq!(
            widen_column("`p.d.t`", "n", sluice::types::BqType::Numeric),
            "ALTER TABLE `p.d.t` ALTER COLUMN `n` SET DATA TYPE NUMERIC"
        );
        assert_eq!(
            widen_column("`p.d.t`", "n", sluice::types::BqType::Float64),
            "ALTER TABLE `p.d.t` ALTER COLUMN `n` SET DATA TYPE FLOAT64"
        );
    }

    #[test]
    fn truncate_touches_only_older_rows() {
        assert_eq!(
            truncate_rows("`p.d.t`", DeleteMode::Hard),
            "DELETE FROM `p.d.t` WHERE (_sluice_lsn < @lsn OR (_sluice_lsn = @lsn AND _sluice_ord < @ord))"
        );
        let soft = truncate_rows("`p.d.t`", DeleteMode::Soft);
        assert!(
            soft.starts_with("UPDATE `p.d.t` SET _sluice_deleted = TRUE, _sluice_deleted_at = @ts")
        );
        assert!(soft.ends_with("WHERE NOT _sluice_deleted AND (_sluice_lsn < @lsn OR (_sluice_lsn = @lsn AND _sluice_ord < @ord))"));
    }

    #[test]
    fn appends_skip_changes_already_there() {
        assert_eq!(
            append_changes("`p.d.h`", "`p.s.c`", &["id".into()]),
            "INSERT INTO `p.d.h` (`id`, _op, _lsn, _ord, _commit_ts, _xid, _toast, _sluice_synced_at)\n\
             SELECT `id`, _op, _lsn, _ord, _commit_ts, _xid, _toast, CURRENT_TIMESTAMP() FROM `p.s.c` S\n\
             WHERE NOT EXISTS (SELECT 1 FROM `p.d.h` H WHERE H._lsn = S._lsn AND H._ord = S._ord)"
        );
    }

    #[test]
    fn snapshots_replace_in_one_transaction() {
        let sql = replace_with_snapshot("`p.d.t`", "`p.s.snap`", &["id".into()]);
        assert_eq!(
            sql,
            "BEGIN TRANSACTION;\n\
             DELETE FROM `p.d.t` WHERE TRUE;\n\
             INSERT INTO `p.d.t` (`id`, _sluice_lsn, _sluice_ord, _sluice_synced_at, _sluice_deleted)\n\
             SELECT `id`, @lsn, -1, CURRENT_TIMESTAMP(), FALSE FROM `p.s.snap`;\n\
             COMMIT TRANSACTION;"
        );
        assert!(
            replace_history_with_snapshot("`p.d.t`", "`p.s.snap`", &["id".into()])
                .contains("SELECT `id`, 'S', @lsn, -1, CURRENT_TIMESTAMP() FROM `p.s.snap`;")
        );
    }
}

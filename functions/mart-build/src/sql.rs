//! The SQL mart-build runs around a mart's SELECT, as pure functions of quoted table names.
//! Values only ever enter as query parameters (`@ds`, a check's `@fc0_values`).

use sluice::bigquery::sql::ident;

use sluice::marts::Check;

/// Column of the check query holding the built rows.
pub const ROWS: &str = "_rows";
/// Column of the check query counting rows outside the `@ds` partition.
pub const OUTSIDE: &str = "_outside";

/// The column holding check `i`'s value in the check query.
pub fn check_column(i: usize) -> String {
    format!("_c{i}")
}

/// One query computing every check over the built rows: `_rows`, then `_c0`, `_c1`, ... in the
/// order of `checks`, and for a partition mart `_outside`, the rows whose partition date is not
/// `@ds` (such rows would land in another day's partition).
pub fn check_query(source: &str, checks: &[&Check], partition_date: Option<&str>) -> String {
    let mut cols = vec![format!("COUNT(*) AS {ROWS}")];
    for (i, c) in checks.iter().enumerate() {
        cols.push(format!("{} AS {}", c.expression, check_column(i)));
    }
    if let Some(d) = partition_date {
        cols.push(format!("COUNTIF({d} IS NULL OR {d} != @ds) AS {OUTSIDE}"));
    }
    format!("SELECT\n  {}\nFROM {source}", cols.join(",\n  "))
}

/// The rows of the latest partition before `@ds`; 0 when there is none.
pub fn previous_partition_rows(target: &str, partition_date: &str) -> String {
    format!(
        "SELECT COUNT(*) AS n FROM {target}\n\
         WHERE {d} = (SELECT MAX({d}) FROM {target} WHERE {d} < @ds)",
        d = partition_date
    )
}

/// `PARTITION BY ... CLUSTER BY ...` lines of a CREATE TABLE, or nothing.
fn layout(partition_date: Option<&str>, cluster_by: &[String]) -> String {
    let mut out = String::new();
    if let Some(p) = partition_date {
        out.push_str(&format!("\nPARTITION BY {p}"));
    }
    if !cluster_by.is_empty() {
        let cols: Vec<String> = cluster_by.iter().map(|c| ident(c)).collect();
        out.push_str(&format!("\nCLUSTER BY {}", cols.join(", ")));
    }
    out
}

/// Replaces the whole table with the staging table's rows, in one statement.
pub fn replace_table(
    target: &str,
    staging: &str,
    partition_date: Option<&str>,
    cluster_by: &[String],
) -> String {
    format!(
        "CREATE OR REPLACE TABLE {target}{}\nAS SELECT * FROM {staging}",
        layout(partition_date, cluster_by)
    )
}

/// Creates the target, empty, shaped like the staging table, unless it exists.
pub fn create_if_missing(
    target: &str,
    staging: &str,
    partition_date: Option<&str>,
    cluster_by: &[String],
) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {target}{}\nAS SELECT * FROM {staging} WHERE FALSE",
        layout(partition_date, cluster_by)
    )
}

/// Upserts the staging rows into the target by `keys`.
pub fn merge(target: &str, staging: &str, keys: &[String], columns: &[String]) -> String {
    let on: Vec<String> = keys
        .iter()
        .map(|k| format!("T.{k} = S.{k}", k = ident(k)))
        .collect();
    let set: Vec<String> = columns
        .iter()
        .filter(|c| !keys.contains(c))
        .map(|c| format!("{c} = S.{c}", c = ident(c)))
        .collect();
    let cols: Vec<String> = columns.iter().map(|c| ident(c)).collect();
    let vals: Vec<String> = columns.iter().map(|c| format!("S.{}", ident(c))).collect();
    let mut sql = format!(
        "MERGE {target} T\nUSING {staging} S\nON {}\n",
        on.join(" AND ")
    );
    if !set.is_empty() {
        sql.push_str(&format!(
            "WHEN MATCHED THEN UPDATE SET {}\n",
            set.join(", ")
        ));
    }
    sql.push_str(&format!(
        "WHEN NOT MATCHED THEN INSERT ({}) VALUES ({})",
        cols.join(", "),
        vals.join(", ")
    ));
    sql
}

/// A view of the rendered SELECT.
pub fn create_view(target: &str, select: &str) -> String {
    format!("CREATE OR REPLACE VIEW {target} AS\n{select}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice::marts::{Check, Rule};

    fn check(expression: &str) -> Check {
        Check {
            name: "c".into(),
            kind: "expression".into(),
            expression: expression.into(),
            rule: Rule::Ratio { threshold: 1.0 },
            values: None,
        }
    }

    #[test]
    fn one_query_computes_every_check() {
        let a = check("COUNTIF(id IS NOT NULL)");
        let b = check("COUNT(DISTINCT id)");
        assert_eq!(
            check_query("`p.s.t`", &[&a, &b], Some("`day`")),
            "SELECT\n  COUNT(*) AS _rows,\n  COUNTIF(id IS NOT NULL) AS _c0,\n  COUNT(DISTINCT id) AS _c1,\n  \
             COUNTIF(`day` IS NULL OR `day` != @ds) AS _outside\nFROM `p.s.t`"
        );
        assert_eq!(
            check_query("`v`", &[], None),
            "SELECT\n  COUNT(*) AS _rows\nFROM `v`"
        );
    }

    #[test]
    fn tables_are_replaced_or_created_with_their_layout() {
        assert_eq!(
            replace_table("`p.m.t`", "`p.st.x`", Some("DATE(`ts`)"), &["a".into(), "b".into()]),
            "CREATE OR REPLACE TABLE `p.m.t`\nPARTITION BY DATE(`ts`)\nCLUSTER BY `a`, `b`\nAS SELECT * FROM `p.st.x`"
        );
        assert_eq!(
            create_if_missing("`p.m.t`", "`p.st.x`", None, &[]),
            "CREATE TABLE IF NOT EXISTS `p.m.t`\nAS SELECT * FROM `p.st.x` WHERE FALSE"
        );
    }

    #[test]
    fn merge_updates_non_keys_and_inserts_all() {
        assert_eq!(
            merge("`t`", "`s`", &["id".into()], &["id".into(), "n".into()]),
            "MERGE `t` T\nUSING `s` S\nON T.`id` = S.`id`\nWHEN MATCHED THEN UPDATE SET `n` = S.`n`\n\
             WHEN NOT MATCHED THEN INSERT (`id`, `n`) VALUES (S.`id`, S.`n`)"
        );
        // Only keys: nothing to update.
        assert!(
            !merge("`t`", "`s`", &["id".into()], &["id".into()]).contains("MATCHED THEN UPDATE")
        );
    }

    #[test]
    fn previous_partition_is_the_latest_before_ds() {
        assert_eq!(
            previous_partition_rows("`t`", "`day`"),
            "SELECT COUNT(*) AS n FROM `t`\nWHERE `day` = (SELECT MAX(`day`) FROM `t` WHERE `day` < @ds)"
        );
    }
}

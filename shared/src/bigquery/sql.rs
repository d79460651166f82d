//! SQL that sluice generates, as pure functions of names (values always go in as parameters).

/// `project.dataset.table` quoted for GoogleSQL.
pub fn table_ref(project: &str, dataset: &str, table: &str) -> String {
    format!("`{}.{}.{}`", esc(project), esc(dataset), esc(table))
}

/// A column name quoted for GoogleSQL.
pub fn ident(name: &str) -> String {
    format!("`{}`", esc(name))
}

/// `SELECT COUNT(*) AS n FROM <table>` (where `filter` holds, when given): what
/// `BigQuery::count` reads.
pub fn count_rows(table: &str, filter: Option<&str>) -> String {
    match filter {
        None => format!("SELECT COUNT(*) AS n FROM {table}"),
        Some(f) => format!("SELECT COUNT(*) AS n FROM {table} WHERE {f}"),
    }
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('`', "\\`")
}

/// Replaces one date partition of `target` with all rows of `staging`, in one transaction:
/// `DELETE … WHERE <date> = @ds; INSERT … SELECT`. Readers see the old or the new partition,
/// never neither; a failure leaves the old one. (Partition decorators would do this in one
/// load, but the emulator lacks them and the transaction works in both.)
pub fn replace_partition(
    target: &str,
    staging: &str,
    date_expr: &str,
    columns: &[String],
) -> String {
    let cols: Vec<String> = columns.iter().map(|c| ident(c)).collect();
    let cols = cols.join(", ");
    format!(
        "BEGIN TRANSACTION;\n\
         DELETE FROM {target} WHERE {date_expr} = @ds;\n\
         INSERT INTO {target} ({cols})\nSELECT {cols} FROM {staging};\n\
         COMMIT TRANSACTION;"
    )
}

/// The expression giving a row's partition date from its watermark column.
pub fn partition_date(column: &str, bq_type: crate::types::BqType) -> String {
    match bq_type {
        crate::types::BqType::Date => ident(column),
        _ => format!("DATE({})", ident(column)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_of_a_table_or_a_slice() {
        assert_eq!(
            count_rows("`p.d.t`", None),
            "SELECT COUNT(*) AS n FROM `p.d.t`"
        );
        assert_eq!(
            count_rows("`p.d.t`", Some("day = @ds")),
            "SELECT COUNT(*) AS n FROM `p.d.t` WHERE day = @ds"
        );
    }
    use crate::types::BqType;

    #[test]
    fn replace_partition_is_one_transaction() {
        let sql = replace_partition(
            &table_ref("p", "shop", "orders"),
            &table_ref("p", "sluice_staging", "orders__2024_05_01"),
            &partition_date("created_at", BqType::Timestamp),
            &["id".into(), "created_at".into()],
        );
        assert_eq!(
            sql,
            "BEGIN TRANSACTION;\n\
             DELETE FROM `p.shop.orders` WHERE DATE(`created_at`) = @ds;\n\
             INSERT INTO `p.shop.orders` (`id`, `created_at`)\n\
             SELECT `id`, `created_at` FROM `p.sluice_staging.orders__2024_05_01`;\n\
             COMMIT TRANSACTION;"
        );
    }

    #[test]
    fn identifiers_are_escaped() {
        assert_eq!(ident("we`ird"), "`we\\`ird`");
        assert_eq!(partition_date("d", BqType::Date), "`d`");
    }
}

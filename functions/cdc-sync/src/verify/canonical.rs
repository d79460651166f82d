//! The canonical text of a row, written once in Postgres SQL and once in GoogleSQL so both
//! engines compute the same string for the same replicated values (the README's type mapping).
//!
//! A row's text is its columns' texts joined by `|`, in the table's column order. A column's
//! text is `\N` for NULL, else its value's canonical form; text-like forms (strings, JSON) are
//! escaped (`\` → `\\`, `|` → `\|`, `,` → `\,`), so neither the separator nor the NULL marker can
//! come from a value. An array is each non-NULL element's escaped text followed by `,` (`[]`,
//! and a NULL array, which loads as `[]`, are the empty string).
//!
//! | Postgres | canonical form |
//! |---|---|
//! | smallint, integer, bigint, oid | decimal digits |
//! | real, double precision | `%.14e` (15 significant digits), `0`, `NaN`, `Infinity`, `-Infinity`; real through its shortest decimal (`x::text::float8`), as it is loaded |
//! | numeric → NUMERIC, BIGNUMERIC | plain decimal without trailing zeros (`trim_scale`) |
//! | numeric → STRING | the digits Postgres prints |
//! | text, varchar, char(n) (padded), name, citext, enum, uuid | the text |
//! | inet, cidr | as their output functions print them (`::text` of inet adds `/32`) |
//! | boolean | `t`, `f` |
//! | date | days since 1970-01-01; ±infinity as 9999-12-31 / 0001-01-01 |
//! | timestamp, timestamptz | µs since 1970-01-01 00:00 UTC; ±infinity as BigQuery's largest / smallest |
//! | time | µs since midnight; 24:00:00 as 23:59:59.999999 |
//! | interval | ISO 8601 as Postgres prints it with `intervalstyle = iso_8601` |
//! | bytea | lowercase hex |
//! | json, jsonb | see [`JsonKeys`]: compact JSON, keys in the replica's order, numbers normalised |
//!
//! What is not compared exactly, by design:
//! - floats, and JSON numbers that are not integers of the int64/uint64 range, are compared at
//!   15 significant digits (what Postgres's `float8::numeric` keeps): values that differ only
//!   beyond it compare equal;
//! - JSON numbers outside float64's range (Postgres's jsonb holds any numeric, BigQuery cannot)
//!   and JSON nested deeper than [`JSON_DEPTH`] levels always compare different (their Postgres
//!   form is marked with `~`, which the BigQuery form never holds outside a string);
//! - on the emulator only, JSON strings are compared as the emulator re-escapes them.

use sluice::types::{BqType, NumericTarget, PgKind};

/// How deep the Postgres side walks JSON documents (each level is a nested subquery).
pub(crate) const JSON_DEPTH: usize = 16;

/// In what order the replica holds the keys of a JSON object, which decides the order the
/// Postgres side writes them in.
///
/// Google's BigQuery does not preserve member order and keeps the first of duplicate keys
/// (GoogleSQL data types, "JSON type"); its JSON values are ZetaSQL's, objects in a `std::map`,
/// so `TO_JSON_STRING` writes keys in byte order. The emulator (DuckDB) keeps the JSON text it
/// loaded: jsonb's own order (shorter keys first), and for `json` the text as written,
/// duplicates included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JsonKeys {
    /// Byte order, first duplicate kept (BigQuery).
    Sorted,
    /// The order Postgres wrote them in, duplicates kept (the emulator).
    AsLoaded,
}

/// What the replica holds for a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Replica {
    /// The replica has no such column (added in Postgres, not yet seen by a run): NULL.
    Missing,
    /// A column of this type (REPEATED when the Postgres column is an array).
    Of(BqType),
}

/// One compared column: its mapping, its Postgres type name, and the replica's column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Column {
    pub name: String,
    pub kind: PgKind,
    /// `pg_type.typname` of the column, or of its elements for an array (`bpchar` keeps its
    /// padding only through its output function).
    pub pg_type: String,
    pub replica: Replica,
}

const NULL_MARK_PG: &str = r"'\N'";
const NULL_MARK_BQ: &str = r"'\\N'";
/// BigQuery's largest and smallest DATE, TIMESTAMP (µs since the epoch), TIME (µs).
const MAX_DAYS: &str = "2932896";
const MIN_DAYS: &str = "-719162";
const MAX_MICROS: &str = "253402300799999999";
const MIN_MICROS: &str = "-62135596800000000";
const MAX_TIME_MICROS: &str = "86399999999";

fn is_array(kind: &PgKind) -> Option<&PgKind> {
    match kind {
        PgKind::Array(inner) => Some(inner),
        _ => None,
    }
}

/// Forms that may hold `\`, `|` or `,` and are escaped.
fn escaped(kind: &PgKind) -> bool {
    matches!(kind, PgKind::Text | PgKind::Json | PgKind::Jsonb)
}

// ---------------------------------------------------------------- Postgres

fn pg_escape(x: &str) -> String {
    format!(r"replace(replace(replace({x}, '\', '\\'), '|', '\|'), ',', '\,')")
}

/// `%.14e` as `to_char` writes it for float8 (`psprintf("%+.*e")`, the plus sign as a space).
fn pg_float(v: &str) -> String {
    format!(
        "CASE WHEN {v} = 'NaN' THEN 'NaN' WHEN {v} = 'Infinity' THEN 'Infinity' \
         WHEN {v} = '-Infinity' THEN '-Infinity' WHEN {v} = 0 THEN '0' \
         ELSE btrim(to_char({v}, '9.99999999999999EEEE')) END"
    )
}

/// µs since the Unix epoch of a timestamp without zone, exact on every Postgres version
/// (`extract(epoch …)` is float8 before 14).
fn pg_micros(ts: &str) -> String {
    format!(
        "(({ts})::date - DATE '1970-01-01')::int8 * 86400000000 + (extract(epoch FROM ({ts})::time) * 1000000)::int8"
    )
}

/// A JSON number's canonical text: integers of the int64/uint64 range as integers (BigQuery
/// keeps them exactly), anything else as float64 at 15 significant digits.
fn pg_json_number(t: &str) -> String {
    format!(
        "CASE WHEN {t} ~ '^-?[0-9]+$' AND ({t})::numeric BETWEEN -9223372036854775808 AND 18446744073709551615 \
         THEN ({t})::numeric::text WHEN ({t})::numeric = 0 THEN '0' \
         WHEN abs(({t})::numeric) < 1e308 AND abs(({t})::numeric) > 1e-307 \
         THEN btrim(to_char(({t})::numeric::float8, '9.99999999999999EEEE')) ELSE '~' || {t} END"
    )
}

fn pg_json_scalar(f: &str, e: &str) -> String {
    let text = format!("({e} #>> '{{}}')");
    format!(
        "CASE {f}_typeof({e}) WHEN 'string' THEN to_json{b}({text})::text WHEN 'number' THEN {num} \
         WHEN 'boolean' THEN {text} WHEN 'null' THEN 'null' END",
        b = if f == "jsonb" { "b" } else { "" },
        num = pg_json_number(&text),
    )
}

/// A JSON document rebuilt compactly, level by level, with its keys in `keys` order and its
/// numbers normalised; `f` is `json` or `jsonb`.
fn pg_json(f: &str, e: &str, keys: JsonKeys, depth: usize, level: usize) -> String {
    let container = format!("{f}_typeof({e}) IN ('object', 'array')");
    if depth == 0 {
        return format!(
            "CASE WHEN {container} THEN '~nested deeper than {JSON_DEPTH} levels' ELSE {} END",
            pg_json_scalar(f, e)
        );
    }
    let j = format!("_sluice_j{level}");
    let inner = pg_json(f, &format!("{j}.v"), keys, depth - 1, level + 1);
    let (order, keep) = match keys {
        JsonKeys::Sorted => (
            format!("{j}.k COLLATE \"C\", {j}.o"),
            format!(" WHERE {j}.k IS NULL OR {j}.r = 1"),
        ),
        JsonKeys::AsLoaded => (format!("{j}.o"), String::new()),
    };
    format!(
        "CASE WHEN {container} THEN (SELECT CASE {f}_typeof({e}) WHEN 'object' THEN '{{' ELSE '[' END \
         || COALESCE(string_agg(COALESCE(to_json({j}.k)::text || ':', '') || {inner}, ',' ORDER BY {order}), '') \
         || CASE {f}_typeof({e}) WHEN 'object' THEN '}}' ELSE ']' END \
         FROM (SELECT m.key AS k, m.value AS v, m.o, row_number() OVER (PARTITION BY m.key ORDER BY m.o) AS r \
         FROM {f}_each(CASE WHEN {f}_typeof({e}) = 'object' THEN {e} END) WITH ORDINALITY AS m(key, value, o) \
         UNION ALL SELECT NULL, a.value, a.o, 1 \
         FROM {f}_array_elements(CASE WHEN {f}_typeof({e}) = 'array' THEN {e} END) WITH ORDINALITY AS a(value, o)) {j}{keep}) \
         ELSE {scalar} END",
        scalar = pg_json_scalar(f, e),
    )
}

/// The canonical text of one non-array value `x` in Postgres, NULL when `x` is NULL.
fn pg_value(kind: &PgKind, pg_type: &str, x: &str, keys: JsonKeys) -> String {
    match kind {
        PgKind::Int2 | PgKind::Int4 | PgKind::Int8 | PgKind::Oid => format!("({x})::text"),
        PgKind::Float8 => pg_float(&format!("({x})")),
        // Loaded through its shortest decimal (sluice::postgres::wire::float).
        PgKind::Float4 => pg_float(&format!("({x})::text::float8")),
        PgKind::Numeric(NumericTarget::String) => format!("({x})::text"),
        PgKind::Numeric(_) => format!("trim_scale({x})::text"),
        // bpchar's cast to text drops the padding its output function keeps.
        PgKind::Text if pg_type == "bpchar" => format!("bpcharout({x})::text"),
        // The output functions: inet's cast to text always adds the mask, cidr's abbrev drops
        // octets; sluice loads what `inet_out` and `cidr_out` print.
        PgKind::Inet if pg_type == "cidr" => format!("cidr_out({x})::text"),
        PgKind::Inet => format!("inet_out({x})::text"),
        PgKind::Text | PgKind::Uuid | PgKind::Interval => format!("({x})::text"),
        PgKind::Bool => format!("CASE WHEN {x} THEN 't' WHEN NOT {x} THEN 'f' END"),
        PgKind::Date => format!(
            "CASE WHEN {x} = 'infinity' THEN '{MAX_DAYS}' WHEN {x} = '-infinity' THEN '{MIN_DAYS}' \
             ELSE (({x}) - DATE '1970-01-01')::text END"
        ),
        PgKind::Timestamp | PgKind::Timestamptz => {
            let ts = if *kind == PgKind::Timestamptz {
                format!("(({x}) AT TIME ZONE 'UTC')")
            } else {
                format!("({x})")
            };
            format!(
                "CASE WHEN {x} = 'infinity' THEN '{MAX_MICROS}' WHEN {x} = '-infinity' THEN '{MIN_MICROS}' \
                 ELSE ({})::text END",
                pg_micros(&ts)
            )
        }
        PgKind::Time => format!(
            "CASE WHEN {x} > TIME '23:59:59.999999' THEN '{MAX_TIME_MICROS}' \
             ELSE (extract(epoch FROM {x}) * 1000000)::int8::text END"
        ),
        PgKind::Bytea => format!("encode({x}, 'hex')"),
        PgKind::Json => pg_json("json", &format!("({x})"), keys, JSON_DEPTH, 1),
        PgKind::Jsonb => pg_json("jsonb", &format!("({x})"), keys, JSON_DEPTH, 1),
        // Arrays are written by `pg_column`; a nested one is not a mapped type.
        PgKind::Array(_) => format!("({x})::text"),
    }
}

/// One column's part of the row text in Postgres: never NULL.
pub(crate) fn pg_column(c: &Column, keys: JsonKeys) -> String {
    let x = sluice::postgres::catalog::quote_ident(&c.name);
    match is_array(&c.kind) {
        Some(inner) => {
            let v = pg_value(inner, &c.pg_type, "_sluice_e.x", keys);
            let v = if escaped(inner) { pg_escape(&v) } else { v };
            // ARRAY(…) costs half of string_agg's aggregate per row.
            format!(
                "array_to_string(ARRAY(SELECT {v} || ',' \
                 FROM unnest({x}) WITH ORDINALITY AS _sluice_e(x, o) WHERE _sluice_e.x IS NOT NULL ORDER BY _sluice_e.o), '')"
            )
        }
        None => {
            let v = pg_value(&c.kind, &c.pg_type, &x, keys);
            let v = if escaped(&c.kind) { pg_escape(&v) } else { v };
            format!("COALESCE({v}, {NULL_MARK_PG})")
        }
    }
}

/// The canonical text of these columns, joined by `|`, in Postgres.
pub(crate) fn pg_text(columns: &[Column], keys: JsonKeys) -> String {
    columns
        .iter()
        .map(|c| pg_column(c, keys))
        .collect::<Vec<_>>()
        .join(" || '|' || ")
}

// ---------------------------------------------------------------- BigQuery

fn bq_escape(x: &str) -> String {
    format!(r"REPLACE(REPLACE(REPLACE({x}, '\\', '\\\\'), '|', '\\|'), ',', '\\,')")
}

fn bq_float(x: &str) -> String {
    format!(
        "CASE WHEN IS_NAN({x}) THEN 'NaN' WHEN IS_INF({x}) AND {x} > 0 THEN 'Infinity' \
         WHEN IS_INF({x}) THEN '-Infinity' WHEN {x} = 0 THEN '0' ELSE FORMAT('%.14e', {x}) END"
    )
}

/// NUMERIC and BIGNUMERIC as plain decimals without trailing zeros: what BigQuery's cast
/// writes; the emulator's keeps the scale's zeros, which the two replacements drop.
fn bq_numeric(x: &str) -> String {
    format!(
        r"REGEXP_REPLACE(REGEXP_REPLACE(CAST({x} AS STRING), r'(\.[0-9]*?)0+$', r'\1'), r'\.$', '')"
    )
}

fn bq_json_number(t: &str) -> String {
    let f = format!("SAFE_CAST({t} AS FLOAT64)");
    format!(
        "CASE WHEN REGEXP_CONTAINS({t}, r'^-?[0-9]+$') AND (SAFE_CAST({t} AS INT64) IS NOT NULL \
         OR (NOT STARTS_WITH({t}, '-') AND (LENGTH({t}) < 20 OR (LENGTH({t}) = 20 AND {t} <= '18446744073709551615')))) \
         THEN IFNULL(CAST(SAFE_CAST({t} AS INT64) AS STRING), {t}) WHEN {f} = 0 THEN '0' \
         WHEN ABS({f}) < 1e308 AND ABS({f}) > 1e-307 THEN FORMAT('%.14e', {f}) ELSE CONCAT('~', {t}) END"
    )
}

/// A JSON value as `TO_JSON_STRING` writes it (compact; keys as the replica holds them), its
/// numbers rewritten token by token to the canonical form: a JSON text is strings, numbers and
/// runs of the other characters, in order.
fn bq_json(x: &str) -> String {
    let t = "_sluice_tok";
    format!(
        "IF({x} IS NULL, NULL, (SELECT STRING_AGG(IF(REGEXP_CONTAINS({t}, r'^-?[0-9]'), {num}, {t}), '' ORDER BY _sluice_pos) \
         FROM UNNEST(REGEXP_EXTRACT_ALL(TO_JSON_STRING({x}), r'\"(?:[^\"\\\\]|\\\\.)*\"|-?[0-9][0-9.eE+-]*|[^\"0-9-]+')) AS {t} WITH OFFSET _sluice_pos))",
        num = bq_json_number(t),
    )
}

/// The canonical text of one non-array value `x` held as `ty` in BigQuery, NULL when NULL.
/// By the replica's type, so a column BigQuery widened (INT64 to NUMERIC) still compares.
fn bq_value(ty: BqType, x: &str) -> String {
    match ty {
        BqType::Int64 => format!("CAST({x} AS STRING)"),
        BqType::Float64 => bq_float(x),
        BqType::Numeric | BqType::BigNumeric => bq_numeric(x),
        BqType::String => x.to_string(),
        BqType::Bool => format!("CASE WHEN {x} THEN 't' WHEN NOT {x} THEN 'f' END"),
        BqType::Date => format!("CAST(UNIX_DATE({x}) AS STRING)"),
        BqType::Datetime => {
            format!(
                "CAST(DATETIME_DIFF({x}, DATETIME '1970-01-01 00:00:00', MICROSECOND) AS STRING)"
            )
        }
        BqType::Timestamp => format!("CAST(UNIX_MICROS({x}) AS STRING)"),
        BqType::Time => format!("CAST(TIME_DIFF({x}, TIME '00:00:00', MICROSECOND) AS STRING)"),
        BqType::Json => bq_json(x),
        BqType::Bytes => format!("TO_HEX({x})"),
    }
}

/// One column's part of the row text in BigQuery: never NULL.
pub(crate) fn bq_column(c: &Column) -> String {
    let x = sluice::bigquery::sql::ident(&c.name);
    match (is_array(&c.kind), c.replica) {
        (Some(_), Replica::Missing) => "''".to_string(),
        (None, Replica::Missing) => NULL_MARK_BQ.to_string(),
        (Some(inner), Replica::Of(ty)) => {
            let v = bq_value(ty, "_sluice_e");
            let v = if escaped(inner) { bq_escape(&v) } else { v };
            format!(
                "IFNULL((SELECT STRING_AGG(CONCAT({v}, ','), '' ORDER BY _sluice_i) \
                 FROM UNNEST({x}) AS _sluice_e WITH OFFSET _sluice_i), '')"
            )
        }
        (None, Replica::Of(ty)) => {
            let v = bq_value(ty, &x);
            let v = if escaped(&c.kind) { bq_escape(&v) } else { v };
            format!("IFNULL({v}, {NULL_MARK_BQ})")
        }
    }
}

/// The canonical text of these columns, joined by `|`, in BigQuery.
pub(crate) fn bq_text(columns: &[Column]) -> String {
    let parts: Vec<String> = columns.iter().map(bq_column).collect();
    if parts.len() == 1 {
        return parts.into_iter().next().unwrap_or_default();
    }
    format!("CONCAT({})", parts.join(", '|', "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, kind: PgKind, pg_type: &str, ty: BqType) -> Column {
        Column {
            name: name.into(),
            kind,
            pg_type: pg_type.into(),
            replica: Replica::Of(ty),
        }
    }

    #[test]
    fn scalars_are_coalesced_to_the_null_mark() {
        let c = col("id", PgKind::Int8, "int8", BqType::Int64);
        assert_eq!(
            pg_column(&c, JsonKeys::Sorted),
            r#"COALESCE(("id")::text, '\N')"#
        );
        assert_eq!(bq_column(&c), r"IFNULL(CAST(`id` AS STRING), '\\N')");
    }

    #[test]
    fn text_is_escaped_and_char_keeps_its_padding() {
        let c = col("ch", PgKind::Text, "bpchar", BqType::String);
        assert_eq!(
            pg_column(&c, JsonKeys::Sorted),
            r#"COALESCE(replace(replace(replace(bpcharout("ch")::text, '\', '\\'), '|', '\|'), ',', '\,'), '\N')"#
        );
        assert_eq!(
            bq_column(&c),
            r"IFNULL(REPLACE(REPLACE(REPLACE(`ch`, '\\', '\\\\'), '|', '\\|'), ',', '\\,'), '\\N')"
        );
        let t = col("t", PgKind::Text, "text", BqType::String);
        assert!(pg_column(&t, JsonKeys::Sorted).contains(r#"("t")::text"#));
    }

    #[test]
    fn arrays_drop_null_elements_and_end_each_element_with_a_comma() {
        let c = col(
            "tags",
            PgKind::Array(Box::new(PgKind::Text)),
            "text",
            BqType::String,
        );
        let pg = pg_column(&c, JsonKeys::Sorted);
        assert_eq!(
            pg,
            r#"array_to_string(ARRAY(SELECT replace(replace(replace((_sluice_e.x)::text, '\', '\\'), '|', '\|'), ',', '\,') || ',' FROM unnest("tags") WITH ORDINALITY AS _sluice_e(x, o) WHERE _sluice_e.x IS NOT NULL ORDER BY _sluice_e.o), '')"#
        );
        let bq = bq_column(&c);
        assert_eq!(
            bq,
            r"IFNULL((SELECT STRING_AGG(CONCAT(REPLACE(REPLACE(REPLACE(_sluice_e, '\\', '\\\\'), '|', '\\|'), ',', '\\,'), ','), '' ORDER BY _sluice_i) FROM UNNEST(`tags`) AS _sluice_e WITH OFFSET _sluice_i), '')"
        );
        // A replica without the column holds the empty array.
        let missing = Column {
            replica: Replica::Missing,
            ..c
        };
        assert_eq!(bq_column(&missing), "''");
    }

    #[test]
    fn floats_compare_at_fifteen_digits_and_real_through_its_shortest_text() {
        let f4 = col("r", PgKind::Float4, "float4", BqType::Float64);
        let pg = pg_column(&f4, JsonKeys::Sorted);
        assert!(pg.contains(r#"btrim(to_char(("r")::text::float8, '9.99999999999999EEEE'))"#));
        assert!(pg.contains(r#"WHEN ("r")::text::float8 = 'NaN' THEN 'NaN'"#));
        let bq = bq_column(&f4);
        assert!(bq.contains("FORMAT('%.14e', `r`)"), "{bq}");
        assert!(
            bq.contains("WHEN IS_INF(`r`) AND `r` > 0 THEN 'Infinity'"),
            "{bq}"
        );
    }

    #[test]
    fn times_are_integers_with_the_mapping_clamps() {
        let d = pg_value(&PgKind::Date, "date", "d", JsonKeys::Sorted);
        assert_eq!(
            d,
            "CASE WHEN d = 'infinity' THEN '2932896' WHEN d = '-infinity' THEN '-719162' ELSE ((d) - DATE '1970-01-01')::text END"
        );
        let tz = pg_value(&PgKind::Timestamptz, "timestamptz", "t", JsonKeys::Sorted);
        assert!(
            tz.contains(
                "(((t) AT TIME ZONE 'UTC'))::date - DATE '1970-01-01')::int8 * 86400000000"
            ),
            "{tz}"
        );
        assert!(tz.contains("'253402300799999999'"));
        let tm = pg_value(&PgKind::Time, "time", "t", JsonKeys::Sorted);
        assert_eq!(
            tm,
            "CASE WHEN t > TIME '23:59:59.999999' THEN '86399999999' ELSE (extract(epoch FROM t) * 1000000)::int8::text END"
        );
        let ip = col("ip", PgKind::Inet, "inet", BqType::String);
        assert_eq!(
            pg_column(&ip, JsonKeys::Sorted),
            r#"COALESCE(inet_out("ip")::text, '\N')"#
        );
        let net = col("net", PgKind::Inet, "cidr", BqType::String);
        assert!(pg_column(&net, JsonKeys::Sorted).contains(r#"cidr_out("net")::text"#));
        assert_eq!(
            bq_value(BqType::Datetime, "x"),
            "CAST(DATETIME_DIFF(x, DATETIME '1970-01-01 00:00:00', MICROSECOND) AS STRING)"
        );
    }

    #[test]
    fn numerics_lose_trailing_zeros_on_both_sides() {
        let n = col(
            "n",
            PgKind::Numeric(NumericTarget::Numeric),
            "numeric",
            BqType::Numeric,
        );
        assert_eq!(
            pg_column(&n, JsonKeys::Sorted),
            r#"COALESCE(trim_scale("n")::text, '\N')"#
        );
        assert!(bq_column(&n).starts_with(r"IFNULL(REGEXP_REPLACE(REGEXP_REPLACE(CAST(`n` AS STRING), r'(\.[0-9]*?)0+$', r'\1'), r'\.$', '')"));
        // An INT64 column widened to NUMERIC still prints its integers.
        let widened = col("i", PgKind::Int8, "int8", BqType::Numeric);
        assert!(bq_column(&widened).contains("REGEXP_REPLACE"));
    }

    #[test]
    fn json_keys_follow_the_replica_and_depth_is_bounded() {
        let sorted = pg_value(&PgKind::Jsonb, "jsonb", "j", JsonKeys::Sorted);
        assert!(sorted.contains(r#"ORDER BY _sluice_j1.k COLLATE "C", _sluice_j1.o"#));
        assert!(sorted.contains("WHERE _sluice_j1.k IS NULL OR _sluice_j1.r = 1"));
        assert!(sorted.contains("to_jsonb((_sluice_j1.v #>> '{}'))::text"));
        assert!(sorted.contains("_sluice_j16.v"));
        assert!(!sorted.contains("_sluice_j17"));
        assert!(sorted.contains("'~nested deeper than 16 levels'"));
        let loaded = pg_value(&PgKind::Json, "json", "j", JsonKeys::AsLoaded);
        assert!(loaded.contains("ORDER BY _sluice_j1.o)"));
        assert!(loaded.contains("json_each(CASE WHEN json_typeof((j)) = 'object' THEN (j) END)"));
        assert!(!loaded.contains("jsonb"));
        // Linear in the depth: one nested walk per level.
        assert!(sorted.len() < 40_000, "{}", sorted.len());
        let bq = bq_value(BqType::Json, "`j`");
        assert!(bq.starts_with("IF(`j` IS NULL, NULL, (SELECT STRING_AGG("));
        assert!(bq.contains(r#"REGEXP_EXTRACT_ALL(TO_JSON_STRING(`j`), r'"(?:[^"\\]|\\.)*"|-?[0-9][0-9.eE+-]*|[^"0-9-]+')"#), "{bq}");
    }

    #[test]
    fn rows_join_columns_with_a_bar() {
        let cols = [
            col("a", PgKind::Int4, "int4", BqType::Int64),
            Column {
                replica: Replica::Missing,
                ..col("b", PgKind::Bool, "bool", BqType::Bool)
            },
        ];
        assert_eq!(
            pg_text(&cols, JsonKeys::Sorted),
            r#"COALESCE(("a")::text, '\N') || '|' || COALESCE(CASE WHEN "b" THEN 't' WHEN NOT "b" THEN 'f' END, '\N')"#
        );
        assert_eq!(
            bq_text(&cols),
            r"CONCAT(IFNULL(CAST(`a` AS STRING), '\\N'), '|', '\\N')"
        );
        assert_eq!(bq_text(&cols[..1]), r"IFNULL(CAST(`a` AS STRING), '\\N')");
    }
}

//! Postgres → BigQuery type mapping: one table in code, shared by pg-copy and cdc-sync.
//!
//! | Postgres                         | wire decoding      | Arrow / Parquet              | BigQuery            |
//! |----------------------------------|--------------------|------------------------------|---------------------|
//! | smallint, integer, bigint, oid   | Int2/Int4/Int8/Oid | Int64                        | INT64               |
//! | real, double precision           | Float4/Float8      | Float64 (NaN, ±Inf kept)     | FLOAT64             |
//! | numeric(p,s), p-s ≤ 29, s ≤ 9    | Numeric            | Decimal128(38, 9)            | NUMERIC             |
//! | numeric(p,s), p-s ≤ 38, s ≤ 38   | Numeric            | Decimal128(p, s) if p ≤ 38, else Decimal256(76, 38) | BIGNUMERIC |
//! | numeric (no precision)           | Numeric            | Decimal256(76, 38)           | BIGNUMERIC          |
//! | numeric wider than that, or listed in `numeric_as_string` | Numeric | Utf8 (exact digits) | STRING       |
//! | text, varchar, char, name, citext| Text               | Utf8 (char keeps its padding)| STRING              |
//! | enum types                       | Text (label)       | Utf8                         | STRING              |
//! | boolean                          | Bool               | Boolean                      | BOOL                |
//! | date (±infinity clamped)         | Date               | Date32                       | DATE                |
//! | timestamp (±infinity clamped)    | Timestamp          | Timestamp(µs)                | DATETIME            |
//! | timestamptz (±infinity clamped)  | Timestamptz        | Timestamp(µs, UTC)           | TIMESTAMP           |
//! | time                             | Time               | Time64(µs)                   | TIME                |
//! | interval                         | Interval           | Utf8, ISO 8601 (`P1Y2M3DT4H5M6S`) | STRING         |
//! | uuid                             | Uuid               | Utf8 (hyphenated, lowercase) | STRING              |
//! | json, jsonb                      | Json/Jsonb         | Utf8 (JSON text)             | JSON                |
//! | bytea                            | Bytea              | Binary                       | BYTES               |
//! | inet, cidr                       | Inet               | Utf8 (Postgres text form)    | STRING              |
//! | one-dimensional array of any above | Array            | List (NULL elements dropped, counted; NULL array → []) | REPEATED |
//!
//! Why these choices: NUMERIC holds 29 integer and 9 fractional digits, BIGNUMERIC 38 and 38,
//! so the declared precision picks the narrowest exact type; an unconstrained `numeric` may hold
//! anything, so it gets BIGNUMERIC and a value that does not fit fails the run with the fix
//! (`numeric_as_string`) rather than being rounded. BigQuery's INTERVAL cannot be loaded from
//! Parquet, so intervals travel as ISO 8601 text. BigQuery arrays cannot hold NULL elements nor
//! be NULL themselves. Infinite dates and timestamps become BigQuery's minimum and maximum.
//! The counts of dropped elements and clamped values go to the run ledger.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, TimeUnit};

use crate::error::{Error, Result};

/// How one Postgres value is decoded from the binary wire format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgKind {
    Int2,
    Int4,
    Int8,
    Oid,
    Float4,
    Float8,
    Numeric(NumericTarget),
    Text,
    Bool,
    Date,
    Timestamp,
    Timestamptz,
    Time,
    Interval,
    Uuid,
    Json,
    Jsonb,
    Bytea,
    Inet,
    Array(Box<PgKind>),
}

/// Where a `numeric` value lands in BigQuery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumericTarget {
    /// NUMERIC: 38 digits, scale 9.
    Numeric,
    /// BIGNUMERIC. Declared precisions up to 38 travel as Decimal128(p, s), which every reader
    /// (DuckDB, so the emulator, too) handles exactly; wider ones as Decimal256(76, 38).
    BigNumeric { precision: u8, scale: i8 },
    /// STRING with the exact digits Postgres printed.
    String,
}

/// A BigQuery column type (legacy names, as the REST API spells them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BqType {
    Int64,
    Float64,
    Numeric,
    BigNumeric,
    String,
    Bool,
    Date,
    Datetime,
    Timestamp,
    Time,
    Json,
    Bytes,
}

impl BqType {
    /// The type name used in table schemas of the REST API.
    pub fn api_name(self) -> &'static str {
        match self {
            BqType::Int64 => "INTEGER",
            BqType::Float64 => "FLOAT",
            BqType::Numeric => "NUMERIC",
            BqType::BigNumeric => "BIGNUMERIC",
            BqType::String => "STRING",
            BqType::Bool => "BOOLEAN",
            BqType::Date => "DATE",
            BqType::Datetime => "DATETIME",
            BqType::Timestamp => "TIMESTAMP",
            BqType::Time => "TIME",
            BqType::Json => "JSON",
            BqType::Bytes => "BYTES",
        }
    }

    /// The type a REST schema or GoogleSQL names (`INTEGER` or `INT64`, …); None for types
    /// sluice does not write (RECORD, GEOGRAPHY, …).
    pub fn from_api(name: &str) -> Option<BqType> {
        Some(match name.to_ascii_uppercase().as_str() {
            "INTEGER" | "INT64" => BqType::Int64,
            "FLOAT" | "FLOAT64" => BqType::Float64,
            "NUMERIC" | "DECIMAL" => BqType::Numeric,
            "BIGNUMERIC" | "BIGDECIMAL" => BqType::BigNumeric,
            "STRING" => BqType::String,
            "BOOLEAN" | "BOOL" => BqType::Bool,
            "DATE" => BqType::Date,
            "DATETIME" => BqType::Datetime,
            "TIMESTAMP" => BqType::Timestamp,
            "TIME" => BqType::Time,
            "JSON" => BqType::Json,
            "BYTES" => BqType::Bytes,
            _ => return None,
        })
    }

    /// Whether BigQuery changes a column of this type to `to` in place
    /// (`ALTER COLUMN … SET DATA TYPE`): only widenings that lose nothing.
    pub fn widens_to(self, to: BqType) -> bool {
        use BqType::*;
        matches!(
            (self, to),
            (Int64, Numeric | BigNumeric | Float64)
                | (Numeric, BigNumeric | Float64)
                | (BigNumeric, Float64)
        )
    }

    /// The type name in GoogleSQL (for DDL and casts).
    pub fn sql_name(self) -> &'static str {
        match self {
            BqType::Int64 => "INT64",
            BqType::Float64 => "FLOAT64",
            BqType::Bool => "BOOL",
            other => other.api_name(),
        }
    }
}

/// The scalar half of the mapping table, by `pg_type.typname`.
const SCALARS: &[(&str, PgKind)] = &[
    ("int2", PgKind::Int2),
    ("int4", PgKind::Int4),
    ("int8", PgKind::Int8),
    ("oid", PgKind::Oid),
    ("float4", PgKind::Float4),
    ("float8", PgKind::Float8),
    ("text", PgKind::Text),
    ("varchar", PgKind::Text),
    ("bpchar", PgKind::Text),
    ("name", PgKind::Text),
    ("citext", PgKind::Text),
    ("bool", PgKind::Bool),
    ("date", PgKind::Date),
    ("timestamp", PgKind::Timestamp),
    ("timestamptz", PgKind::Timestamptz),
    ("time", PgKind::Time),
    ("interval", PgKind::Interval),
    ("uuid", PgKind::Uuid),
    ("json", PgKind::Json),
    ("jsonb", PgKind::Jsonb),
    ("bytea", PgKind::Bytea),
    ("inet", PgKind::Inet),
    ("cidr", PgKind::Inet),
];

/// What the catalog says about a column's type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgType {
    /// `pg_type.typname` of the column (for arrays, `_` + element name).
    pub name: String,
    /// `typtype = 'e'`: an enum.
    pub is_enum: bool,
    /// For arrays: the element type.
    pub element: Option<Box<PgType>>,
    /// `atttypmod` (−1 when unconstrained); carries numeric precision and scale.
    pub typmod: i32,
}

impl PgType {
    pub fn scalar(name: &str) -> Self {
        PgType {
            name: name.into(),
            is_enum: false,
            element: None,
            typmod: -1,
        }
    }

    pub fn numeric(precision: i32, scale: i32) -> Self {
        PgType {
            typmod: ((precision << 16) | (scale & 0x7ff)) + 4,
            ..PgType::scalar("numeric")
        }
    }

    pub fn array_of(element: PgType) -> Self {
        PgType {
            name: format!("_{}", element.name),
            typmod: element.typmod,
            element: Some(Box::new(element)),
            is_enum: false,
        }
    }

    /// The same type with a column's `atttypmod` (for arrays, on the element too).
    pub fn with_typmod(mut self, typmod: i32) -> Self {
        self.typmod = typmod;
        if let Some(e) = self.element.take() {
            self.element = Some(Box::new(e.with_typmod(typmod)));
        }
        self
    }

    /// `numeric(p, s)` as (p, s), or None when unconstrained.
    pub fn numeric_precision_scale(&self) -> Option<(i32, i32)> {
        if self.typmod < 4 {
            return None;
        }
        let t = self.typmod - 4;
        let precision = (t >> 16) & 0xffff;
        // The scale is an 11-bit signed number since PG 15 (negative scales allowed).
        let mut scale = t & 0x7ff;
        if scale & 0x400 != 0 {
            scale -= 0x800;
        }
        Some((precision, scale))
    }
}

/// Per-column options that change the mapping.
#[derive(Debug, Clone, Copy, Default)]
pub struct MappingOptions {
    /// Map this `numeric` column to STRING whatever its precision.
    pub numeric_as_string: bool,
}

/// The decided mapping of one column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnMapping {
    pub name: String,
    pub kind: PgKind,
    pub bq_type: BqType,
    pub repeated: bool,
    pub nullable: bool,
}

impl ColumnMapping {
    /// The Arrow field written to Parquet for this column.
    pub fn arrow_field(&self) -> Field {
        let scalar = match &self.kind {
            PgKind::Array(inner) => inner.as_ref(),
            k => k,
        };
        let dt = arrow_type(scalar);
        if self.repeated {
            // REPEATED columns are never NULL: a NULL array is written as an empty list.
            let element = Field::new("element", dt, false);
            Field::new(&self.name, DataType::List(Arc::new(element)), false)
        } else {
            Field::new(&self.name, dt, self.nullable)
        }
    }
}

/// The Arrow schema of rows of mapped columns, as decoded and written to Parquet.
pub fn arrow_schema(columns: &[ColumnMapping]) -> arrow::datatypes::SchemaRef {
    Arc::new(arrow::datatypes::Schema::new(
        columns
            .iter()
            .map(ColumnMapping::arrow_field)
            .collect::<Vec<_>>(),
    ))
}

/// The Arrow type a scalar kind is decoded into.
pub fn arrow_type(kind: &PgKind) -> DataType {
    match kind {
        PgKind::Int2 | PgKind::Int4 | PgKind::Int8 | PgKind::Oid => DataType::Int64,
        PgKind::Float4 | PgKind::Float8 => DataType::Float64,
        PgKind::Numeric(NumericTarget::Numeric) => DataType::Decimal128(38, 9),
        PgKind::Numeric(NumericTarget::BigNumeric { precision, scale }) if *precision <= 38 => {
            DataType::Decimal128(*precision, *scale)
        }
        PgKind::Numeric(NumericTarget::BigNumeric { .. }) => DataType::Decimal256(76, 38),
        PgKind::Numeric(NumericTarget::String) => DataType::Utf8,
        PgKind::Text
        | PgKind::Interval
        | PgKind::Uuid
        | PgKind::Json
        | PgKind::Jsonb
        | PgKind::Inet => DataType::Utf8,
        PgKind::Bool => DataType::Boolean,
        PgKind::Date => DataType::Date32,
        PgKind::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
        PgKind::Timestamptz => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        PgKind::Time => DataType::Time64(TimeUnit::Microsecond),
        PgKind::Bytea => DataType::Binary,
        PgKind::Array(inner) => {
            DataType::List(Arc::new(Field::new("element", arrow_type(inner), false)))
        }
    }
}

fn bq_type(kind: &PgKind) -> BqType {
    match kind {
        PgKind::Int2 | PgKind::Int4 | PgKind::Int8 | PgKind::Oid => BqType::Int64,
        PgKind::Float4 | PgKind::Float8 => BqType::Float64,
        PgKind::Numeric(NumericTarget::Numeric) => BqType::Numeric,
        PgKind::Numeric(NumericTarget::BigNumeric { .. }) => BqType::BigNumeric,
        PgKind::Numeric(NumericTarget::String) => BqType::String,
        PgKind::Text | PgKind::Interval | PgKind::Uuid | PgKind::Inet => BqType::String,
        PgKind::Json | PgKind::Jsonb => BqType::Json,
        PgKind::Bool => BqType::Bool,
        PgKind::Date => BqType::Date,
        PgKind::Timestamp => BqType::Datetime,
        PgKind::Timestamptz => BqType::Timestamp,
        PgKind::Time => BqType::Time,
        PgKind::Bytea => BqType::Bytes,
        PgKind::Array(inner) => bq_type(inner),
    }
}

/// Which BigQuery numeric type holds every value of `numeric(p, s)` exactly.
pub fn numeric_target(ty: &PgType, opts: MappingOptions) -> NumericTarget {
    if opts.numeric_as_string {
        return NumericTarget::String;
    }
    const WIDE: NumericTarget = NumericTarget::BigNumeric {
        precision: 76,
        scale: 38,
    };
    let Some((p, s)) = ty.numeric_precision_scale() else {
        return WIDE;
    };
    // Negative scales (numeric(5,-2)) hold integers with trailing zeros: p - s integer digits.
    let (int_digits, frac_digits) = (p - s, s.max(0));
    if int_digits <= 29 && frac_digits <= 9 {
        NumericTarget::Numeric
    } else if int_digits <= 38 && frac_digits <= 38 {
        let precision = int_digits + frac_digits;
        if precision <= 38 {
            NumericTarget::BigNumeric {
                precision: precision as u8,
                scale: frac_digits as i8,
            }
        } else {
            WIDE
        }
    } else {
        NumericTarget::String
    }
}

fn scalar_kind(ty: &PgType, opts: MappingOptions) -> Option<PgKind> {
    if ty.is_enum {
        return Some(PgKind::Text);
    }
    if ty.name == "numeric" {
        return Some(PgKind::Numeric(numeric_target(ty, opts)));
    }
    SCALARS
        .iter()
        .find(|(name, _)| *name == ty.name)
        .map(|(_, k)| k.clone())
}

/// Maps one Postgres column, or says clearly that it cannot.
pub fn map_column(
    table: &str,
    column: &str,
    ty: &PgType,
    not_null: bool,
    opts: MappingOptions,
) -> Result<ColumnMapping> {
    let unsupported = || Error::UnsupportedType {
        table: table.into(),
        column: column.into(),
        pg_type: display_name(ty),
    };
    let (kind, repeated) = match &ty.element {
        Some(element) => {
            let inner = scalar_kind(element, opts).ok_or_else(unsupported)?;
            (PgKind::Array(Box::new(inner)), true)
        }
        None => (scalar_kind(ty, opts).ok_or_else(unsupported)?, false),
    };
    Ok(ColumnMapping {
        name: column.into(),
        bq_type: bq_type(&kind),
        kind,
        repeated,
        nullable: !not_null && !repeated,
    })
}

/// The type as a person writes it (`text[]`, `numeric(12,2)`).
pub fn display_name(ty: &PgType) -> String {
    match &ty.element {
        Some(e) => format!("{}[]", display_name(e)),
        None => match ty.numeric_precision_scale() {
            Some((p, s)) if ty.name == "numeric" => format!("numeric({p},{s})"),
            _ => ty.name.clone(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(ty: PgType) -> ColumnMapping {
        map_column("t", "c", &ty, false, MappingOptions::default()).unwrap()
    }

    #[test]
    fn every_scalar_maps_to_its_bigquery_type() {
        let expected = [
            ("int2", BqType::Int64, DataType::Int64),
            ("int4", BqType::Int64, DataType::Int64),
            ("int8", BqType::Int64, DataType::Int64),
            ("oid", BqType::Int64, DataType::Int64),
            ("float4", BqType::Float64, DataType::Float64),
            ("float8", BqType::Float64, DataType::Float64),
            ("text", BqType::String, DataType::Utf8),
            ("varchar", BqType::String, DataType::Utf8),
            ("bpchar", BqType::String, DataType::Utf8),
            ("name", BqType::String, DataType::Utf8),
            ("citext", BqType::String, DataType::Utf8),
            ("bool", BqType::Bool, DataType::Boolean),
            ("date", BqType::Date, DataType::Date32),
            (
                "timestamp",
                BqType::Datetime,
                DataType::Timestamp(TimeUnit::Microsecond, None),
            ),
            (
                "timestamptz",
                BqType::Timestamp,
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            ),
            (
                "time",
                BqType::Time,
                DataType::Time64(TimeUnit::Microsecond),
            ),
            ("interval", BqType::String, DataType::Utf8),
            ("uuid", BqType::String, DataType::Utf8),
            ("json", BqType::Json, DataType::Utf8),
            ("jsonb", BqType::Json, DataType::Utf8),
            ("bytea", BqType::Bytes, DataType::Binary),
            ("inet", BqType::String, DataType::Utf8),
            ("cidr", BqType::String, DataType::Utf8),
        ];
        assert_eq!(expected.len(), SCALARS.len(), "a scalar lacks a test row");
        for (name, bq, arrow) in expected {
            let m = map(PgType::scalar(name));
            assert_eq!(m.bq_type, bq, "{name}");
            assert_eq!(m.arrow_field().data_type(), &arrow, "{name}");
            assert!(!m.repeated && m.nullable, "{name}");
        }
    }

    #[test]
    fn numeric_picks_the_narrowest_exact_type() {
        let cases = [
            (PgType::numeric(12, 2), BqType::Numeric),
            (PgType::numeric(38, 9), BqType::Numeric),
            (PgType::numeric(29, 0), BqType::Numeric),
            (PgType::numeric(30, 0), BqType::BigNumeric),
            (PgType::numeric(20, 10), BqType::BigNumeric),
            (PgType::numeric(76, 38), BqType::BigNumeric),
            (PgType::numeric(77, 38), BqType::String),
            (PgType::numeric(50, 40), BqType::String),
            (PgType::numeric(5, -2), BqType::Numeric),
            (PgType::scalar("numeric"), BqType::BigNumeric),
        ];
        for (ty, bq) in cases {
            assert_eq!(map(ty.clone()).bq_type, bq, "{}", display_name(&ty));
        }
        let as_string = map_column(
            "t",
            "c",
            &PgType::numeric(12, 2),
            true,
            MappingOptions {
                numeric_as_string: true,
            },
        )
        .unwrap();
        assert_eq!(as_string.bq_type, BqType::String);
        assert!(!as_string.nullable);
    }

    #[test]
    fn typmod_round_trips_precision_and_scale() {
        assert_eq!(
            PgType::numeric(12, 2).numeric_precision_scale(),
            Some((12, 2))
        );
        assert_eq!(
            PgType::numeric(5, -2).numeric_precision_scale(),
            Some((5, -2))
        );
        assert_eq!(PgType::scalar("numeric").numeric_precision_scale(), None);
    }

    #[test]
    fn arrays_are_repeated_and_never_null() {
        let m = map(PgType::array_of(PgType::scalar("text")));
        assert!(m.repeated);
        assert!(!m.nullable);
        assert_eq!(m.bq_type, BqType::String);
        assert_eq!(m.kind, PgKind::Array(Box::new(PgKind::Text)));
        let f = m.arrow_field();
        assert!(!f.is_nullable());
        assert!(matches!(f.data_type(), DataType::List(e) if e.data_type() == &DataType::Utf8));
        let nums = map(PgType::array_of(PgType::numeric(10, 2)));
        assert_eq!(nums.bq_type, BqType::Numeric);
        let wide = map(PgType::numeric(30, 10)).arrow_field();
        assert_eq!(wide.data_type(), &DataType::Decimal128(30, 10));
        let unconstrained = map(PgType::scalar("numeric")).arrow_field();
        assert_eq!(unconstrained.data_type(), &DataType::Decimal256(76, 38));
        assert_eq!(
            display_name(&PgType::array_of(PgType::numeric(10, 2))),
            "numeric(10,2)[]"
        );
    }

    #[test]
    fn enums_are_strings() {
        let ty = PgType {
            is_enum: true,
            ..PgType::scalar("order_status")
        };
        assert_eq!(map(ty).bq_type, BqType::String);
    }

    #[test]
    fn unsupported_types_name_table_and_column() {
        let err = map_column(
            "public.shapes",
            "area",
            &PgType::scalar("polygon"),
            false,
            MappingOptions::default(),
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("public.shapes.area"), "{msg}");
        assert!(msg.contains("polygon"), "{msg}");
        let arr = map_column(
            "t",
            "pts",
            &PgType::array_of(PgType::scalar("point")),
            false,
            MappingOptions::default(),
        )
        .unwrap_err();
        assert!(arr.to_string().contains("point[]"));
    }
}

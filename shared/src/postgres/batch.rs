//! Arrow columns from Postgres values in binary wire format, one row at a time: the one place
//! the type mapping turns bytes into Arrow, shared by COPY decoding (pg-copy) and change
//! decoding (cdc-sync).

use super::wire::DecodeError;
use std::sync::Arc;

use arrow::array::ArrayBuilder;
use arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Decimal256Builder,
    Float64Builder, Int64Builder, ListArray, StringArray, Time64MicrosecondBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{Field, FieldRef};

use super::wire::{self, Fit, Numeric};
use crate::error::Error;
use crate::types::{arrow_type, ColumnMapping, NumericTarget, PgKind};

/// Counts of values that needed care on the way, for the run ledger.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct DecodeStats {
    /// NULL elements removed from arrays (BigQuery arrays cannot hold NULL).
    pub null_array_elements_dropped: u64,
    /// NULL arrays written as empty arrays.
    pub null_arrays_as_empty: u64,
    /// ±infinity dates/timestamps and 24:00:00 times clamped to BigQuery's range.
    pub values_clamped: u64,
}

impl DecodeStats {
    pub fn add(&mut self, o: &DecodeStats) {
        self.null_array_elements_dropped += o.null_array_elements_dropped;
        self.null_arrays_as_empty += o.null_arrays_as_empty;
        self.values_clamped += o.values_clamped;
    }
}

/// One Arrow builder per column, chosen by the column's mapping.
pub(crate) enum Builder {
    Int(Int64Builder),
    Float(Float64Builder),
    Numeric(Decimal128Builder, u8, i8),
    BigNumeric(Decimal256Builder),
    /// Text as bytes, checked to be UTF-8 once per batch when it is finished (one pass
    /// over the batch's bytes, not a call per value).
    Utf8(BinaryBuilder),
    Bool(BooleanBuilder),
    Date(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder, Option<Arc<str>>),
    Time(Time64MicrosecondBuilder),
    Binary(BinaryBuilder),
    List {
        offsets: Vec<i32>,
        child: Box<Builder>,
        field: FieldRef,
    },
}

impl Builder {
    fn new(kind: &PgKind) -> Builder {
        Builder::sized(kind, 0, 0)
    }

    /// A builder with room for `items` values of `bytes` bytes of data in all, so a batch like
    /// the last one fills it without the doubling reallocations that fragment the heap.
    fn sized(kind: &PgKind, items: usize, bytes: usize) -> Builder {
        match kind {
            PgKind::Int2 | PgKind::Int4 | PgKind::Int8 | PgKind::Oid => {
                Builder::Int(Int64Builder::with_capacity(items))
            }
            PgKind::Float4 | PgKind::Float8 => Builder::Float(Float64Builder::with_capacity(items)),
            PgKind::Numeric(NumericTarget::Numeric) => decimal128(38, 9, items),
            PgKind::Numeric(NumericTarget::BigNumeric { precision, scale }) if *precision <= 38 => {
                decimal128(*precision, *scale, items)
            }
            PgKind::Numeric(NumericTarget::BigNumeric { .. }) => Builder::BigNumeric(
                Decimal256Builder::with_capacity(items)
                    .with_precision_and_scale(76, 38)
                    .expect("76,38 is a valid decimal"),
            ),
            PgKind::Numeric(NumericTarget::String)
            | PgKind::Text
            | PgKind::Interval
            | PgKind::Uuid
            | PgKind::Json
            | PgKind::Jsonb
            | PgKind::Inet => Builder::Utf8(BinaryBuilder::with_capacity(items, bytes)),
            PgKind::Bool => Builder::Bool(BooleanBuilder::with_capacity(items)),
            PgKind::Date => Builder::Date(Date32Builder::with_capacity(items)),
            PgKind::Timestamp => {
                Builder::Timestamp(TimestampMicrosecondBuilder::with_capacity(items), None)
            }
            PgKind::Timestamptz => Builder::Timestamp(
                TimestampMicrosecondBuilder::with_capacity(items).with_timezone("UTC"),
                Some("UTC".into()),
            ),
            PgKind::Time => Builder::Time(Time64MicrosecondBuilder::with_capacity(items)),
            PgKind::Bytea => Builder::Binary(BinaryBuilder::with_capacity(items, bytes)),
            PgKind::Array(inner) => {
                let mut offsets = Vec::with_capacity(items + 1);
                offsets.push(0);
                Builder::List {
                    offsets,
                    // Elements: guess from the bytes, as the element count is not kept.
                    child: Box::new(Builder::sized(inner, bytes / 8, bytes)),
                    field: Arc::new(Field::new("element", arrow_type(inner), false)),
                }
            }
        }
    }

    /// Values held (rows, or elements for a list's child).
    fn items(&self) -> usize {
        match self {
            Builder::Int(b) => b.len(),
            Builder::Float(b) => b.len(),
            Builder::Numeric(b, ..) => b.len(),
            Builder::BigNumeric(b) => b.len(),
            Builder::Utf8(b) => b.len(),
            Builder::Bool(b) => b.len(),
            Builder::Date(b) => b.len(),
            Builder::Timestamp(b, _) => b.len(),
            Builder::Time(b) => b.len(),
            Builder::Binary(b) => b.len(),
            Builder::List { offsets, .. } => offsets.len().saturating_sub(1),
        }
    }

    /// Bytes of variable-length data held (strings, blobs, list elements).
    fn data_bytes(&self) -> usize {
        match self {
            Builder::Utf8(b) => b.values_slice().len(),
            Builder::Binary(b) => b.values_slice().len(),
            Builder::List { child, .. } => child.approx_bytes(),
            _ => 0,
        }
    }

    fn append_null(&mut self, stats: &mut DecodeStats) {
        match self {
            Builder::Int(b) => b.append_null(),
            Builder::Float(b) => b.append_null(),
            Builder::Numeric(b, ..) => b.append_null(),
            Builder::BigNumeric(b) => b.append_null(),
            Builder::Utf8(b) => b.append_null(),
            Builder::Bool(b) => b.append_null(),
            Builder::Date(b) => b.append_null(),
            Builder::Timestamp(b, _) => b.append_null(),
            Builder::Time(b) => b.append_null(),
            Builder::Binary(b) => b.append_null(),
            Builder::List { offsets, .. } => {
                stats.null_arrays_as_empty += 1;
                let last = *offsets.last().unwrap_or(&0);
                offsets.push(last);
            }
        }
    }

    /// Appends one non-NULL value in binary wire format.
    fn append(
        &mut self,
        kind: &PgKind,
        v: &[u8],
        stats: &mut DecodeStats,
    ) -> Result<(), DecodeError> {
        fn clamp<T>(f: Fit<T>, stats: &mut DecodeStats) -> T {
            if matches!(f, Fit::Clamped(_)) {
                stats.values_clamped += 1;
            }
            f.value()
        }
        match (self, kind) {
            (Builder::Int(b), PgKind::Oid) => b.append_value(wire::oid(v)?),
            (Builder::Int(b), _) => b.append_value(wire::int(v)?),
            (Builder::Float(b), _) => b.append_value(wire::float(v)?),
            (Builder::Numeric(b, p, s), _) => {
                b.append_value(Numeric::parse(v)?.to_decimal128(*p, *s)?)
            }
            (Builder::BigNumeric(b), _) => b.append_value(Numeric::parse(v)?.to_bignumeric()?),
            (Builder::Utf8(b), kind) => match kind {
                PgKind::Numeric(_) => b.append_value(Numeric::parse(v)?.to_text()),
                PgKind::Interval => b.append_value(wire::interval(v)?),
                PgKind::Uuid => b.append_value(wire::uuid(v)?),
                PgKind::Inet => b.append_value(wire::inet(v)?),
                PgKind::Jsonb => b.append_value(wire::jsonb_bytes(v)?),
                _ => b.append_value(v),
            },
            (Builder::Bool(b), _) => b.append_value(wire::boolean(v)?),
            (Builder::Date(b), _) => b.append_value(clamp(wire::date(v)?, stats)),
            (Builder::Timestamp(b, _), _) => b.append_value(clamp(wire::timestamp(v)?, stats)),
            (Builder::Time(b), _) => b.append_value(clamp(wire::time(v)?, stats)),
            (Builder::Binary(b), _) => b.append_value(v),
            (Builder::List { offsets, child, .. }, PgKind::Array(inner)) => {
                let n = append_array(child, inner, v, stats)?;
                let last = *offsets.last().unwrap_or(&0);
                offsets.push(last + n);
            }
            (_, kind) => return Err(DecodeError(format!("no builder for {kind:?}"))),
        }
        Ok(())
    }

    /// The values built so far as an Arrow array; text that is not UTF-8 is an error naming
    /// the value's index (rows, or elements of a list's child).
    fn finish(&mut self) -> Result<ArrayRef, (usize, DecodeError)> {
        Ok(match self {
            Builder::Int(b) => Arc::new(b.finish()),
            Builder::Float(b) => Arc::new(b.finish()),
            Builder::Numeric(b, ..) => Arc::new(b.finish()),
            Builder::BigNumeric(b) => Arc::new(b.finish()),
            Builder::Utf8(b) => {
                let bytes = b.finish();
                match StringArray::try_from_binary(bytes.clone()) {
                    Ok(text) => Arc::new(text),
                    Err(_) => return Err(first_invalid_utf8(&bytes)),
                }
            }
            Builder::Bool(b) => Arc::new(b.finish()),
            Builder::Date(b) => Arc::new(b.finish()),
            Builder::Timestamp(b, tz) => Arc::new(b.finish().with_timezone_opt(tz.clone())),
            Builder::Time(b) => Arc::new(b.finish()),
            Builder::Binary(b) => Arc::new(b.finish()),
            Builder::List {
                offsets,
                child,
                field,
            } => {
                let offs = std::mem::replace(offsets, vec![0]);
                // An element's error is its row's.
                let values = child.finish().map_err(|(element, e)| {
                    let row = offs.partition_point(|o| *o as usize <= element);
                    (row.saturating_sub(1), e)
                })?;
                Arc::new(ListArray::new(
                    field.clone(),
                    OffsetBuffer::new(offs.into()),
                    values,
                    None,
                ))
            }
        })
    }

    /// Bytes held by the builder (a list's child, to size the next batch's builders).
    fn approx_bytes(&self) -> usize {
        match self {
            Builder::Int(b) => b.len() * 8,
            Builder::Float(b) => b.len() * 8,
            Builder::Numeric(b, ..) => b.len() * 16,
            Builder::BigNumeric(b) => b.len() * 32,
            Builder::Utf8(b) => b.values_slice().len() + b.len() * 4,
            Builder::Bool(b) => b.len() / 8,
            Builder::Date(b) => b.len() * 4,
            Builder::Timestamp(b, _) => b.len() * 8,
            Builder::Time(b) => b.len() * 8,
            Builder::Binary(b) => b.values_slice().len() + b.len() * 4,
            Builder::List { offsets, child, .. } => offsets.len() * 4 + child.approx_bytes(),
        }
    }
}

/// The first value of `bytes` that is not UTF-8, and why (the slow path of a failed batch).
fn first_invalid_utf8(bytes: &arrow::array::BinaryArray) -> (usize, DecodeError) {
    use arrow::array::Array;
    (0..bytes.len())
        .filter(|i| bytes.is_valid(*i))
        .find_map(|i| wire::text(bytes.value(i)).err().map(|e| (i, e)))
        .unwrap_or_else(|| {
            // Each value is UTF-8 but the batch is not: cannot happen, as values are whole.
            (0, DecodeError("text is not UTF-8".into()))
        })
}

fn decimal128(precision: u8, scale: i8, items: usize) -> Builder {
    let b = Decimal128Builder::with_capacity(items)
        .with_precision_and_scale(precision, scale)
        .expect("precision ≤ 38 comes from the type mapping");
    Builder::Numeric(b, precision, scale)
}

/// Decodes a binary array value into the child builder; returns how many elements it appended.
fn append_array(
    child: &mut Builder,
    kind: &PgKind,
    v: &[u8],
    stats: &mut DecodeStats,
) -> Result<i32, DecodeError> {
    if v.len() < 12 {
        return Err(DecodeError("array: header too short".into()));
    }
    let ndim = wire::read_i32(&v[0..4]);
    if ndim == 0 {
        return Ok(0);
    }
    if ndim != 1 {
        return Err(DecodeError(format!(
            "array with {ndim} dimensions; BigQuery REPEATED holds one dimension only"
        )));
    }
    let len = wire::read_i32(&v[12..16]);
    let mut pos = 20; // ndim, flags, elem oid, dim length, lower bound
    let mut appended = 0;
    for _ in 0..len {
        let Some(l) = v.get(pos..pos + 4) else {
            return Err(DecodeError("array: truncated".into()));
        };
        let l = wire::read_i32(l);
        pos += 4;
        if l < 0 {
            stats.null_array_elements_dropped += 1;
            continue;
        }
        let end = pos + l as usize;
        let Some(elem) = v.get(pos..end) else {
            return Err(DecodeError("array: truncated element".into()));
        };
        child.append(kind, elem, stats)?;
        pos = end;
        appended += 1;
    }
    Ok(appended)
}

/// Arrow builders for a list of mapped columns, filled one value at a time.
pub struct ColumnBuilders {
    table: String,
    kinds: Vec<PgKind>,
    names: Vec<String>,
    builders: Vec<Builder>,
    stats: DecodeStats,
}

impl ColumnBuilders {
    /// `table` names the source in errors.
    pub fn new(table: impl Into<String>, columns: &[ColumnMapping]) -> Self {
        ColumnBuilders {
            table: table.into(),
            kinds: columns.iter().map(|c| c.kind.clone()).collect(),
            names: columns.iter().map(|c| c.name.clone()).collect(),
            builders: columns.iter().map(|c| Builder::new(&c.kind)).collect(),
            stats: DecodeStats::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.builders.len()
    }

    pub fn is_empty(&self) -> bool {
        self.builders.is_empty()
    }

    pub fn stats(&self) -> DecodeStats {
        self.stats
    }

    /// Appends NULL to column `i` (an empty list for REPEATED columns).
    pub fn append_null(&mut self, i: usize) {
        self.builders[i].append_null(&mut self.stats);
    }

    /// Appends one binary wire value to column `i`; `row` (1-based) goes into the error.
    pub fn append(&mut self, i: usize, v: &[u8], row: u64) -> Result<(), Error> {
        let Err(detail) = self.builders[i].append(&self.kinds[i], v, &mut self.stats) else {
            return Ok(());
        };
        let column = self.names[i].clone();
        let table = self.table.clone();
        Err(match &self.kinds[i] {
            PgKind::Numeric(_) => Error::ValueOutOfRange {
                table,
                column,
                detail: format!(
                    "{detail} (row {row}); list the column under `numeric_as_string` to land its exact text"
                ),
            },
            PgKind::Date | PgKind::Timestamp | PgKind::Timestamptz => Error::ValueOutOfRange {
                table,
                column,
                detail: format!("{detail} (row {row})"),
            },
            _ => Error::Decode {
                table,
                detail: format!("column {column}, row {row}: {detail}"),
            },
        })
    }

    /// The columns built so far; the builders start over empty, sized like this batch.
    /// `first_row` (1-based) is the batch's first row, for errors: text that is not UTF-8 is
    /// found here, once per batch.
    pub fn finish(&mut self, first_row: u64) -> Result<Vec<ArrayRef>, Error> {
        let mut arrays = Vec::with_capacity(self.builders.len());
        for (i, b) in self.builders.iter_mut().enumerate() {
            let (items, bytes) = (b.items(), b.data_bytes());
            let array = b.finish();
            *b = Builder::sized(&self.kinds[i], items, bytes);
            match array {
                Ok(a) => arrays.push(a),
                Err((index, detail)) => {
                    return Err(Error::Decode {
                        table: self.table.clone(),
                        detail: format!(
                            "column {}, row {}: {detail}",
                            self.names[i],
                            first_row + index as u64
                        ),
                    })
                }
            }
        }
        Ok(arrays)
    }
}

//! Streaming decoder of `COPY … TO STDOUT (FORMAT binary)` into Arrow record batches.
//!
//! Chunks arrive as the server sends them (one CopyData message per row, usually); a tuple
//! split across chunks is carried over. Batches are cut by rows or by buffered bytes so memory
//! stays flat however large the table.

use std::sync::Arc;

use arrow::array::ArrayBuilder;
use arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Decimal256Builder,
    Float64Builder, Int64Builder, ListArray, StringBuilder, Time64MicrosecondBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{Field, FieldRef, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use super::wire::{self, Fit, Numeric};
use crate::error::{Error, Result};
use crate::types::{arrow_type, ColumnMapping, NumericTarget, PgKind};

const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

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
enum Builder {
    Int(Int64Builder),
    Float(Float64Builder),
    Numeric(Decimal128Builder, u8, i8),
    BigNumeric(Decimal256Builder),
    Utf8(StringBuilder),
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
        match kind {
            PgKind::Int2 | PgKind::Int4 | PgKind::Int8 | PgKind::Oid => {
                Builder::Int(Int64Builder::new())
            }
            PgKind::Float4 | PgKind::Float8 => Builder::Float(Float64Builder::new()),
            PgKind::Numeric(NumericTarget::Numeric) => decimal128(38, 9),
            PgKind::Numeric(NumericTarget::BigNumeric { precision, scale }) if *precision <= 38 => {
                decimal128(*precision, *scale)
            }
            PgKind::Numeric(NumericTarget::BigNumeric { .. }) => Builder::BigNumeric(
                Decimal256Builder::new()
                    .with_precision_and_scale(76, 38)
                    .expect("76,38 is a valid decimal"),
            ),
            PgKind::Numeric(NumericTarget::String)
            | PgKind::Text
            | PgKind::Interval
            | PgKind::Uuid
            | PgKind::Json
            | PgKind::Jsonb
            | PgKind::Inet => Builder::Utf8(StringBuilder::new()),
            PgKind::Bool => Builder::Bool(BooleanBuilder::new()),
            PgKind::Date => Builder::Date(Date32Builder::new()),
            PgKind::Timestamp => Builder::Timestamp(TimestampMicrosecondBuilder::new(), None),
            PgKind::Timestamptz => Builder::Timestamp(
                TimestampMicrosecondBuilder::new().with_timezone("UTC"),
                Some("UTC".into()),
            ),
            PgKind::Time => Builder::Time(Time64MicrosecondBuilder::new()),
            PgKind::Bytea => Builder::Binary(BinaryBuilder::new()),
            PgKind::Array(inner) => Builder::List {
                offsets: vec![0],
                child: Box::new(Builder::new(inner)),
                field: Arc::new(Field::new("element", arrow_type(inner), false)),
            },
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
    fn append(&mut self, kind: &PgKind, v: &[u8], stats: &mut DecodeStats) -> Result<(), String> {
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
                PgKind::Jsonb => b.append_value(wire::jsonb(v)?),
                _ => b.append_value(wire::text(v)?),
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
            (_, kind) => return Err(format!("no builder for {kind:?}")),
        }
        Ok(())
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Builder::Int(b) => Arc::new(b.finish()),
            Builder::Float(b) => Arc::new(b.finish()),
            Builder::Numeric(b, ..) => Arc::new(b.finish()),
            Builder::BigNumeric(b) => Arc::new(b.finish()),
            Builder::Utf8(b) => Arc::new(b.finish()),
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
                let values = child.finish();
                let offs = std::mem::replace(offsets, vec![0]);
                Arc::new(ListArray::new(
                    field.clone(),
                    OffsetBuffer::new(offs.into()),
                    values,
                    None,
                ))
            }
        }
    }

    /// Bytes held by the builder, to cut batches before memory grows.
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

fn decimal128(precision: u8, scale: i8) -> Builder {
    let b = Decimal128Builder::new()
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
) -> Result<i32, String> {
    if v.len() < 12 {
        return Err("array: header too short".into());
    }
    let ndim = wire::read_i32(&v[0..4]);
    if ndim == 0 {
        return Ok(0);
    }
    if ndim != 1 {
        return Err(format!(
            "array with {ndim} dimensions; BigQuery REPEATED holds one dimension only"
        ));
    }
    let len = wire::read_i32(&v[12..16]);
    let mut pos = 20; // ndim, flags, elem oid, dim length, lower bound
    let mut appended = 0;
    for _ in 0..len {
        let Some(l) = v.get(pos..pos + 4) else {
            return Err("array: truncated".into());
        };
        let l = wire::read_i32(l);
        pos += 4;
        if l < 0 {
            stats.null_array_elements_dropped += 1;
            continue;
        }
        let end = pos + l as usize;
        let Some(elem) = v.get(pos..end) else {
            return Err("array: truncated element".into());
        };
        child.append(kind, elem, stats)?;
        pos = end;
        appended += 1;
    }
    Ok(appended)
}

/// Turns a binary COPY stream into Arrow record batches.
pub struct CopyDecoder {
    table: String,
    kinds: Vec<PgKind>,
    names: Vec<String>,
    builders: Vec<Builder>,
    schema: SchemaRef,
    carry: Vec<u8>,
    header_done: bool,
    finished: bool,
    rows_in_batch: usize,
    rows_total: u64,
    stats: DecodeStats,
}

impl CopyDecoder {
    pub fn new(table: impl Into<String>, columns: &[ColumnMapping]) -> Self {
        let fields: Vec<Field> = columns.iter().map(|c| c.arrow_field()).collect();
        CopyDecoder {
            table: table.into(),
            kinds: columns.iter().map(|c| c.kind.clone()).collect(),
            names: columns.iter().map(|c| c.name.clone()).collect(),
            builders: columns.iter().map(|c| Builder::new(&c.kind)).collect(),
            schema: Arc::new(Schema::new(fields)),
            carry: Vec::new(),
            header_done: false,
            finished: false,
            rows_in_batch: 0,
            rows_total: 0,
            stats: DecodeStats::default(),
        }
    }

    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Rows decoded so far, in all batches.
    pub fn rows(&self) -> u64 {
        self.rows_total
    }

    pub fn stats(&self) -> DecodeStats {
        self.stats
    }

    /// Rows waiting in the builders.
    pub fn buffered_rows(&self) -> usize {
        self.rows_in_batch
    }

    pub fn buffered_bytes(&self) -> usize {
        self.builders.iter().map(Builder::approx_bytes).sum()
    }

    fn err(&self, detail: impl Into<String>) -> Error {
        Error::Decode {
            table: self.table.clone(),
            detail: detail.into(),
        }
    }

    /// Feeds one chunk of COPY data.
    pub fn push(&mut self, chunk: &[u8]) -> Result<()> {
        if self.carry.is_empty() {
            let used = self.decode(chunk)?;
            self.carry.extend_from_slice(&chunk[used..]);
        } else {
            let mut data = std::mem::take(&mut self.carry);
            data.extend_from_slice(chunk);
            let used = self.decode(&data)?;
            data.drain(..used);
            self.carry = data;
        }
        Ok(())
    }

    /// Decodes whole tuples from `data`; returns the bytes consumed.
    fn decode(&mut self, data: &[u8]) -> Result<usize> {
        let mut pos = 0;
        if !self.header_done {
            if data.len() < SIGNATURE.len() + 8 {
                return Ok(0);
            }
            if &data[..SIGNATURE.len()] != SIGNATURE {
                return Err(self.err("missing PGCOPY signature"));
            }
            let ext = wire::read_i32(&data[SIGNATURE.len() + 4..]) as usize;
            let header = SIGNATURE.len() + 8 + ext;
            if data.len() < header {
                return Ok(0);
            }
            pos = header;
            self.header_done = true;
        }
        let ncols = self.kinds.len();
        while pos + 2 <= data.len() {
            if self.finished {
                return Err(self.err("data after the end-of-copy trailer"));
            }
            let nfields = wire::read_i16(&data[pos..]);
            if nfields == -1 {
                self.finished = true;
                pos += 2;
                continue;
            }
            if nfields as usize != ncols {
                return Err(self.err(format!("tuple has {nfields} fields, expected {ncols}")));
            }
            // First pass: is the whole tuple here?
            let mut p = pos + 2;
            let mut complete = true;
            for _ in 0..ncols {
                if p + 4 > data.len() {
                    complete = false;
                    break;
                }
                let len = wire::read_i32(&data[p..]);
                p += 4 + len.max(0) as usize;
                if p > data.len() {
                    complete = false;
                    break;
                }
            }
            if !complete {
                break;
            }
            // Second pass: decode.
            let mut p = pos + 2;
            for i in 0..ncols {
                let len = wire::read_i32(&data[p..]);
                p += 4;
                if len < 0 {
                    self.builders[i].append_null(&mut self.stats);
                } else {
                    let v = &data[p..p + len as usize];
                    p += len as usize;
                    if let Err(detail) = self.builders[i].append(&self.kinds[i], v, &mut self.stats)
                    {
                        let column = self.names[i].clone();
                        let row = self.rows_total + 1;
                        return Err(match &self.kinds[i] {
                            PgKind::Numeric(_) => Error::ValueOutOfRange {
                                table: self.table.clone(),
                                column,
                                detail: format!(
                                    "{detail} (row {row}); list the column under `numeric_as_string` to land its exact text"
                                ),
                            },
                            PgKind::Date | PgKind::Timestamp | PgKind::Timestamptz => Error::ValueOutOfRange {
                                table: self.table.clone(),
                                column,
                                detail: format!("{detail} (row {row})"),
                            },
                            _ => self.err(format!("column {column}, row {row}: {detail}")),
                        });
                    }
                }
            }
            pos = p;
            self.rows_in_batch += 1;
            self.rows_total += 1;
        }
        Ok(pos)
    }

    /// The rows decoded since the last batch, or None if there are none.
    pub fn take_batch(&mut self) -> Result<Option<RecordBatch>> {
        if self.rows_in_batch == 0 {
            return Ok(None);
        }
        let arrays: Vec<ArrayRef> = self.builders.iter_mut().map(Builder::finish).collect();
        self.rows_in_batch = 0;
        let batch = RecordBatch::try_new(self.schema.clone(), arrays)
            .map_err(|e| self.err(format!("building a batch: {e}")))?;
        Ok(Some(batch))
    }

    /// Checks that the stream ended cleanly with its trailer.
    pub fn finish(&self) -> Result<()> {
        if !self.carry.is_empty() {
            return Err(self.err(format!(
                "{} bytes of an incomplete tuple at the end",
                self.carry.len()
            )));
        }
        if !self.finished {
            return Err(self.err("stream ended without the end-of-copy trailer"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{map_column, MappingOptions, PgType};
    use arrow::array::{Array, AsArray, Int64Array, StringArray};
    use arrow::datatypes::Int64Type;

    fn encode(rows: &[Vec<Option<Vec<u8>>>]) -> Vec<u8> {
        let mut b = SIGNATURE.to_vec();
        b.extend(0i32.to_be_bytes());
        b.extend(0i32.to_be_bytes());
        for row in rows {
            b.extend((row.len() as i16).to_be_bytes());
            for f in row {
                match f {
                    None => b.extend((-1i32).to_be_bytes()),
                    Some(v) => {
                        b.extend((v.len() as i32).to_be_bytes());
                        b.extend(v);
                    }
                }
            }
        }
        b.extend((-1i16).to_be_bytes());
        b
    }

    fn text_array(items: &[Option<&str>]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend(1i32.to_be_bytes());
        b.extend(1i32.to_be_bytes());
        b.extend(25i32.to_be_bytes());
        b.extend((items.len() as i32).to_be_bytes());
        b.extend(1i32.to_be_bytes());
        for i in items {
            match i {
                None => b.extend((-1i32).to_be_bytes()),
                Some(s) => {
                    b.extend((s.len() as i32).to_be_bytes());
                    b.extend(s.as_bytes());
                }
            }
        }
        b
    }

    fn cols() -> Vec<ColumnMapping> {
        let o = MappingOptions::default();
        vec![
            map_column("t", "id", &PgType::scalar("int8"), true, o).unwrap(),
            map_column("t", "name", &PgType::scalar("text"), false, o).unwrap(),
            map_column(
                "t",
                "tags",
                &PgType::array_of(PgType::scalar("text")),
                false,
                o,
            )
            .unwrap(),
        ]
    }

    fn rows() -> Vec<Vec<Option<Vec<u8>>>> {
        vec![
            vec![
                Some(1i64.to_be_bytes().to_vec()),
                Some(b"caf\xc3\xa9".to_vec()),
                Some(text_array(&[Some("a"), None, Some("b")])),
            ],
            vec![Some(2i64.to_be_bytes().to_vec()), None, None],
        ]
    }

    fn check(batch: &RecordBatch, stats: DecodeStats) {
        assert_eq!(batch.num_rows(), 2);
        let ids: &Int64Array = batch.column(0).as_primitive::<Int64Type>();
        assert_eq!(ids.values(), &[1, 2]);
        let names: &StringArray = batch.column(1).as_string::<i32>();
        assert_eq!(names.value(0), "café");
        assert!(names.is_null(1));
        let tags = batch.column(2).as_list::<i32>();
        assert_eq!(tags.value_length(0), 2);
        assert_eq!(tags.value_length(1), 0);
        assert_eq!(stats.null_array_elements_dropped, 1);
        assert_eq!(stats.null_arrays_as_empty, 1);
    }

    #[test]
    fn decodes_rows_nulls_and_arrays() {
        let data = encode(&rows());
        let mut d = CopyDecoder::new("t", &cols());
        d.push(&data).unwrap();
        d.finish().unwrap();
        let batch = d.take_batch().unwrap().unwrap();
        check(&batch, d.stats());
    }

    #[test]
    fn tuples_split_across_chunks_at_every_byte() {
        let data = encode(&rows());
        for cut in 1..data.len() {
            let mut d = CopyDecoder::new("t", &cols());
            d.push(&data[..cut]).unwrap();
            d.push(&data[cut..]).unwrap();
            d.finish().unwrap();
            check(&d.take_batch().unwrap().unwrap(), d.stats());
        }
    }

    #[test]
    fn truncated_stream_is_an_error() {
        let data = encode(&rows());
        let mut d = CopyDecoder::new("t", &cols());
        d.push(&data[..data.len() - 3]).unwrap();
        let e = d.finish().unwrap_err().to_string();
        assert!(e.contains("decoding COPY data of t"), "{e}");
    }

    #[test]
    fn wrong_field_count_is_an_error() {
        let data = encode(&[vec![Some(1i64.to_be_bytes().to_vec())]]);
        let mut d = CopyDecoder::new("t", &cols());
        let e = d.push(&data).unwrap_err().to_string();
        assert!(e.contains("1 fields, expected 3"), "{e}");
    }

    #[test]
    fn invalid_utf8_names_the_column() {
        let data = encode(&[vec![
            Some(1i64.to_be_bytes().to_vec()),
            Some(vec![0xff]),
            None,
        ]]);
        let mut d = CopyDecoder::new("t", &cols());
        let e = d.push(&data).unwrap_err().to_string();
        assert!(e.contains("column name"), "{e}");
    }

    #[test]
    fn a_numeric_that_does_not_fit_names_the_column_and_the_fix() {
        let o = MappingOptions::default();
        let cols = vec![map_column("t", "amount", &PgType::scalar("numeric"), false, o).unwrap()];
        // NaN: ndigits 0, weight 0, sign 0xC000, dscale 0.
        let nan = vec![0, 0, 0, 0, 0xC0, 0, 0, 0];
        let data = encode(&[vec![Some(nan)]]);
        let mut d = CopyDecoder::new("public.t", &cols);
        let e = d.push(&data).unwrap_err().to_string();
        assert!(
            e.starts_with("value out of range: public.t.amount: NaN"),
            "{e}"
        );
        assert!(e.contains("numeric_as_string"), "{e}");
    }

    #[test]
    fn batches_are_cut_and_counted() {
        let data = encode(&rows());
        let mut d = CopyDecoder::new("t", &cols());
        d.push(&data).unwrap();
        assert_eq!(d.buffered_rows(), 2);
        assert!(d.buffered_bytes() > 0);
        let _ = d.take_batch().unwrap();
        assert_eq!(d.buffered_rows(), 0);
        assert!(d.take_batch().unwrap().is_none());
        assert_eq!(d.rows(), 2);
        assert_eq!(d.schema().field(2), &cols()[2].arrow_field());
    }
}

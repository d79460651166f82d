//! Streaming decoder of `COPY … TO STDOUT (FORMAT binary)` into Arrow record batches.
//!
//! Chunks arrive as the server sends them (one CopyData message per row, usually); a tuple
//! split across chunks is carried over. Batches are cut by rows or by buffered bytes so memory
//! stays flat however large the table.

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use super::batch::{ColumnBuilders, DecodeStats};
use super::wire;
use crate::error::{Error, Result};
use crate::types::ColumnMapping;

const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

/// Rows per Arrow batch that readers of COPY cut by default.
pub const DEFAULT_BATCH_ROWS: usize = 16 * 1024;
/// Bytes buffered in the builders past which a batch is cut whatever its rows: batches of
/// wide rows stay small, which keeps peak memory flat.
pub const MAX_BATCH_BYTES: usize = 8 << 20;

/// Turns a binary COPY stream into Arrow record batches.
pub struct CopyDecoder {
    table: String,
    columns: ColumnBuilders,
    schema: SchemaRef,
    carry: Vec<u8>,
    header_done: bool,
    finished: bool,
    rows_in_batch: usize,
    /// Wire bytes of the rows waiting: about what the builders hold, counted for free.
    bytes_in_batch: usize,
    rows_total: u64,
}

impl CopyDecoder {
    pub fn new(table: impl Into<String>, columns: &[ColumnMapping]) -> Self {
        let table = table.into();
        CopyDecoder {
            columns: ColumnBuilders::new(table.clone(), columns),
            table,
            schema: crate::types::arrow_schema(columns),
            carry: Vec::new(),
            header_done: false,
            finished: false,
            rows_in_batch: 0,
            bytes_in_batch: 0,
            rows_total: 0,
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
        self.columns.stats()
    }

    /// Rows waiting in the builders.
    pub fn buffered_rows(&self) -> usize {
        self.rows_in_batch
    }

    /// Bytes of the rows waiting, as they came over the wire (the Arrow form is about as big).
    pub fn buffered_bytes(&self) -> usize {
        self.bytes_in_batch
    }

    /// Whether the rows waiting make a batch: `max_rows` of them, or `MAX_BATCH_BYTES`.
    pub fn batch_ready(&self, max_rows: usize) -> bool {
        self.rows_in_batch >= max_rows || self.buffered_bytes() >= MAX_BATCH_BYTES
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
        let ncols = self.columns.len();
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
            let row = self.rows_total + 1;
            for i in 0..ncols {
                let len = wire::read_i32(&data[p..]);
                p += 4;
                if len < 0 {
                    self.columns.append_null(i);
                } else {
                    self.columns.append(i, &data[p..p + len as usize], row)?;
                    p += len as usize;
                }
            }
            self.bytes_in_batch += p - pos;
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
        let first_row = self.rows_total - self.rows_in_batch as u64 + 1;
        let arrays = self.columns.finish(first_row)?;
        self.rows_in_batch = 0;
        self.bytes_in_batch = 0;
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
        d.push(&data).unwrap();
        let e = d.take_batch().unwrap_err().to_string();
        assert!(e.contains("column name, row 1: text is not UTF-8"), "{e}");
    }

    #[test]
    fn invalid_utf8_in_an_array_names_its_row_across_batches() {
        let row = |id: i64, tags: &[Option<&str>]| {
            vec![
                Some(id.to_be_bytes().to_vec()),
                None,
                Some(text_array(tags)),
            ]
        };
        let mut rows = vec![
            row(1, &[Some("a")]),
            row(2, &[Some("b"), Some("c")]),
            row(3, &[Some("d")]),
            row(4, &[Some("e"), Some("\u{7f}")]),
        ];
        let bad = rows[3][2].as_mut().unwrap();
        *bad.last_mut().unwrap() = 0xff;
        let data = encode(&rows);
        // The first batch is the first two rows; the bad element is in the fourth.
        let cut = encode(&rows[..2]).len() - 2;
        let mut d = CopyDecoder::new("t", &cols());
        d.push(&data[..cut]).unwrap();
        assert_eq!(d.take_batch().unwrap().unwrap().num_rows(), 2);
        d.push(&data[cut..]).unwrap();
        d.finish().unwrap();
        let e = d.take_batch().unwrap_err().to_string();
        assert!(e.contains("column tags, row 4: text is not UTF-8"), "{e}");
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

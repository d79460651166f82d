//! Writing record batches as zstd Parquet files in the lake, rolling files and row groups by size.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use parquet::arrow::{ArrowSchemaConverter, AsyncArrowWriter};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::{path, Lake, PartFile};
use crate::error::{Error, Result};

/// Sizes that bound memory: a row group is buffered (encoded) before it is flushed.
#[derive(Debug, Clone, Copy)]
pub struct SinkLimits {
    /// Start a new file past this many bytes.
    pub file_bytes: usize,
    /// Rows per row group.
    pub row_group_rows: usize,
}

impl Default for SinkLimits {
    fn default() -> Self {
        SinkLimits {
            file_bytes: 64 * 1024 * 1024,
            row_group_rows: 64 * 1024,
        }
    }
}

/// Streams batches into `part-NNNNN.parquet` files of one partition. Several sinks may write
/// one partition at once (parallel ranges); they share the part counter.
pub struct ParquetSink {
    lake: Lake,
    partition: Path,
    schema: SchemaRef,
    limits: SinkLimits,
    next_part: Arc<AtomicU32>,
    current: Option<(AsyncArrowWriter<BufWriter>, Path, u64)>,
    files: Vec<PartFile>,
}

/// The lake's writer settings for a file whose first batch is `sample`: zstd level 1, row
/// groups of `limits.row_group_rows`, statistics per column chunk (but for text and bytes),
/// and dictionary encoding only for the columns whose values repeat in the sample (see
/// [`repeats`]).
fn properties(limits: &SinkLimits, sample: &RecordBatch) -> WriterProperties {
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(1).expect("level 1 is valid"),
        ))
        .set_max_row_group_row_count(Some(limits.row_group_rows))
        .set_statistics_enabled(parquet::file::properties::EnabledStatistics::Chunk);
    // Our columns are flat or lists of scalars: one Parquet leaf per Arrow field.
    if let Ok(descr) = ArrowSchemaConverter::new().convert(sample.schema_ref()) {
        for (leaf, column) in descr.columns().iter().enumerate() {
            let field = descr.get_column_root_idx(leaf);
            if !repeats(sample.column(field).as_ref()) {
                b = b.set_column_dictionary_enabled(column.path().clone(), false);
            }
            // Min and max of text and bytes cost a comparison of every value and prune
            // nothing a reader filters on (they are cut to 64 bytes); numbers, dates and
            // timestamps keep theirs.
            if column.physical_type() == parquet::basic::Type::BYTE_ARRAY {
                b = b.set_column_statistics_enabled(
                    column.path().clone(),
                    parquet::file::properties::EnabledStatistics::None,
                );
            }
        }
    }
    b.build()
}

/// Whether a column's values repeat enough for a dictionary to pay: each distinct value comes
/// back four times or more on average in the sample. A dictionary of mostly unique values
/// (keys, timestamps, amounts, free text) costs a hash and a compare per value, and the
/// Parquet writer keeps building it up to its size limit in every row group before it falls
/// back to plain encoding; that was a fifth of pg-copy's CPU on an orders table. Lists are
/// judged by their elements.
pub fn repeats(array: &dyn Array) -> bool {
    use std::collections::HashSet;
    use std::hash::{BuildHasher, RandomState};
    if let Some(list) = array.as_list_opt::<i32>() {
        return repeats(list.values().as_ref());
    }
    let hasher = RandomState::new();
    let mut seen = HashSet::new();
    let mut values = 0usize;
    let mut note = |bytes: &[u8]| {
        values += 1;
        seen.insert(hasher.hash_one(bytes));
    };
    if let Some(a) = array.as_string_opt::<i32>() {
        a.iter().flatten().for_each(|v| note(v.as_bytes()));
    } else if let Some(a) = array.as_binary_opt::<i32>() {
        a.iter().flatten().for_each(&mut note);
    } else if let Some(width) = array.data_type().primitive_width() {
        let data = array.to_data();
        let bytes = &data.buffers()[0].as_slice()[data.offset() * width..];
        for i in (0..array.len()).filter(|i| array.is_valid(*i)) {
            note(&bytes[i * width..(i + 1) * width]);
        }
    } else {
        return true; // booleans and anything else: leave it to the writer
    }
    seen.len() * 4 <= values
}

/// Writes one record batch as one Parquet file at `path`, with the lake's writer settings;
/// returns its size in bytes.
pub async fn write_file(lake: &Lake, path: &Path, batch: &RecordBatch) -> Result<u64> {
    let uri = lake.gs_uri(path);
    let props = properties(&SinkLimits::default(), batch);
    let mut w = AsyncArrowWriter::try_new(lake.writer(path), batch.schema(), Some(props))
        .map_err(|e| Error::lake_other(format!("opening {uri}"), e))?;
    w.write(batch)
        .await
        .map_err(|e| Error::lake_other(format!("writing {uri}"), e))?;
    let bytes = w.bytes_written() + w.in_progress_size();
    w.close()
        .await
        .map_err(|e| Error::lake_other(format!("finishing {uri}"), e))?;
    Ok(bytes as u64)
}

impl ParquetSink {
    pub fn new(
        lake: Lake,
        partition: Path,
        schema: SchemaRef,
        limits: SinkLimits,
        next_part: Arc<AtomicU32>,
    ) -> Self {
        ParquetSink {
            lake,
            partition,
            schema,
            limits,
            next_part,
            current: None,
            files: Vec::new(),
        }
    }

    pub async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if self.current.is_none() {
            let n = self.next_part.fetch_add(1, Ordering::SeqCst);
            let p = path::part_file(&self.partition, n);
            let w = AsyncArrowWriter::try_new(
                self.lake.writer(&p),
                self.schema.clone(),
                Some(properties(&self.limits, batch)),
            )
            .map_err(|e| Error::lake_other(format!("opening {}", self.lake.gs_uri(&p)), e))?;
            self.current = Some((w, p, 0));
        }
        let (w, p, rows) = self.current.as_mut().expect("opened above");
        w.write(batch)
            .await
            .map_err(|e| Error::lake_other(format!("writing {}", self.lake.gs_uri(p)), e))?;
        *rows += batch.num_rows() as u64;
        if w.bytes_written() + w.in_progress_size() >= self.limits.file_bytes {
            self.close_file().await?;
        }
        Ok(())
    }

    async fn close_file(&mut self) -> Result<()> {
        if let Some((w, p, rows)) = self.current.take() {
            let uri = self.lake.gs_uri(&p);
            let bytes = w.bytes_written() + w.in_progress_size();
            w.close()
                .await
                .map_err(|e| Error::lake_other(format!("finishing {uri}"), e))?;
            self.files.push(PartFile {
                path: p.to_string(),
                rows,
                bytes: bytes as u64,
            });
        }
        Ok(())
    }

    /// Closes the open file and returns every file written.
    pub async fn finish(mut self) -> Result<Vec<PartFile>> {
        self.close_file().await?;
        Ok(self.files)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{
        BooleanArray, Int64Array, ListArray, StringArray, TimestampMicrosecondArray,
    };
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};
    use parquet::file::reader::{FileReader, SerializedFileReader};

    #[test]
    fn unique_values_get_no_dictionary_and_repeated_ones_do() {
        let keys = Int64Array::from_iter_values(0..1000);
        assert!(!repeats(&keys));
        let statuses: StringArray = (0..1000)
            .map(|i| Some(["paid", "shipped", "refunded"][i % 3]))
            .collect();
        assert!(repeats(&statuses));
        let notes: StringArray = (0..1000).map(|i| Some(format!("note {i}"))).collect();
        assert!(!repeats(&notes));
        // Nulls are not values: a mostly-null column of three codes repeats.
        let sparse: StringArray = (0..1000)
            .map(|i| (i % 10 == 0).then_some(["a", "b", "c"][i % 3]))
            .collect();
        assert!(repeats(&sparse));
        // Exactly four per distinct value is the line.
        let four = Int64Array::from_iter_values((0..400).map(|i| i % 100));
        assert!(repeats(&four));
        let three = Int64Array::from_iter_values((0..300).map(|i| i % 101));
        assert!(!repeats(&three));
        let at = TimestampMicrosecondArray::from_iter_values((0..1000).map(|i| i * 1_000_000));
        assert!(!repeats(&at.with_timezone("UTC")));
        // A list is judged by its elements; booleans are left to the writer.
        let tags = ListArray::from_iter_primitive::<Int64Type, _, _>(
            (0..500).map(|i| Some(vec![Some(i % 2), Some(7)])),
        );
        assert!(repeats(&tags));
        assert!(repeats(&BooleanArray::from(vec![true, false])));
        assert!(repeats(&Int64Array::from(Vec::<i64>::new())));
    }

    #[test]
    fn the_writer_follows_the_choice_per_column() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("status", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from_iter_values(0..1000)),
                Arc::new(
                    (0..1000)
                        .map(|i| Some(["paid", "shipped"][i % 2]))
                        .collect::<StringArray>(),
                ),
            ],
        )
        .unwrap();
        let mut bytes = Vec::new();
        let props = properties(&SinkLimits::default(), &batch);
        let mut w = parquet::arrow::ArrowWriter::try_new(&mut bytes, schema, Some(props)).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let reader = SerializedFileReader::new(bytes::Bytes::from(bytes)).unwrap();
        let group = reader.metadata().row_group(0);
        let (id, status) = (group.column(0), group.column(1));
        assert!(id.dictionary_page_offset().is_none(), "keys: no dictionary");
        assert!(
            status.dictionary_page_offset().is_some(),
            "statuses: a dictionary"
        );
        assert!(id.statistics().is_some(), "numbers keep min and max");
        assert!(status.statistics().is_none(), "text has no min and max");
    }
}

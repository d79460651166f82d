//! Writing record batches as zstd Parquet files in the lake, rolling files and row groups by size.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use parquet::arrow::AsyncArrowWriter;
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

fn properties(limits: &SinkLimits) -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(1).expect("level 1 is valid"),
        ))
        .set_max_row_group_row_count(Some(limits.row_group_rows))
        .set_statistics_enabled(parquet::file::properties::EnabledStatistics::Chunk)
        .build()
}

/// Writes one record batch as one Parquet file at `path`, with the lake's writer settings;
/// returns its size in bytes.
pub async fn write_file(lake: &Lake, path: &Path, batch: &RecordBatch) -> Result<u64> {
    let uri = lake.gs_uri(path);
    let props = properties(&SinkLimits::default());
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
                Some(properties(&self.limits)),
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

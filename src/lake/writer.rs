//! Arrow batches → zstd Parquet files in one partition, sorted by the dataset's key.
//!
//! A partition writer buffers at most `max_rows` rows; past that it sorts and writes a file and
//! starts the next, so memory stays bounded however large a partition is. Each file is
//! published by one atomic PUT under a name unique to the run; it joins the lake's manifest
//! only when the run commits the partition (see `manifest`).

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::{concat_batches, lexsort_to_indices, take_record_batch, SortColumn};
use arrow::datatypes::SchemaRef;
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use sha2::{Digest, Sha256};

use super::layout::Partition;
use super::store::{Lake, LakeError};

/// Rows per row group: large enough for good compression and pruning statistics.
const ROW_GROUP_ROWS: usize = 122_880;

/// Rows buffered per partition before a file is written.
pub const DEFAULT_MAX_ROWS: usize = 100_000;

/// A file a writer published.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrittenFile {
    /// Path relative to the lake root.
    pub path: String,
    /// Bytes.
    pub size: u64,
    /// Rows.
    pub rows: u64,
    /// SHA-256 of the bytes, hex.
    pub sha256: String,
}

/// Writes one partition's rows into as many files as its size needs.
pub struct PartitionWriter {
    lake: Lake,
    partition: Partition,
    run_id: String,
    schema: SchemaRef,
    buffered: Vec<RecordBatch>,
    rows: usize,
    max_rows: usize,
    written: Vec<WrittenFile>,
}

impl PartitionWriter {
    /// A writer for `partition`, naming its files after `run_id`.
    pub fn new(lake: &Lake, partition: Partition, run_id: &str) -> PartitionWriter {
        PartitionWriter {
            lake: lake.clone(),
            schema: partition.dataset.schema(),
            partition,
            run_id: run_id.to_string(),
            buffered: Vec::new(),
            rows: 0,
            max_rows: DEFAULT_MAX_ROWS,
            written: Vec::new(),
        }
    }

    /// Changes how many rows are buffered before a file is written.
    pub fn with_max_rows(mut self, max_rows: usize) -> PartitionWriter {
        self.max_rows = max_rows.max(1);
        self
    }

    /// The partition written.
    pub fn partition(&self) -> &Partition {
        &self.partition
    }

    /// Adds rows; writes a file when enough are buffered.
    pub async fn push(&mut self, batch: RecordBatch) -> Result<(), LakeError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.rows += batch.num_rows();
        self.buffered.push(batch);
        if self.rows >= self.max_rows {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), LakeError> {
        if self.rows == 0 {
            return Ok(());
        }
        let path = self.partition.file(&self.run_id, self.written.len());
        let batches = std::mem::take(&mut self.buffered);
        self.rows = 0;
        let schema = self.schema.clone();
        let key = self.partition.dataset.key();
        let (bytes, rows) =
            encode(&schema, key, &batches).map_err(|detail| LakeError::Parquet {
                path: path.clone(),
                detail,
            })?;
        let file = WrittenFile {
            path: path.clone(),
            size: bytes.len() as u64,
            rows,
            sha256: format!("{:x}", Sha256::digest(&bytes)),
        };
        self.lake.put(&path, bytes).await?;
        self.written.push(file);
        Ok(())
    }

    /// Writes what is left and returns every file written (none for an empty partition).
    pub async fn finish(mut self) -> Result<(Partition, Vec<WrittenFile>), LakeError> {
        self.flush().await?;
        Ok((self.partition, self.written))
    }
}

/// Concatenates, sorts by `key` and encodes as one zstd Parquet file with statistics.
pub fn encode(
    schema: &SchemaRef,
    key: &[&str],
    batches: &[RecordBatch],
) -> Result<(Bytes, u64), String> {
    let all = concat_batches(schema, batches).map_err(|e| e.to_string())?;
    let sorted = sort_by(&all, key)?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).map_err(|e| e.to_string())?,
        ))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_created_by(concat!("hspq ", env!("CARGO_PKG_VERSION")).to_string())
        .build();
    let mut buf = Vec::with_capacity(sorted.get_array_memory_size() / 4);
    let mut writer =
        ArrowWriter::try_new(&mut buf, schema.clone(), Some(props)).map_err(|e| e.to_string())?;
    writer.write(&sorted).map_err(|e| e.to_string())?;
    writer.close().map_err(|e| e.to_string())?;
    Ok((Bytes::from(buf), sorted.num_rows() as u64))
}

/// The batch's rows ordered by the `key` columns.
pub fn sort_by(batch: &RecordBatch, key: &[&str]) -> Result<RecordBatch, String> {
    if batch.num_rows() < 2 {
        return Ok(batch.clone());
    }
    let columns: Vec<SortColumn> = key
        .iter()
        .map(|k| {
            batch
                .column_by_name(k)
                .map(|values| SortColumn {
                    values: Arc::clone(values),
                    options: None,
                })
                .ok_or_else(|| format!("key column {k} missing"))
        })
        .collect::<Result<_, _>>()?;
    let indices = lexsort_to_indices(&columns, None).map_err(|e| e.to_string())?;
    take_record_batch(batch, &indices).map_err(|e| e.to_string())
}

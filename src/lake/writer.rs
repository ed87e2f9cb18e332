//! Arrow batches → zstd Parquet files in one partition, sorted by the dataset's key.
//!
//! A partition writer buffers at most `max_rows` rows; past that it sorts and writes a file and
//! starts the next, so memory stays bounded however large a partition is. It keeps each key once
//! per partition (the first version pushed wins; a 128-bit hash per key remembers what was
//! seen), so the lake holds one row per key and the views need not deduplicate. Each file is
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
    seen: std::collections::HashSet<u128>,
    converter: Option<arrow::row::RowConverter>,
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
            seen: std::collections::HashSet::new(),
            converter: None,
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

    /// Adds rows whose key was not pushed before; writes a file when enough are buffered.
    pub async fn push(&mut self, batch: RecordBatch) -> Result<(), LakeError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let batch = self
            .first_versions(batch)
            .map_err(|detail| LakeError::Parquet {
                path: self.partition.dir.clone(),
                detail,
            })?;
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

    /// The rows of `batch` whose key this writer has not seen yet.
    fn first_versions(&mut self, batch: RecordBatch) -> Result<RecordBatch, String> {
        use std::hash::{BuildHasher, Hasher};
        let key = self.partition.dataset.key();
        let columns: Vec<arrow::array::ArrayRef> = key
            .iter()
            .map(|k| {
                batch
                    .column_by_name(k)
                    .cloned()
                    .ok_or_else(|| format!("key column {k} missing"))
            })
            .collect::<Result<_, _>>()?;
        if self.converter.is_none() {
            let fields = columns
                .iter()
                .map(|c| arrow::row::SortField::new(c.data_type().clone()))
                .collect();
            self.converter =
                Some(arrow::row::RowConverter::new(fields).map_err(|e| e.to_string())?);
        }
        let rows = self
            .converter
            .as_ref()
            .expect("set above")
            .convert_columns(&columns)
            .map_err(|e| e.to_string())?;
        // Two differently seeded 64-bit hashes make the 128 bits a collision would need.
        let (a, b) = hashers();
        let keep: arrow::array::BooleanArray = rows
            .iter()
            .map(|row| {
                let mut h1 = a.build_hasher();
                h1.write(row.as_ref());
                let mut h2 = b.build_hasher();
                h2.write(row.as_ref());
                Some(
                    self.seen
                        .insert(((h1.finish() as u128) << 64) | h2.finish() as u128),
                )
            })
            .collect();
        if keep.true_count() == batch.num_rows() {
            return Ok(batch);
        }
        arrow::compute::filter_record_batch(&batch, &keep).map_err(|e| e.to_string())
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
        // Sorting and compressing take tens of milliseconds: off the async threads, so the
        // requests other tasks have started are not held up (the API counts their arrival).
        let encoded = tokio::task::spawn_blocking(move || encode(&schema, key, &batches))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r);
        let (bytes, rows) = encoded.map_err(|detail| LakeError::Parquet {
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

/// Two fixed, different hash keys (fixed so a run behaves the same every time).
fn hashers() -> (
    std::hash::BuildHasherDefault<std::collections::hash_map::DefaultHasher>,
    seeded::Seeded,
) {
    (Default::default(), seeded::Seeded(0x9e37_79b9_7f4a_7c15))
}

mod seeded {
    /// A SipHash with a fixed non-default key, as the second, independent 64-bit hash.
    #[derive(Clone, Copy)]
    pub struct Seeded(pub u64);

    impl std::hash::BuildHasher for Seeded {
        type Hasher = std::collections::hash_map::DefaultHasher;
        fn build_hasher(&self) -> Self::Hasher {
            use std::hash::Hasher;
            let mut h = std::collections::hash_map::DefaultHasher::new();
            h.write_u64(self.0);
            h
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lake::Dataset;
    use arrow::array::AsArray;

    #[tokio::test]
    async fn each_key_is_kept_once_per_partition_first_version_first() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(&dir.path().display().to_string()).unwrap();
        let partition = Partition::report(Dataset::Customers, "mssp");
        let mut w = PartitionWriter::new(&lake, partition, "r").with_max_rows(2);
        let batch = |ids: &[&str], name: &str| {
            #[derive(serde::Serialize)]
            struct Row<'a> {
                report_type: &'a str,
                security_center_id: &'a str,
                company_name: &'a str,
            }
            let rows: Vec<Row> = ids
                .iter()
                .map(|id| Row {
                    report_type: "mssp",
                    security_center_id: id,
                    company_name: name,
                })
                .collect();
            crate::ingest::rows::to_batch(Dataset::Customers, &rows).unwrap()
        };
        w.push(batch(&["A", "B", "A"], "new")).await.unwrap();
        // Across a flush (max 2 rows per file) and in a later batch, repeats are still dropped.
        w.push(batch(&["B", "C"], "old")).await.unwrap();
        let (_, files) = w.finish().await.unwrap();
        let mut names = Vec::new();
        for f in &files {
            let bytes = lake.get(&f.path).await.unwrap().unwrap();
            let reader =
                parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
                    .unwrap()
                    .build()
                    .unwrap();
            for b in reader {
                let b = b.unwrap();
                let ids = b
                    .column_by_name("security_center_id")
                    .unwrap()
                    .as_string::<i32>();
                let n = b.column_by_name("company_name").unwrap().as_string::<i32>();
                for i in 0..b.num_rows() {
                    names.push(format!("{}={}", ids.value(i), n.value(i)));
                }
            }
        }
        names.sort();
        assert_eq!(names, vec!["A=new", "B=new", "C=old"]);
    }
}

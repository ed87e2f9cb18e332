//! Arrow batches → zstd Parquet files in one partition, sorted by the dataset's key.
//!
//! A partition writer buffers at most `max_rows` rows; past that it sorts and writes a file and
//! starts the next, so memory stays bounded however large a partition is. Within a file each
//! key is kept once (the first version pushed wins). Across files, keys are unique when the
//! files' key ranges do not overlap, which the writer checks at the end and reports in
//! [`WrittenFile::unique_keys`]: then the views need not deduplicate (the usual case, as pages
//! arrive in key order), otherwise they fall back to keeping the newest row per key. Each file
//! is published by one create-if-absent PUT under a name never used before (see
//! [`FileNames`]); it joins the lake's manifest only when the run commits the partition.

use std::sync::Arc;

use arrow::array::{BooleanArray, RecordBatch, UInt32Array};
use arrow::compute::{
    concat_batches, filter_record_batch, lexsort_to_indices, take_record_batch, SortColumn,
};
use arrow::datatypes::SchemaRef;
use arrow::row::{RowConverter, SortField};
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use sha2::{Digest, Sha256};

use super::layout::{FileNames, Partition};
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
    /// No key of this file appears in another file of its partition (nor twice in it).
    pub unique_keys: bool,
}

/// Writes one partition's rows into as many files as its size needs.
pub struct PartitionWriter {
    lake: Lake,
    partition: Partition,
    names: FileNames,
    schema: SchemaRef,
    buffered: Vec<RecordBatch>,
    rows: usize,
    max_rows: usize,
    written: Vec<WrittenFile>,
    /// First and last key (row-encoded) of each written file.
    ranges: Vec<(Vec<u8>, Vec<u8>)>,
}

impl PartitionWriter {
    /// A writer for `partition`, naming its files with `names`.
    pub fn new(lake: &Lake, partition: Partition, names: &FileNames) -> PartitionWriter {
        PartitionWriter {
            lake: lake.clone(),
            schema: partition.dataset.schema(),
            partition,
            names: names.clone(),
            buffered: Vec::new(),
            rows: 0,
            max_rows: DEFAULT_MAX_ROWS,
            written: Vec::new(),
            ranges: Vec::new(),
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
        let path = self.names.next(&self.partition);
        let batches = std::mem::take(&mut self.buffered);
        self.rows = 0;
        let schema = self.schema.clone();
        let key = self.partition.dataset.key();
        // Sorting and compressing take tens of milliseconds: see `crate::cpu::heavy`.
        let encoded = crate::cpu::heavy(|| encode(&schema, key, &batches)).map_err(|detail| {
            LakeError::Parquet {
                path: path.clone(),
                detail,
            }
        })?;
        let file = WrittenFile {
            path: path.clone(),
            size: encoded.bytes.len() as u64,
            rows: encoded.rows,
            sha256: format!("{:x}", Sha256::digest(&encoded.bytes)),
            unique_keys: true,
        };
        self.lake.put_file(&path, encoded.bytes).await?;
        self.ranges.push((encoded.first_key, encoded.last_key));
        self.written.push(file);
        Ok(())
    }

    /// Writes what is left and returns every file written (none for an empty partition),
    /// each marked with whether the partition's keys are unique across its files.
    pub async fn finish(mut self) -> Result<(Partition, Vec<WrittenFile>), LakeError> {
        self.flush().await?;
        let mut ranges = self.ranges.clone();
        ranges.sort();
        let disjoint = ranges.windows(2).all(|w| w[0].1 < w[1].0);
        for f in &mut self.written {
            f.unique_keys = disjoint;
        }
        Ok((self.partition, self.written))
    }
}

/// A file's bytes and what the writer needs to know about it.
pub struct Encoded {
    /// The Parquet file.
    pub bytes: Bytes,
    /// Rows in it.
    pub rows: u64,
    /// Its first key, row-encoded (comparable as bytes).
    pub first_key: Vec<u8>,
    /// Its last key, row-encoded.
    pub last_key: Vec<u8>,
}

/// Concatenates, sorts by `key` (ties keep their order), keeps the first row of each key and
/// encodes as one zstd Parquet file with statistics.
pub fn encode(
    schema: &SchemaRef,
    key: &[&str],
    batches: &[RecordBatch],
) -> Result<Encoded, String> {
    let all = concat_batches(schema, batches).map_err(|e| e.to_string())?;
    let sorted = sort_by(&all, key)?;
    let key_columns: Vec<arrow::array::ArrayRef> = key
        .iter()
        .map(|k| {
            sorted
                .column_by_name(k)
                .cloned()
                .ok_or_else(|| format!("key column {k} missing"))
        })
        .collect::<Result<_, _>>()?;
    let converter = RowConverter::new(
        key_columns
            .iter()
            .map(|c| SortField::new(c.data_type().clone()))
            .collect(),
    )
    .map_err(|e| e.to_string())?;
    let keys = converter
        .convert_columns(&key_columns)
        .map_err(|e| e.to_string())?;
    let keep: BooleanArray = (0..keys.num_rows())
        .map(|i| Some(i == 0 || keys.row(i) != keys.row(i - 1)))
        .collect();
    let unique = if keep.true_count() == sorted.num_rows() {
        sorted
    } else {
        filter_record_batch(&sorted, &keep).map_err(|e| e.to_string())?
    };
    let (first_key, last_key) = match keys.num_rows() {
        0 => (Vec::new(), Vec::new()),
        n => (
            keys.row(0).as_ref().to_vec(),
            keys.row(n - 1).as_ref().to_vec(),
        ),
    };
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).map_err(|e| e.to_string())?,
        ))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_created_by(concat!("hspq ", env!("CARGO_PKG_VERSION")).to_string())
        .build();
    let mut buf = Vec::with_capacity(unique.get_array_memory_size() / 4);
    let mut writer =
        ArrowWriter::try_new(&mut buf, schema.clone(), Some(props)).map_err(|e| e.to_string())?;
    writer.write(&unique).map_err(|e| e.to_string())?;
    writer.close().map_err(|e| e.to_string())?;
    Ok(Encoded {
        bytes: Bytes::from(buf),
        rows: unique.num_rows() as u64,
        first_key,
        last_key,
    })
}

/// The batch's rows ordered by the `key` columns; rows with equal keys keep their order.
pub fn sort_by(batch: &RecordBatch, key: &[&str]) -> Result<RecordBatch, String> {
    if batch.num_rows() < 2 {
        return Ok(batch.clone());
    }
    let mut columns: Vec<SortColumn> = key
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
    // The arrival order as the last sort column: lexsort is not stable on its own.
    columns.push(SortColumn {
        values: Arc::new(UInt32Array::from_iter_values(0..batch.num_rows() as u32)),
        options: None,
    });
    let indices = lexsort_to_indices(&columns, None).map_err(|e| e.to_string())?;
    take_record_batch(batch, &indices).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lake::Dataset;
    use arrow::array::AsArray;

    async fn contents(lake: &Lake, files: &[WrittenFile]) -> Vec<String> {
        let mut names = Vec::new();
        for f in files {
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
        names
    }

    fn batch(ids: &[&str], name: &str) -> RecordBatch {
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
    }

    #[tokio::test]
    async fn a_file_keeps_the_first_version_of_each_key_and_disjoint_files_are_unique() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(&dir.path().display().to_string()).unwrap();
        let mut w = PartitionWriter::new(
            &lake,
            Partition::report(Dataset::Customers, "mssp"),
            &FileNames::new(1, "r"),
        )
        .with_max_rows(3);
        w.push(batch(&["B", "A", "B"], "first")).await.unwrap();
        w.push(batch(&["C", "D"], "later")).await.unwrap();
        let (_, files) = w.finish().await.unwrap();
        assert_eq!(files.len(), 2);
        assert!(files.iter().all(|f| f.unique_keys));
        assert_eq!(
            contents(&lake, &files).await,
            vec!["A=first", "B=first", "C=later", "D=later"]
        );
        assert_eq!(files[0].rows, 2);
    }

    #[tokio::test]
    async fn overlapping_files_are_not_promised_unique() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(&dir.path().display().to_string()).unwrap();
        let mut w = PartitionWriter::new(
            &lake,
            Partition::report(Dataset::Customers, "mssp"),
            &FileNames::new(1, "r"),
        )
        .with_max_rows(2);
        w.push(batch(&["A", "B"], "new")).await.unwrap();
        w.push(batch(&["B", "C"], "old")).await.unwrap();
        let (_, files) = w.finish().await.unwrap();
        assert_eq!(files.len(), 2);
        assert!(files.iter().all(|f| !f.unique_keys));
    }
}

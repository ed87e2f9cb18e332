//! Arrow batches → zstd Parquet files in one partition, sorted by the dataset's key, each key
//! once, and the files' key ranges disjoint, so readers never need to deduplicate.
//!
//! A partition writer sorts at most `max_rows` rows in memory; past that it spills them as a
//! sorted run to a local temporary file (Arrow IPC) and starts the next, so memory stays
//! bounded however large a partition is. At the end the runs are merged (k-way, by key) into
//! files of at most [`FILE_ROWS`] rows, cut in key order: their ranges cannot overlap. When a
//! key was pushed more than once, the first version pushed wins (callers push new rows before
//! old ones). Each file is published by one create-if-absent PUT under a name never used
//! before (see [`FileNames`]); it joins the lake's manifest only when the run commits the
//! partition. Spill files never go to the lake's store: only published files count as written.

use std::fs::File;
use std::sync::Arc;

use arrow::array::{BooleanArray, RecordBatch, UInt32Array};
use arrow::compute::{
    concat_batches, filter_record_batch, interleave_record_batch, lexsort_to_indices,
    take_record_batch, SortColumn,
};
use arrow::datatypes::SchemaRef;
use arrow::ipc::reader::FileReader;
use arrow::ipc::writer::FileWriter;
use arrow::row::{OwnedRow, RowConverter, Rows, SortField};
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use sha2::{Digest, Sha256};

use super::layout::{FileNames, Partition};
use super::store::{Lake, LakeError};

/// Rows per row group: large enough for good compression and pruning statistics.
const ROW_GROUP_ROWS: usize = 122_880;

/// Rows sorted in memory per partition before a run is spilled to a local file.
pub const DEFAULT_MAX_ROWS: usize = 100_000;

/// Rows per published file at most: a partition has one file per million rows.
pub const FILE_ROWS: usize = 1_000_000;

/// zstd level of published files: small files for readers and storage.
const ZSTD_LEVEL: i32 = 3;

/// zstd level of staged files, read once by the merge and then deleted: cheaper to write.
const STAGED_ZSTD_LEVEL: i32 = 1;

/// Rows per batch read back from a run and per batch the merge emits.
const MERGE_BATCH: usize = 8_192;

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
    file_rows: usize,
    /// Sorted runs spilled to local disk, in the order their rows were pushed, with their
    /// first and last keys.
    runs: Vec<(File, Option<(OwnedRow, OwnedRow)>)>,
    /// Files go under `_hspq/staging/`, to be merged into the partition later.
    staging: bool,
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
            file_rows: FILE_ROWS,
            runs: Vec::new(),
            staging: false,
        }
    }

    /// Writes the files under `_hspq/staging/` instead of into the partition.
    pub fn staged(mut self) -> PartitionWriter {
        self.staging = true;
        self
    }

    /// Changes how many rows are sorted in memory before a run is spilled.
    pub fn with_max_rows(mut self, max_rows: usize) -> PartitionWriter {
        self.max_rows = max_rows.max(1);
        self
    }

    /// Changes how many rows a published file holds at most.
    pub fn with_file_rows(mut self, file_rows: usize) -> PartitionWriter {
        self.file_rows = file_rows.max(1);
        self
    }

    /// The partition written.
    pub fn partition(&self) -> &Partition {
        &self.partition
    }

    /// Adds rows; spills a sorted run when enough are buffered.
    pub async fn push(&mut self, batch: RecordBatch) -> Result<(), LakeError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.rows += batch.num_rows();
        self.buffered.push(batch);
        if self.rows >= self.max_rows {
            self.spill()?;
        }
        Ok(())
    }

    fn parquet_error(&self, detail: impl std::fmt::Display) -> LakeError {
        LakeError::Parquet {
            path: self.partition.dir.clone(),
            detail: detail.to_string(),
        }
    }

    /// The buffered rows, sorted and each key once.
    fn take_sorted(&mut self) -> Result<SortedRun, LakeError> {
        let batches = std::mem::take(&mut self.buffered);
        self.rows = 0;
        let key = self.partition.dataset.key();
        // Sorting takes tens of milliseconds: see `crate::cpu::heavy`.
        crate::cpu::heavy(|| sort_unique(&self.schema, key, &batches))
            .map_err(|d| self.parquet_error(d))
    }

    fn spill(&mut self) -> Result<(), LakeError> {
        let SortedRun {
            batch: sorted,
            range,
        } = self.take_sorted()?;
        let run = crate::cpu::heavy(|| -> Result<File, EncodeError> {
            let file = tempfile::tempfile()?;
            let mut w = FileWriter::try_new(&file, &self.schema)?;
            let mut offset = 0;
            while offset < sorted.num_rows() {
                let len = MERGE_BATCH.min(sorted.num_rows() - offset);
                w.write(&sorted.slice(offset, len))?;
                offset += len;
            }
            w.finish()?;
            Ok(file)
        })
        .map_err(|d| self.parquet_error(format!("spilling sorted rows: {d}")))?;
        self.runs.push((run, range));
        Ok(())
    }

    /// Writes what is left and returns every file written (none for an empty partition).
    pub async fn finish(mut self) -> Result<(Partition, Vec<WrittenFile>), LakeError> {
        let mut written = Vec::new();
        if self.runs.is_empty() {
            let sorted = self.take_sorted()?.batch;
            let mut offset = 0;
            while offset < sorted.num_rows() {
                let len = self.file_rows.min(sorted.num_rows() - offset);
                let part = sorted.slice(offset, len);
                let level = self.zstd_level();
                let bytes = crate::cpu::heavy(|| parquet_bytes(&self.schema, &[part], level))
                    .map_err(|d| self.parquet_error(d))?;
                written.push(self.publish(bytes, len as u64).await?);
                offset += len;
            }
            return Ok((self.partition, written));
        }
        if self.rows > 0 {
            self.spill()?;
        }
        let key = self.partition.dataset.key();
        let runs = std::mem::take(&mut self.runs);
        // Runs that follow one another (rows pushed in key order) need no merge, only reading
        // one after the other.
        let in_order = runs.windows(2).all(|w| match (&w[0].1, &w[1].1) {
            (Some((_, last)), Some((first, _))) => last < first,
            _ => true,
        });
        let files = runs.into_iter().map(|(f, _)| f).collect();
        let mut merge = crate::cpu::heavy(|| Merge::new(&self.schema, key, files, in_order))
            .map_err(|d| self.parquet_error(d))?;
        loop {
            let file_rows = self.file_rows;
            let level = self.zstd_level();
            let next = crate::cpu::heavy(|| merge.next_file(&self.schema, file_rows, level))
                .map_err(|d| self.parquet_error(d))?;
            let Some((bytes, rows)) = next else { break };
            written.push(self.publish(bytes, rows).await?);
        }
        Ok((self.partition, written))
    }

    fn zstd_level(&self) -> i32 {
        if self.staging {
            STAGED_ZSTD_LEVEL
        } else {
            ZSTD_LEVEL
        }
    }

    async fn publish(&self, bytes: Bytes, rows: u64) -> Result<WrittenFile, LakeError> {
        let path = if self.staging {
            self.names.next_staged(&self.partition)
        } else {
            self.names.next(&self.partition)
        };
        let file = WrittenFile {
            path: path.clone(),
            size: bytes.len() as u64,
            rows,
            sha256: Sha256::digest(&bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
            // Cut from one sorted, deduplicated stream: no key in two files.
            unique_keys: true,
        };
        self.lake.put_file(&path, bytes).await?;
        Ok(file)
    }
}

/// A k-way merge of sorted runs, each key once (the earliest run wins a tie).
struct Merge {
    converter: RowConverter,
    key: &'static [&'static str],
    runs: Vec<Cursor>,
    /// The key last emitted, to drop later versions of it.
    last: Option<arrow::row::OwnedRow>,
    /// Rows merged but not yet written (what a file's row limit cut off).
    pending: Option<RecordBatch>,
    /// The runs' key ranges follow one another: read them in order, compare nothing.
    in_order: bool,
}

/// A run being read: its current batch and that batch's keys.
struct Cursor {
    reader: FileReader<File>,
    batch: Option<(RecordBatch, Rows)>,
    pos: usize,
}

impl Cursor {
    /// Moves to the run's next batch (`None` at its end).
    fn advance(&mut self, converter: &RowConverter, key: &[&str]) -> Result<(), EncodeError> {
        self.pos = 0;
        self.batch = match self.reader.next() {
            None => None,
            Some(batch) => {
                let batch = batch?;
                let columns: Vec<_> = key
                    .iter()
                    .map(|k| {
                        batch
                            .column_by_name(k)
                            .cloned()
                            .ok_or_else(|| EncodeError::NoKey(k.to_string()))
                    })
                    .collect::<Result<_, _>>()?;
                let rows = converter.convert_columns(&columns)?;
                Some((batch, rows))
            }
        };
        Ok(())
    }
}

impl Merge {
    fn new(
        schema: &SchemaRef,
        key: &'static [&'static str],
        runs: Vec<File>,
        in_order: bool,
    ) -> Result<Merge, EncodeError> {
        let converter = key_converter(schema, key)?;
        let mut cursors = Vec::new();
        for mut file in runs {
            use std::io::Seek;
            file.rewind()?;
            let mut cursor = Cursor {
                reader: FileReader::try_new(file, None)?,
                batch: None,
                pos: 0,
            };
            cursor.advance(&converter, key)?;
            cursors.push(cursor);
        }
        Ok(Merge {
            converter,
            key,
            runs: cursors,
            last: None,
            pending: None,
            in_order,
        })
    }

    /// The next batch of merged rows, or `None` at the end.
    fn next_batch(&mut self) -> Result<Option<RecordBatch>, EncodeError> {
        if let Some(pending) = self.pending.take() {
            return Ok(Some(pending));
        }
        if self.in_order {
            // No keys needed: each run's batches in turn.
            for c in &mut self.runs {
                if let Some((batch, _)) = c.batch.take() {
                    return Ok(Some(batch.slice(c.pos, batch.num_rows() - c.pos)));
                }
                if let Some(batch) = c.reader.next() {
                    return batch.map(Some).map_err(EncodeError::from);
                }
            }
            return Ok(None);
        }
        let Merge {
            converter,
            key,
            runs,
            last,
            ..
        } = self;
        let mut batches: Vec<RecordBatch> = Vec::new();
        // Each row emitted as (index into `batches`, row); which entry holds each run's batch.
        let mut picks: Vec<(usize, usize)> = Vec::with_capacity(MERGE_BATCH);
        let mut batch_of_run: Vec<Option<usize>> = vec![None; runs.len()];
        while picks.len() < MERGE_BATCH {
            // The smallest current key; on a tie the earliest run (pushed first) wins.
            let mut best: Option<(usize, arrow::row::Row<'_>)> = None;
            for (i, c) in runs.iter().enumerate() {
                if let Some((_, rows)) = &c.batch {
                    let row = rows.row(c.pos);
                    if best.as_ref().is_none_or(|(_, b)| row < *b) {
                        best = Some((i, row));
                    }
                }
            }
            let Some((i, row)) = best else { break };
            if last.as_ref().is_none_or(|l| l.row() != row) {
                *last = Some(row.owned());
                let b = *batch_of_run[i].get_or_insert_with(|| {
                    let (batch, _) = runs[i].batch.as_ref().expect("the run has a batch");
                    batches.push(batch.clone());
                    batches.len() - 1
                });
                picks.push((b, runs[i].pos));
            }
            let c = &mut runs[i];
            c.pos += 1;
            if c.batch.as_ref().is_some_and(|(b, _)| c.pos >= b.num_rows()) {
                c.advance(converter, key)?;
                batch_of_run[i] = None;
            }
        }
        if picks.is_empty() {
            return Ok(None);
        }
        let refs: Vec<&RecordBatch> = batches.iter().collect();
        interleave_record_batch(&refs, &picks)
            .map(Some)
            .map_err(EncodeError::from)
    }

    /// The next file's bytes and rows (at most `file_rows`), or `None` at the end.
    fn next_file(
        &mut self,
        schema: &SchemaRef,
        file_rows: usize,
        level: i32,
    ) -> Result<Option<(Bytes, u64)>, EncodeError> {
        let mut out: Option<ArrowWriter<Vec<u8>>> = None;
        let mut rows = 0usize;
        while rows < file_rows {
            let Some(batch) = self.next_batch()? else {
                break;
            };
            let take = batch.num_rows().min(file_rows - rows);
            if take < batch.num_rows() {
                self.pending = Some(batch.slice(take, batch.num_rows() - take));
            }
            let w = match &mut out {
                Some(w) => w,
                None => out.insert(parquet_writer(schema, Vec::new(), level)?),
            };
            w.write(&batch.slice(0, take))?;
            rows += take;
        }
        match out {
            None => Ok(None),
            Some(w) => {
                let bytes = w.into_inner()?;
                Ok(Some((Bytes::from(bytes), rows as u64)))
            }
        }
    }
}

/// Why rows could not be sorted, spilled, merged or encoded as Parquet.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// Arrow refused (a batch of another schema, a sort).
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
    /// The Parquet writer refused.
    #[error(transparent)]
    Parquet(#[from] parquet::errors::ParquetError),
    /// A spill file could not be made or read.
    #[error("a temporary file: {0}")]
    Io(#[from] std::io::Error),
    /// A batch lacks a column of the dataset's key.
    #[error("key column {0} missing")]
    NoKey(String),
}

/// A converter of `key`'s columns into rows that compare as the key does.
fn key_converter(schema: &SchemaRef, key: &[&str]) -> Result<RowConverter, EncodeError> {
    let fields = key
        .iter()
        .map(|k| {
            schema
                .field_with_name(k)
                .map(|f| SortField::new(f.data_type().clone()))
                .map_err(EncodeError::from)
        })
        .collect::<Result<Vec<_>, _>>()?;
    RowConverter::new(fields).map_err(EncodeError::from)
}

fn parquet_writer(
    schema: &SchemaRef,
    buf: Vec<u8>,
    level: i32,
) -> Result<ArrowWriter<Vec<u8>>, EncodeError> {
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(level)?))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_created_by(concat!("hspq ", env!("CARGO_PKG_VERSION")).to_string())
        .build();
    ArrowWriter::try_new(buf, schema.clone(), Some(props)).map_err(EncodeError::from)
}

/// One zstd Parquet file of `batches`, with page statistics.
pub fn parquet_bytes(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    level: i32,
) -> Result<Bytes, EncodeError> {
    let size: usize = batches.iter().map(|b| b.get_array_memory_size()).sum();
    let mut w = parquet_writer(schema, Vec::with_capacity(size / 4), level)?;
    for b in batches {
        w.write(b)?;
    }
    Ok(Bytes::from(w.into_inner()?))
}

/// A batch sorted by its key, each key once, with its first and last key.
pub struct SortedRun {
    /// The rows.
    pub batch: RecordBatch,
    /// First and last key, row-encoded (comparable across runs of one partition); `None`
    /// when there are no rows.
    pub range: Option<(OwnedRow, OwnedRow)>,
}

/// Concatenates, sorts by `key` (ties keep their order) and keeps the first row of each key.
/// Rows that already ascend strictly (pages that arrive in key order) are not sorted again.
pub fn sort_unique(
    schema: &SchemaRef,
    key: &[&str],
    batches: &[RecordBatch],
) -> Result<SortedRun, EncodeError> {
    let converter = key_converter(schema, key)?;
    let keys_of = |batch: &RecordBatch| -> Result<Rows, EncodeError> {
        let columns: Vec<arrow::array::ArrayRef> = key
            .iter()
            .map(|k| {
                batch
                    .column_by_name(k)
                    .cloned()
                    .ok_or_else(|| EncodeError::NoKey(k.to_string()))
            })
            .collect::<Result<_, _>>()?;
        converter
            .convert_columns(&columns)
            .map_err(EncodeError::from)
    };
    let all = concat_batches(schema, batches)?;
    let keys = keys_of(&all)?;
    let ascending = (1..keys.num_rows()).all(|i| keys.row(i - 1) < keys.row(i));
    let (batch, keys) = if ascending {
        (all, keys)
    } else {
        let sorted = sort_by(&all, key)?;
        let keys = keys_of(&sorted)?;
        let keep: BooleanArray = (0..keys.num_rows())
            .map(|i| Some(i == 0 || keys.row(i) != keys.row(i - 1)))
            .collect();
        // Dropping repeats leaves the first and last keys as they are: no new keys needed.
        if keep.true_count() == sorted.num_rows() {
            (sorted, keys)
        } else {
            let unique = filter_record_batch(&sorted, &keep)?;
            (unique, keys)
        }
    };
    let range = match keys.num_rows() {
        0 => None,
        n => Some((keys.row(0).owned(), keys.row(n - 1).owned())),
    };
    Ok(SortedRun { batch, range })
}

/// The batch's rows ordered by the `key` columns; rows with equal keys keep their order.
pub fn sort_by(batch: &RecordBatch, key: &[&str]) -> Result<RecordBatch, EncodeError> {
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
                .ok_or_else(|| EncodeError::NoKey(k.to_string()))
        })
        .collect::<Result<_, _>>()?;
    // The arrival order as the last sort column: lexsort is not stable on its own.
    columns.push(SortColumn {
        values: Arc::new(UInt32Array::from_iter_values(0..batch.num_rows() as u32)),
        options: None,
    });
    let indices = lexsort_to_indices(&columns, None)?;
    take_record_batch(batch, &indices).map_err(EncodeError::from)
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
        Dataset::Customers.batch(&rows).unwrap()
    }

    fn customers_writer(lake: &Lake, run: &str) -> PartitionWriter {
        PartitionWriter::new(
            lake,
            Partition::report(Dataset::Customers, "mssp"),
            &FileNames::new(1, run),
        )
    }

    #[tokio::test]
    async fn a_partition_keeps_the_first_version_of_each_key_in_one_sorted_file() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(&dir.path().into()).unwrap();
        let mut w = customers_writer(&lake, "r").with_max_rows(3);
        w.push(batch(&["B", "A", "B"], "first")).await.unwrap();
        w.push(batch(&["C", "D"], "later")).await.unwrap();
        let (_, files) = w.finish().await.unwrap();
        assert_eq!(files.len(), 1, "two spilled runs, one file");
        assert!(files.iter().all(|f| f.unique_keys));
        assert_eq!(
            contents(&lake, &files).await,
            vec!["A=first", "B=first", "C=later", "D=later"]
        );
        assert_eq!(files[0].rows, 4);
    }

    /// First and last `security_center_id` of each file.
    async fn ranges(lake: &Lake, files: &[WrittenFile]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for f in files {
            let rows = contents(lake, std::slice::from_ref(f)).await;
            let id = |s: &String| s.split('=').next().unwrap().to_string();
            out.push((id(&rows[0]), id(rows.last().unwrap())));
        }
        out
    }

    #[tokio::test]
    async fn spilled_runs_merge_into_disjoint_files_and_the_first_version_wins() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(&dir.path().into()).unwrap();
        let mut w = customers_writer(&lake, "r")
            .with_max_rows(3)
            .with_file_rows(2);
        // Three runs whose key ranges overlap, as out-of-order pages and old rows give them.
        w.push(batch(&["E", "B", "C"], "new")).await.unwrap();
        w.push(batch(&["A", "B", "F"], "old")).await.unwrap();
        w.push(batch(&["D", "C", "A"], "older")).await.unwrap();
        let (_, files) = w.finish().await.unwrap();
        assert!(files.iter().all(|f| f.unique_keys));
        assert_eq!(
            contents(&lake, &files).await,
            vec!["A=old", "B=new", "C=new", "D=older", "E=new", "F=old"]
        );
        assert_eq!(
            files.iter().map(|f| f.rows).collect::<Vec<_>>(),
            vec![2, 2, 2]
        );
        let r = ranges(&lake, &files).await;
        assert!(r.windows(2).all(|w| w[0].1 < w[1].0), "{r:?}");
    }

    #[tokio::test]
    async fn a_large_partition_merges_many_runs_in_key_order() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(&dir.path().into()).unwrap();
        let mut w = customers_writer(&lake, "r")
            .with_max_rows(1_000)
            .with_file_rows(25_000);
        // 60,000 ids pushed in a scrambled order, each twice (the second push loses).
        let ids: Vec<String> = (0..60_000u32)
            .map(|i| format!("SC{:06}", (i * 7_919) % 60_000))
            .collect();
        for round in ["first", "second"] {
            for chunk in ids.chunks(700) {
                let refs: Vec<&str> = chunk.iter().map(|s| s.as_str()).collect();
                w.push(batch(&refs, round)).await.unwrap();
            }
        }
        let (_, files) = w.finish().await.unwrap();
        assert_eq!(files.iter().map(|f| f.rows).sum::<u64>(), 60_000);
        assert_eq!(files.len(), 3);
        let rows = contents(&lake, &files).await;
        let mut want: Vec<String> = ids.iter().map(|i| format!("{i}=first")).collect();
        want.sort();
        assert_eq!(rows, want);
    }

    #[tokio::test]
    async fn rows_pushed_in_key_order_are_written_without_sorting_and_stay_whole() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(&dir.path().into()).unwrap();
        let mut w = customers_writer(&lake, "r")
            .with_max_rows(1_000)
            .with_file_rows(4_000);
        let ids: Vec<String> = (0..10_000u32).map(|i| format!("SC{i:06}")).collect();
        for chunk in ids.chunks(300) {
            let refs: Vec<&str> = chunk.iter().map(|s| s.as_str()).collect();
            w.push(batch(&refs, "x")).await.unwrap();
        }
        let (_, files) = w.finish().await.unwrap();
        assert_eq!(
            files.iter().map(|f| f.rows).collect::<Vec<_>>(),
            vec![4_000, 4_000, 2_000]
        );
        let want: Vec<String> = ids.iter().map(|i| format!("{i}=x")).collect();
        assert_eq!(contents(&lake, &files).await, want);
        // Runs that follow one another but overlap at one key still go through the merge.
        let mut w = customers_writer(&lake, "s").with_max_rows(2);
        w.push(batch(&["A", "B"], "first")).await.unwrap();
        w.push(batch(&["B", "C"], "second")).await.unwrap();
        let (_, files) = w.finish().await.unwrap();
        assert_eq!(
            contents(&lake, &files).await,
            vec!["A=first", "B=first", "C=second"]
        );
    }
}

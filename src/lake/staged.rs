//! Customers' engagement and churn are fetched in chunks, each staged under `_hspq/staging/`
//! and committed on its own (a killed run keeps the chunks it finished); at the end of a run
//! they are merged into the live month partitions here, each partition rewritten once: the old
//! rows outside every re-fetched (customer, date range), and each chunk's rows outside the
//! ranges of the chunks staged after it. Ingest decides what to fetch; this is the lake's part.

use std::collections::BTreeSet;

use arrow::array::{AsArray, BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use arrow::datatypes::Date32Type;
use chrono::{Datelike, NaiveDate, Utc};

use super::layout::month_of;
use super::{
    Dataset, Lake, LakeError, LakeWriter, Partition, PartitionWriter, StagedChunk, WrittenFile,
};

/// Merges the staged chunks of `report_type` and commits the result as `run_id`; `starting`
/// hears how many chunks there are first (none: nothing happens). Returns what it wrote.
pub async fn merge(
    lake: &Lake,
    writer: &LakeWriter,
    report_type: &str,
    run_id: &str,
    starting: impl FnOnce(usize),
) -> Result<Vec<(Partition, Vec<WrittenFile>)>, LakeError> {
    let state = writer.snapshot().await;
    let chunks: Vec<&StagedChunk> = state
        .staged
        .iter()
        .filter(|c| c.report_type == report_type)
        .collect();
    if chunks.is_empty() {
        return Ok(Vec::new());
    }
    starting(chunks.len());
    let mut months: BTreeSet<String> = BTreeSet::new();
    for (from, to) in chunks.iter().flat_map(|c| c.windows.values()) {
        let mut d = NaiveDate::from_ymd_opt(from.year(), from.month(), 1).expect("valid");
        while d <= *to {
            months.insert(month_of(d));
            d = d + chrono::Months::new(1);
        }
    }
    let refetched = Refetched::of(&chunks);
    let mut written = Vec::new();
    for dataset in [Dataset::Engagement, Dataset::Churn] {
        for month in &months {
            let partition = Partition::month(dataset, report_type, month);
            let mut files = PartitionWriter::new(lake, partition.clone(), writer.names());
            for (k, chunk) in chunks.iter().enumerate() {
                for path in chunk.files.get(&partition.dir).into_iter().flatten() {
                    push_file(lake, path, &mut files, &refetched, Some(k)).await?;
                }
            }
            for path in state.files_in(&partition) {
                push_file(lake, &path, &mut files, &refetched, None).await?;
            }
            written.push(files.finish().await?);
        }
    }
    let merged: Vec<String> = chunks
        .iter()
        .flat_map(|c| c.files.values().flatten().cloned())
        .collect();
    writer
        .commit(|m| {
            for (partition, files) in &written {
                m.replace(partition, files, run_id);
            }
            m.staged.retain(|c| c.report_type != report_type);
            let now = Utc::now();
            for path in merged {
                m.dead.insert(path, now);
            }
        })
        .await?;
    Ok(written)
}

/// A customer's re-fetched ranges: `(chunk index, from, to)`.
type Ranges = Vec<(usize, NaiveDate, NaiveDate)>;

/// The date ranges each staged chunk re-fetched, by customer.
struct Refetched(std::collections::HashMap<String, Ranges>);

impl Refetched {
    fn of(chunks: &[&StagedChunk]) -> Refetched {
        let mut map: std::collections::HashMap<String, Ranges> = std::collections::HashMap::new();
        for (j, chunk) in chunks.iter().enumerate() {
            for (id, (from, to)) in &chunk.windows {
                map.entry(id.clone()).or_default().push((j, *from, *to));
            }
        }
        Refetched(map)
    }
}

/// Pushes the rows of the lake file `path` into `writer`, batch by batch, without those a
/// chunk newer than `source` re-fetched (`source`: the staged chunk the file belongs to;
/// `None` for a live file, older than every chunk).
async fn push_file(
    lake: &Lake,
    path: &str,
    writer: &mut PartitionWriter,
    refetched: &Refetched,
    source: Option<usize>,
) -> Result<(), LakeError> {
    for batch in super::read::batches(lake, path).await? {
        writer
            .push(drop_refetched(&batch?, refetched, source))
            .await?;
    }
    Ok(())
}

/// The rows of `batch` outside every re-fetched (customer, date range).
fn drop_refetched(
    batch: &RecordBatch,
    refetched: &Refetched,
    source: Option<usize>,
) -> RecordBatch {
    let ids = batch
        .column_by_name("security_center_id")
        .expect("key column")
        .as_string::<i32>();
    let dates = batch
        .column_by_name("date")
        .expect("key column")
        .as_primitive::<Date32Type>();
    // Rows come sorted by customer: look each customer up once, not once per row.
    let mut current: Option<(&str, Option<&Ranges>)> = None;
    let mask: BooleanArray = (0..batch.num_rows())
        .map(|i| {
            let id = ids.value(i);
            let ranges = match current {
                Some((c, ranges)) if c == id => ranges,
                _ => {
                    let ranges = refetched.0.get(id);
                    current = Some((id, ranges));
                    ranges
                }
            };
            let dropped = ranges.is_some_and(|ranges| {
                let date = Date32Type::to_naive_date_opt(dates.value(i));
                ranges.iter().any(|(j, from, to)| {
                    source.is_none_or(|k| *j > k) && date.is_some_and(|d| *from <= d && d <= *to)
                })
            });
            Some(!dropped)
        })
        .collect();
    if mask.true_count() == batch.num_rows() {
        return batch.clone();
    }
    filter_record_batch(batch, &mask).expect("mask has the batch's length")
}

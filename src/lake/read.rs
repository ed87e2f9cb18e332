//! Reading a file the manifest lists back into Arrow batches (the staged merge rewrites
//! partitions from them; a run reads its own earlier rows).

use arrow::array::RecordBatch;

use super::{Lake, LakeError};

/// The batches of a lake file the manifest lists, read one at a time.
pub async fn batches(
    lake: &Lake,
    path: &str,
) -> Result<impl Iterator<Item = Result<RecordBatch, LakeError>>, LakeError> {
    let location = format!("{}/{path}", lake.location());
    let corrupt = move |detail: String| LakeError::Corrupt {
        path: location.clone(),
        detail,
    };
    let bytes = lake
        .get(path)
        .await?
        .ok_or_else(|| corrupt("listed in the manifest but missing".into()))?;
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
        .and_then(|b| b.with_batch_size(8_192).build())
        .map_err(|e| corrupt(e.to_string()))?;
    Ok(reader.map(move |b| b.map_err(|e| corrupt(e.to_string()))))
}

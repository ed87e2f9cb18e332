//! The build links the prebuilt libduckdb 1.5.6 and arrow-rs 58 interoperates with it: a zstd
//! Parquet file written by the `parquet` crate in a Hive layout is read back by DuckDB, and
//! DuckDB's results arrive as arrow 58 record batches without conversion.

use std::sync::Arc;

use arrow::array::{Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

#[test]
fn duckdb_reads_parquet_written_by_arrow_rs() {
    let dir = tempfile::tempdir().unwrap();
    let part = dir
        .path()
        .join("billing/report_type=mssp/year=2026/period=02");
    std::fs::create_dir_all(&part).unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("security_center_id", DataType::Utf8, false),
        Field::new("billing_value", DataType::Int64, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(vec![
                "SE-ARN1001",
                "SE-ARN1002",
                "SE-ÅÄÖ",
            ])),
            Arc::new(Int64Array::from(vec![Some(142), None, Some(7)])),
        ],
    )
    .unwrap();
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    let file = std::fs::File::create(part.join("part-0.parquet")).unwrap();
    let mut writer = ArrowWriter::try_new(file, schema, Some(props)).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();

    let conn = duckdb::Connection::open_in_memory().unwrap();
    let version: String = conn
        .query_row("select version()", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, "v1.5.6");
    let glob = format!("{}/billing/**/*.parquet", dir.path().display());
    let sql = format!(
        "select security_center_id, billing_value, year, period, report_type
         from read_parquet('{glob}', hive_partitioning = true) order by security_center_id"
    );
    let mut stmt = conn.prepare(&sql).unwrap();
    let batches: Vec<RecordBatch> = stmt.query_arrow([]).unwrap().collect();
    let out = &batches[0];
    assert_eq!(out.num_rows(), 3);
    let values = out.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
    assert_eq!(
        (values.value(0), values.is_null(1), values.value(2)),
        (142, true, 7)
    );
    assert_eq!(
        out.schema().field(2).data_type(),
        &DataType::Int64,
        "year= widens to BIGINT"
    );
    let compression: String = conn
        .query_row(
            &format!("select distinct compression from parquet_metadata('{glob}')"),
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(compression, "ZSTD");
}

//! DuckDB's Arrow results as a PostgreSQL client reads them: a PostgreSQL type per column and
//! every value in PostgreSQL's text format (`t`/`f`, `2026-01-31 12:00:00+00`, `{a,"b c"}`, JSON
//! for structs and maps), so drivers parse them as they would PostgreSQL's own.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use pgwire::api::Type;

/// The PostgreSQL type a column of `t` is sent as.
pub fn pg_type(t: &DataType) -> Type {
    match t {
        DataType::Boolean => Type::BOOL,
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => Type::INT2,
        DataType::Int32 | DataType::UInt16 => Type::INT4,
        DataType::Int64 | DataType::UInt32 => Type::INT8,
        // HUGEINT (a sum of BIGINTs) arrives as a 38-digit decimal.
        DataType::UInt64 | DataType::Decimal128(..) | DataType::Decimal256(..) => Type::NUMERIC,
        DataType::Float16 | DataType::Float32 => Type::FLOAT4,
        DataType::Float64 => Type::FLOAT8,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Type::VARCHAR,
        DataType::Date32 | DataType::Date64 => Type::DATE,
        DataType::Time32(_) | DataType::Time64(_) => Type::TIME,
        DataType::Timestamp(_, Some(_)) => Type::TIMESTAMPTZ,
        DataType::Timestamp(_, None) => Type::TIMESTAMP,
        DataType::Interval(_) | DataType::Duration(_) => Type::INTERVAL,
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => Type::BYTEA,
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            match pg_type(f.data_type()) {
                Type::VARCHAR | Type::TEXT => Type::TEXT_ARRAY,
                Type::INT2 => Type::INT2_ARRAY,
                Type::INT4 => Type::INT4_ARRAY,
                Type::INT8 => Type::INT8_ARRAY,
                Type::FLOAT4 => Type::FLOAT4_ARRAY,
                Type::FLOAT8 => Type::FLOAT8_ARRAY,
                Type::BOOL => Type::BOOL_ARRAY,
                Type::DATE => Type::DATE_ARRAY,
                Type::NUMERIC => Type::NUMERIC_ARRAY,
                Type::TIMESTAMPTZ => Type::TIMESTAMPTZ_ARRAY,
                _ => Type::JSON,
            }
        }
        DataType::Struct(_) | DataType::Map(..) => Type::JSON,
        _ => Type::TEXT,
    }
}

/// Every value of a column in PostgreSQL's text format; `None` for NULL.
pub fn texts(array: &ArrayRef) -> Result<Vec<Option<String>>, ArrowError> {
    let n = array.len();
    let t = array.data_type();
    let mut out = Vec::with_capacity(n);
    match t {
        DataType::Boolean => {
            let a = array.as_boolean();
            for i in 0..n {
                out.push(
                    a.is_valid(i)
                        .then(|| if a.value(i) { "t" } else { "f" }.to_string()),
                );
            }
        }
        DataType::Float16 | DataType::Float32 | DataType::Float64 => {
            let a = cast(array, &DataType::Float64)?;
            let a = a.as_primitive::<arrow::datatypes::Float64Type>();
            for i in 0..n {
                out.push(a.is_valid(i).then(|| float(a.value(i))));
            }
        }
        DataType::Timestamp(_, zone) => {
            let micros = cast(array, &DataType::Timestamp(TimeUnit::Microsecond, None))?;
            let a = micros.as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
            for i in 0..n {
                out.push(a.is_valid(i).then(|| {
                    let at = chrono::DateTime::from_timestamp_micros(a.value(i))
                        .map(|d| d.naive_utc())
                        .unwrap_or_default();
                    let text = at.format("%Y-%m-%d %H:%M:%S%.f").to_string();
                    if zone.is_some() {
                        format!("{text}+00")
                    } else {
                        text
                    }
                }));
            }
        }
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..)
            if pg_type(t) != Type::JSON =>
        {
            for i in 0..n {
                if array.is_null(i) {
                    out.push(None);
                    continue;
                }
                let items = match t {
                    DataType::List(_) => array.as_list::<i32>().value(i),
                    DataType::LargeList(_) => array.as_list::<i64>().value(i),
                    _ => array.as_fixed_size_list().value(i),
                };
                let items: Vec<String> = texts(&items)?
                    .into_iter()
                    .map(|v| v.map_or("NULL".to_string(), |v| array_item(&v)))
                    .collect();
                out.push(Some(format!("{{{}}}", items.join(","))));
            }
        }
        _ if pg_type(t) == Type::JSON => {
            // One JSON object per row, {"v": ...}; the value is what goes out.
            let batch = RecordBatch::try_new(
                std::sync::Arc::new(Schema::new(vec![Field::new("v", t.clone(), true)])),
                vec![array.clone()],
            )?;
            let mut writer = arrow::json::LineDelimitedWriter::new(Vec::new());
            writer.write(&batch)?;
            writer.finish()?;
            let lines = String::from_utf8(writer.into_inner()).unwrap_or_default();
            for (i, line) in lines.lines().enumerate() {
                let value: serde_json::Value =
                    serde_json::from_str(line).unwrap_or(serde_json::Value::Null);
                out.push(if array.is_null(i) {
                    None
                } else {
                    Some(value.get("v").cloned().unwrap_or_default().to_string())
                });
            }
        }
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => {
            let a = cast(array, &DataType::LargeBinary)?;
            let a = a.as_binary::<i64>();
            for i in 0..n {
                out.push(a.is_valid(i).then(|| {
                    let hex: String = a.value(i).iter().map(|b| format!("{b:02x}")).collect();
                    format!("\\x{hex}")
                }));
            }
        }
        _ => {
            let options = FormatOptions::default();
            let formatter = ArrayFormatter::try_new(array.as_ref(), &options)?;
            for i in 0..n {
                out.push(array.is_valid(i).then(|| formatter.value(i).to_string()));
            }
        }
    }
    Ok(out)
}

/// PostgreSQL's spelling of a double.
fn float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "Infinity".into()
    } else if v == f64::NEG_INFINITY {
        "-Infinity".into()
    } else {
        v.to_string()
    }
}

/// An array element, quoted when PostgreSQL's array syntax needs it.
fn array_item(v: &str) -> String {
    let plain = !v.is_empty()
        && !v.eq_ignore_ascii_case("null")
        && !v
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '{' | '}' | ',' | '"' | '\\'));
    if plain {
        v.to_string()
    } else {
        format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow::array::{BooleanArray, Float64Array, ListBuilder, StringBuilder};

    #[test]
    fn values_are_written_as_postgresql_writes_them() {
        let b: ArrayRef = Arc::new(BooleanArray::from(vec![Some(true), None, Some(false)]));
        assert_eq!(
            texts(&b).unwrap(),
            vec![Some("t".into()), None, Some("f".into())]
        );
        let f: ArrayRef = Arc::new(Float64Array::from(vec![1.5, f64::NAN, f64::INFINITY]));
        assert_eq!(
            texts(&f).unwrap(),
            vec![
                Some("1.5".into()),
                Some("NaN".into()),
                Some("Infinity".into())
            ]
        );
        let mut list = ListBuilder::new(StringBuilder::new());
        list.values().append_value("SNS");
        list.values().append_value("a, \"b\"");
        list.values().append_null();
        list.append(true);
        list.append(false);
        let list: ArrayRef = Arc::new(list.finish());
        assert_eq!(pg_type(list.data_type()), Type::TEXT_ARRAY);
        assert_eq!(
            texts(&list).unwrap(),
            vec![Some(r#"{SNS,"a, \"b\"",NULL}"#.into()), None]
        );
    }
}

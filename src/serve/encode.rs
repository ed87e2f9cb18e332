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
        DataType::Int64 => Type::INT8,
        // PostgreSQL's oid: the catalog's type oids (pg_attribute.atttypid, `::oid` casts).
        DataType::UInt32 => Type::OID,
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
                Type::OID => Type::OID_ARRAY,
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
                    if let Some(infinite) = infinity(a.value(i), i64::MAX) {
                        return infinite.to_string();
                    }
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
        DataType::Interval(_) | DataType::Duration(_) => {
            for v in binaries(array)? {
                out.push(v.map(|b| {
                    let int = |r: std::ops::Range<usize>| {
                        b[r].iter().fold(0i64, |acc, x| (acc << 8) | i64::from(*x))
                    };
                    let micros = int(0..8);
                    let days = int(8..12) as i32;
                    let months = int(12..16) as i32;
                    interval_text(micros, days, months)
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
        DataType::Date32 | DataType::Date64 => {
            let a = cast(array, &DataType::Date32)?;
            let a = a.as_primitive::<arrow::datatypes::Date32Type>();
            for i in 0..n {
                out.push(a.is_valid(i).then(|| {
                    infinity(i64::from(a.value(i)), i64::from(i32::MAX)).map_or_else(
                        || {
                            chrono::NaiveDate::from_num_days_from_ce_opt(
                                a.value(i).saturating_add(719_163),
                            )
                            // Beyond chrono's years: the day count, which at least says so.
                            .map_or_else(
                                || format!("{} days after 1970-01-01", a.value(i)),
                                |d| d.format("%Y-%m-%d").to_string(),
                            )
                        },
                        str::to_string,
                    )
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

/// DuckDB's infinities (the largest value of the type, and its negation), as PostgreSQL spells
/// them.
fn infinity(value: i64, max: i64) -> Option<&'static str> {
    if value == max {
        Some("infinity")
    } else if value == -max || value == i64::MIN {
        Some("-infinity")
    } else {
        None
    }
}

/// Days and microseconds from 1970 to PostgreSQL's epoch, 2000-01-01.
const PG_EPOCH_DAYS: i64 = 10_957;
const PG_EPOCH_MICROS: i64 = PG_EPOCH_DAYS * 86_400_000_000;

/// Every value of a column in PostgreSQL's binary format (what a driver asks for when it
/// knows the type, as pgx and pgjdbc do); `None` for NULL.
pub fn binaries(array: &ArrayRef) -> Result<Vec<Option<Vec<u8>>>, ArrowError> {
    use arrow::datatypes::{
        Date32Type, DurationMicrosecondType, Float32Type, Float64Type, Int16Type, Int32Type,
        Int64Type, IntervalMonthDayNanoType, IntervalUnit, Time64MicrosecondType,
    };
    let n = array.len();
    let t = array.data_type();
    let each = |f: &dyn Fn(usize) -> Vec<u8>| -> Vec<Option<Vec<u8>>> {
        (0..n).map(|i| array.is_valid(i).then(|| f(i))).collect()
    };
    let ty = pg_type(t);
    Ok(match ty {
        Type::BOOL => {
            let a = array.as_boolean();
            each(&|i| vec![u8::from(a.value(i))])
        }
        Type::INT2 => {
            let a = cast(array, &DataType::Int16)?;
            let a = a.as_primitive::<Int16Type>();
            each(&|i| a.value(i).to_be_bytes().to_vec())
        }
        Type::INT4 => {
            let a = cast(array, &DataType::Int32)?;
            let a = a.as_primitive::<Int32Type>();
            each(&|i| a.value(i).to_be_bytes().to_vec())
        }
        Type::INT8 => {
            let a = cast(array, &DataType::Int64)?;
            let a = a.as_primitive::<Int64Type>();
            each(&|i| a.value(i).to_be_bytes().to_vec())
        }
        Type::OID => {
            let a = cast(array, &DataType::UInt32)?;
            let a = a.as_primitive::<arrow::datatypes::UInt32Type>();
            each(&|i| a.value(i).to_be_bytes().to_vec())
        }
        Type::FLOAT4 => {
            let a = cast(array, &DataType::Float32)?;
            let a = a.as_primitive::<Float32Type>();
            each(&|i| a.value(i).to_be_bytes().to_vec())
        }
        Type::FLOAT8 => {
            let a = cast(array, &DataType::Float64)?;
            let a = a.as_primitive::<Float64Type>();
            each(&|i| a.value(i).to_be_bytes().to_vec())
        }
        Type::DATE => {
            let a = cast(array, &DataType::Date32)?;
            let a = a.as_primitive::<Date32Type>();
            // PostgreSQL's infinities are the type's extremes.
            each(&|i| {
                match infinity(i64::from(a.value(i)), i64::from(i32::MAX)) {
                    Some("infinity") => i32::MAX,
                    Some(_) => i32::MIN,
                    None => (i64::from(a.value(i)) - PG_EPOCH_DAYS)
                        .clamp(i64::from(i32::MIN + 1), i64::from(i32::MAX - 1))
                        as i32,
                }
                .to_be_bytes()
                .to_vec()
            })
        }
        Type::TIMESTAMP | Type::TIMESTAMPTZ => {
            let a = cast(array, &DataType::Timestamp(TimeUnit::Microsecond, None))?;
            let a = a.as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
            each(&|i| {
                match infinity(a.value(i), i64::MAX) {
                    Some("infinity") => i64::MAX,
                    Some(_) => i64::MIN,
                    // Beyond PostgreSQL's range (DuckDB's year 290309 BC): its last value.
                    None => a.value(i).saturating_sub(PG_EPOCH_MICROS),
                }
                .to_be_bytes()
                .to_vec()
            })
        }
        Type::TIME => {
            let a = cast(array, &DataType::Time64(TimeUnit::Microsecond))?;
            let a = a.as_primitive::<Time64MicrosecondType>();
            each(&|i| a.value(i).to_be_bytes().to_vec())
        }
        Type::INTERVAL => {
            // Microseconds, days, months.
            let interval = |micros: i64, days: i32, months: i32| {
                let mut b = micros.to_be_bytes().to_vec();
                b.extend(days.to_be_bytes());
                b.extend(months.to_be_bytes());
                b
            };
            if matches!(t, DataType::Duration(_)) {
                let a = cast(array, &DataType::Duration(TimeUnit::Microsecond))?;
                let a = a.as_primitive::<DurationMicrosecondType>();
                each(&|i| interval(a.value(i), 0, 0))
            } else {
                let a = cast(array, &DataType::Interval(IntervalUnit::MonthDayNano))?;
                let a = a.as_primitive::<IntervalMonthDayNanoType>();
                each(&|i| {
                    let v = a.value(i);
                    interval(v.nanoseconds / 1_000, v.days, v.months)
                })
            }
        }
        Type::NUMERIC => texts(array)?
            .into_iter()
            .map(|v| v.map(|v| numeric(&v)))
            .collect(),
        Type::BYTEA => {
            let a = cast(array, &DataType::LargeBinary)?;
            let a = a.as_binary::<i64>();
            each(&|i| a.value(i).to_vec())
        }
        _ if matches!(ty.kind(), postgres_types::Kind::Array(_)) => {
            let element = match ty.kind() {
                postgres_types::Kind::Array(e) => e.clone(),
                _ => Type::TEXT,
            };
            let mut out = Vec::with_capacity(n);
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
                let values = binaries(&items)?;
                // One dimension (none when empty), whether it has NULLs, the element type,
                // the length and lower bound, then each element's length and bytes.
                let dims = i32::from(!values.is_empty());
                let mut b = dims.to_be_bytes().to_vec();
                b.extend(i32::from(values.iter().any(Option::is_none)).to_be_bytes());
                b.extend(element.oid().to_be_bytes());
                if dims == 1 {
                    b.extend((values.len() as i32).to_be_bytes());
                    b.extend(1i32.to_be_bytes());
                }
                for v in values {
                    match v {
                        Some(v) => {
                            b.extend((v.len() as i32).to_be_bytes());
                            b.extend(v);
                        }
                        None => b.extend((-1i32).to_be_bytes()),
                    }
                }
                out.push(Some(b));
            }
            out
        }
        // Text, varchar and json: binary is the text itself.
        _ => texts(array)?
            .into_iter()
            .map(|v| v.map(String::into_bytes))
            .collect(),
    })
}

/// A decimal number's text in PostgreSQL's binary NUMERIC: base-10000 digits around the point.
fn numeric(text: &str) -> Vec<u8> {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int, frac) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    if !int.chars().chain(frac.chars()).all(|c| c.is_ascii_digit()) {
        // NaN (DuckDB's DECIMAL has none; a double cast to numeric might).
        let mut b = 0i16.to_be_bytes().to_vec();
        b.extend(0i16.to_be_bytes());
        b.extend(0xC000u16.to_be_bytes());
        b.extend(0u16.to_be_bytes());
        return b;
    }
    let int = int.trim_start_matches('0');
    let group = |s: &str| -> Vec<i16> {
        s.as_bytes()
            .chunks(4)
            .map(|c| std::str::from_utf8(c).unwrap_or("0").parse().unwrap_or(0))
            .collect()
    };
    let int_padded = format!("{}{int}", "0".repeat((4 - int.len() % 4) % 4));
    let frac_padded = format!("{frac}{}", "0".repeat((4 - frac.len() % 4) % 4));
    let mut digits: Vec<i16> = group(&int_padded);
    let mut weight = digits.len() as i16 - 1;
    digits.extend(group(&frac_padded));
    while digits.first() == Some(&0) {
        digits.remove(0);
        weight -= 1;
    }
    while digits.last() == Some(&0) {
        digits.pop();
    }
    if digits.is_empty() {
        weight = 0;
    }
    let mut b = (digits.len() as i16).to_be_bytes().to_vec();
    b.extend(weight.to_be_bytes());
    let sign: u16 = if negative && !digits.is_empty() {
        0x4000
    } else {
        0
    };
    b.extend(sign.to_be_bytes());
    b.extend((frac.len() as u16).to_be_bytes());
    for d in digits {
        b.extend(d.to_be_bytes());
    }
    b
}

/// PostgreSQL's spelling of an interval (IntervalStyle postgres): `1 year 2 mons 3 days
/// 04:05:06.5`.
fn interval_text(micros: i64, days: i32, months: i32) -> String {
    let mut parts = Vec::new();
    let plural = |n: i64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let (years, mons) = (months / 12, months % 12);
    if years != 0 {
        parts.push(plural(years.into(), "year", "years"));
    }
    if mons != 0 {
        parts.push(plural(mons.into(), "mon", "mons"));
    }
    if days != 0 {
        parts.push(plural(days.into(), "day", "days"));
    }
    if micros != 0 || parts.is_empty() {
        let sign = if micros < 0 { "-" } else { "" };
        let m = micros.unsigned_abs();
        let (h, rest) = (m / 3_600_000_000, m % 3_600_000_000);
        let (min, rest) = (rest / 60_000_000, rest % 60_000_000);
        let (sec, frac) = (rest / 1_000_000, rest % 1_000_000);
        let mut time = format!("{sign}{h:02}:{min:02}:{sec:02}");
        if frac != 0 {
            time.push_str(format!(".{frac:06}").trim_end_matches('0'));
        }
        parts.push(time);
    }
    parts.join(" ")
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

/// A value already encoded in its field's format (text or binary), written as it is.
#[derive(Debug)]
pub struct Encoded<'a>(pub Option<&'a [u8]>);

impl Encoded<'_> {
    fn write(&self, out: &mut bytes::BytesMut) -> postgres_types::IsNull {
        match self.0 {
            Some(bytes) => {
                out.extend_from_slice(bytes);
                postgres_types::IsNull::No
            }
            None => postgres_types::IsNull::Yes,
        }
    }
}

impl postgres_types::ToSql for Encoded<'_> {
    fn to_sql(
        &self,
        _: &pgwire::api::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<postgres_types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        Ok(self.write(out))
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    postgres_types::to_sql_checked!();
}

impl pgwire::types::ToSqlText for Encoded<'_> {
    fn to_sql_text(
        &self,
        _: &pgwire::api::Type,
        out: &mut bytes::BytesMut,
        _: &pgwire::types::format::FormatOptions,
    ) -> Result<postgres_types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        Ok(self.write(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow::array::{BooleanArray, Float64Array, ListBuilder, StringBuilder};

    #[test]
    fn intervals_are_spelled_as_postgresql_spells_them() {
        assert_eq!(interval_text(7_200_000_000, 3, 0), "3 days 02:00:00");
        assert_eq!(interval_text(1_500_000, 0, 14), "1 year 2 mons 00:00:01.5");
        assert_eq!(interval_text(0, 0, 0), "00:00:00");
    }

    #[test]
    fn numerics_are_base_10000_digits_around_the_point() {
        // 12345.678: digits 1, 2345, 6780; weight 1; scale 3.
        assert_eq!(
            numeric("12345.678"),
            [0, 3, 0, 1, 0, 0, 0, 3, 0, 1, 0x09, 0x29, 0x1A, 0x7C]
        );
        // -0.05: digit 500, weight -1, negative, scale 2.
        assert_eq!(
            numeric("-0.05"),
            [0, 1, 0xFF, 0xFF, 0x40, 0, 0, 2, 0x01, 0xF4]
        );
        assert_eq!(numeric("0"), [0, 0, 0, 0, 0, 0, 0, 0]);
    }

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

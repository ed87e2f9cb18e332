//! Statement parameters: their types as PostgreSQL would describe them (from the types DuckDB
//! infers where they are used), and the values clients bind, in text or binary, turned into
//! text DuckDB casts to the parameter's type.
//!
//! Drivers encode a value by the type the server describes: asyncpg and pgjdbc send an `int8`
//! parameter as 8 binary bytes, a `date` as days since 2000, so describing every parameter as
//! text (as before) made them refuse `2026` or a `date` outright.

use duckdb::ffi;
use pgwire::api::Type;

use crate::query::raw::ParamType;

/// The PostgreSQL type of a parameter DuckDB inferred as `p` (text where nothing tells, as
/// PostgreSQL says for `SELECT $1`).
pub fn pg_type(p: &ParamType) -> Type {
    match p.id {
        ffi::DUCKDB_TYPE_DUCKDB_TYPE_LIST | ffi::DUCKDB_TYPE_DUCKDB_TYPE_ARRAY => {
            match p.element.map(scalar) {
                Some(Type::BOOL) => Type::BOOL_ARRAY,
                Some(Type::INT2) => Type::INT2_ARRAY,
                Some(Type::INT4) => Type::INT4_ARRAY,
                Some(Type::INT8) => Type::INT8_ARRAY,
                Some(Type::OID) => Type::OID_ARRAY,
                Some(Type::FLOAT4) => Type::FLOAT4_ARRAY,
                Some(Type::FLOAT8) => Type::FLOAT8_ARRAY,
                Some(Type::NUMERIC) => Type::NUMERIC_ARRAY,
                Some(Type::DATE) => Type::DATE_ARRAY,
                Some(Type::TIMESTAMP) => Type::TIMESTAMP_ARRAY,
                Some(Type::TIMESTAMPTZ) => Type::TIMESTAMPTZ_ARRAY,
                Some(Type::UUID) => Type::UUID_ARRAY,
                _ => Type::TEXT_ARRAY,
            }
        }
        id => scalar(id),
    }
}

fn scalar(id: ffi::DUCKDB_TYPE) -> Type {
    match id {
        ffi::DUCKDB_TYPE_DUCKDB_TYPE_BOOLEAN => Type::BOOL,
        ffi::DUCKDB_TYPE_DUCKDB_TYPE_TINYINT
        | ffi::DUCKDB_TYPE_DUCKDB_TYPE_SMALLINT
        | ffi::DUCKDB_TYPE_DUCKDB_TYPE_UTINYINT => Type::INT2,
        ffi::DUCKDB_TYPE_DUCKDB_TYPE_INTEGER | ffi::DUCKDB_TYPE_DUCKDB_TYPE_USMALLINT => Type::INT4,
        ffi::DUCKDB_TYPE_DUCKDB_TYPE_BIGINT => Type::INT8,
        // Only an oid cast makes one (see `catalog`): PostgreSQL's oid is unsigned 32 bits too.
        ffi::DUCKDB_TYPE_DUCKDB_TYPE_UINTEGER => Type::OID,
        ffi::DUCKDB_TYPE_DUCKDB_TYPE_UBIGINT
        | ffi::DUCKDB_TYPE_DUCKDB_TYPE_HUGEINT
        | ffi::DUCKDB_TYPE_DUCKDB_TYPE_UHUGEINT
        | ffi::DUCKDB_TYPE_DUCKDB_TYPE_DECIMAL
        | ffi::DUCKDB_TYPE_DUCKDB_TYPE_BIGNUM => Type::NUMERIC,
        ffi::DUCKDB_TYPE_DUCKDB_TYPE_FLOAT => Type::FLOAT4,
        ffi::DUCKDB_TYPE_DUCKDB_TYPE_DOUBLE => Type::FLOAT8,
        ffi::DUCKDB_TYPE_DUCKDB_TYPE_DATE => Type::DATE,
        ffi::DUCKDB_TYPE_DUCKDB_TYPE_TIMESTAMP
        | ffi::DUCKDB_TYPE_DUCKDB_TYPE_TIMESTAMP_S
        | ffi::DUCKDB_TYPE_DUCKDB_TYPE_TIMESTAMP_MS
        | ffi::DUCKDB_TYPE_DUCKDB_TYPE_TIMESTAMP_NS => Type::TIMESTAMP,
        ffi::DUCKDB_TYPE_DUCKDB_TYPE_TIMESTAMP_TZ => Type::TIMESTAMPTZ,
        ffi::DUCKDB_TYPE_DUCKDB_TYPE_TIME => Type::TIME,
        ffi::DUCKDB_TYPE_DUCKDB_TYPE_INTERVAL => Type::INTERVAL,
        ffi::DUCKDB_TYPE_DUCKDB_TYPE_BLOB => Type::BYTEA,
        ffi::DUCKDB_TYPE_DUCKDB_TYPE_UUID => Type::UUID,
        _ => Type::TEXT,
    }
}

/// Why a bound value cannot be read (the client is told SQLSTATE 22P03).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    /// A text parameter that is not UTF-8.
    #[error("a text parameter is not UTF-8")]
    NotUtf8,
    /// A binary value whose bytes do not fit its type.
    #[error("a binary {type_name} parameter of {len} bytes")]
    Malformed {
        /// The parameter's type.
        type_name: String,
        /// How many bytes came.
        len: usize,
    },
    /// An array's header or elements run past its bytes.
    #[error("a malformed binary {0} parameter")]
    MalformedArray(String),
    /// An array of more than one dimension.
    #[error("{0}-dimensional array parameters are not supported")]
    Dimensions(i32),
    /// An element DuckDB's list cast cannot quote.
    #[error("an array parameter's element holds both kinds of quote")]
    BothQuotes,
}

/// A bound value, as text DuckDB casts to the parameter's type; `binary` when the client sent
/// PostgreSQL's binary encoding of `t`.
pub fn value(bytes: &[u8], binary: bool, t: &Type) -> Result<String, ParamError> {
    if !binary {
        return String::from_utf8(bytes.to_vec()).map_err(|_| ParamError::NotUtf8);
    }
    let wrong = || ParamError::Malformed {
        type_name: t.name().to_string(),
        len: bytes.len(),
    };
    let fixed = |n: usize| -> Result<&[u8], ParamError> {
        if bytes.len() == n {
            Ok(bytes)
        } else {
            Err(wrong())
        }
    };
    Ok(match *t {
        Type::BOOL => (fixed(1)?[0] != 0).to_string(),
        Type::INT2 => i16::from_be_bytes(fixed(2)?.try_into().map_err(|_| wrong())?).to_string(),
        Type::INT4 => i32::from_be_bytes(fixed(4)?.try_into().map_err(|_| wrong())?).to_string(),
        Type::INT8 => i64::from_be_bytes(fixed(8)?.try_into().map_err(|_| wrong())?).to_string(),
        Type::OID => u32::from_be_bytes(fixed(4)?.try_into().map_err(|_| wrong())?).to_string(),
        Type::FLOAT4 => f32::from_be_bytes(fixed(4)?.try_into().map_err(|_| wrong())?).to_string(),
        Type::FLOAT8 => f64::from_be_bytes(fixed(8)?.try_into().map_err(|_| wrong())?).to_string(),
        Type::NUMERIC => numeric(bytes).ok_or_else(wrong)?,
        Type::DATE => date(i32::from_be_bytes(
            fixed(4)?.try_into().map_err(|_| wrong())?,
        )),
        Type::TIMESTAMP => timestamp(
            i64::from_be_bytes(fixed(8)?.try_into().map_err(|_| wrong())?),
            "",
        ),
        Type::TIMESTAMPTZ => timestamp(
            i64::from_be_bytes(fixed(8)?.try_into().map_err(|_| wrong())?),
            "+00",
        ),
        Type::TIME => {
            let micros = i64::from_be_bytes(fixed(8)?.try_into().map_err(|_| wrong())?);
            let (seconds, fraction) = (micros.div_euclid(1_000_000), micros.rem_euclid(1_000_000));
            chrono::NaiveTime::from_num_seconds_from_midnight_opt(
                u32::try_from(seconds).map_err(|_| wrong())?,
                u32::try_from(fraction * 1000).map_err(|_| wrong())?,
            )
            .ok_or_else(wrong)?
            .format("%H:%M:%S%.6f")
            .to_string()
        }
        Type::INTERVAL => {
            let b = fixed(16)?;
            let micros = i64::from_be_bytes(b[..8].try_into().map_err(|_| wrong())?);
            let days = i32::from_be_bytes(b[8..12].try_into().map_err(|_| wrong())?);
            let months = i32::from_be_bytes(b[12..].try_into().map_err(|_| wrong())?);
            format!("{months} months {days} days {micros} microseconds")
        }
        Type::UUID => {
            let h: String = fixed(16)?.iter().map(|b| format!("{b:02x}")).collect();
            format!(
                "{}-{}-{}-{}-{}",
                &h[..8],
                &h[8..12],
                &h[12..16],
                &h[16..20],
                &h[20..]
            )
        }
        Type::BYTEA => bytes.iter().map(|b| format!("\\x{b:02X}")).collect(),
        ref t if matches!(t.kind(), postgres_types::Kind::Array(_)) => array(bytes, t)?,
        // text, varchar, name, unknown, json: the bytes are the text.
        _ => String::from_utf8(bytes.to_vec()).map_err(|_| wrong())?,
    })
}

/// PostgreSQL's dates count days from 2000-01-01; the extremes are its infinities.
fn date(days: i32) -> String {
    match days {
        i32::MAX => "infinity".into(),
        i32::MIN => "-infinity".into(),
        d => {
            let epoch = chrono::NaiveDate::from_ymd_opt(2000, 1, 1).expect("a valid date");
            epoch
                .checked_add_signed(chrono::Duration::days(d.into()))
                .map_or_else(|| "infinity".into(), |d| d.to_string())
        }
    }
}

/// PostgreSQL's timestamps count microseconds from 2000-01-01; the extremes are infinities.
fn timestamp(micros: i64, zone: &str) -> String {
    match micros {
        i64::MAX => "infinity".into(),
        i64::MIN => "-infinity".into(),
        m => {
            let epoch = chrono::NaiveDate::from_ymd_opt(2000, 1, 1)
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .expect("a valid time");
            epoch
                .checked_add_signed(chrono::Duration::microseconds(m))
                .map_or_else(
                    || "infinity".into(),
                    |t| format!("{}{zone}", t.format("%Y-%m-%d %H:%M:%S%.6f")),
                )
        }
    }
}

/// PostgreSQL's binary numeric: digit count, weight (of the first base-10000 digit), sign,
/// display scale, then the base-10000 digits.
fn numeric(b: &[u8]) -> Option<String> {
    let word = |i: usize| {
        b.get(2 * i..2 * i + 2)
            .map(|w| i16::from_be_bytes([w[0], w[1]]))
    };
    let (count, weight, sign, scale) = (word(0)?, word(1)?, word(2)? as u16, word(3)?);
    match sign {
        0xC000 => return Some("NaN".into()),
        0xD000 => return Some("infinity".into()),
        0xF000 => return Some("-infinity".into()),
        _ => {}
    }
    let digits: Vec<i16> = (0..count as usize)
        .map(|i| word(4 + i))
        .collect::<Option<_>>()?;
    let mut int = String::new();
    for w in 0..=weight.max(0) {
        let d = if w <= weight {
            digits.get(w as usize).copied().unwrap_or(0)
        } else {
            0
        };
        if int.is_empty() {
            int = d.to_string();
        } else {
            int.push_str(&format!("{d:04}"));
        }
    }
    if weight < 0 {
        int = "0".into();
    }
    let mut frac = String::new();
    for i in 0..(scale.max(0) as usize).div_ceil(4) {
        let index = weight as isize + 1 + i as isize;
        let d = if index >= 0 {
            digits.get(index as usize).copied().unwrap_or(0)
        } else {
            0
        };
        frac.push_str(&format!("{d:04}"));
    }
    frac.truncate(scale.max(0) as usize);
    let sign = if sign == 0x4000 { "-" } else { "" };
    Some(if frac.is_empty() {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    })
}

/// A one-dimensional binary array as DuckDB's list text (`['a', 'b', NULL]`), its elements
/// decoded by their own type.
fn array(b: &[u8], t: &Type) -> Result<String, ParamError> {
    let bad = || ParamError::MalformedArray(t.name().to_string());
    let postgres_types::Kind::Array(element) = t.kind() else {
        return Err(bad());
    };
    let int = |at: usize| -> Result<i32, ParamError> {
        b.get(at..at + 4)
            .map(|w| i32::from_be_bytes([w[0], w[1], w[2], w[3]]))
            .ok_or_else(bad)
    };
    let dims = int(0)?;
    if dims == 0 {
        return Ok("[]".into());
    }
    if dims != 1 {
        return Err(ParamError::Dimensions(dims));
    }
    let len = int(12)?;
    let mut at = 20;
    let mut items = Vec::new();
    for _ in 0..len {
        let n = int(at)?;
        at += 4;
        if n < 0 {
            items.push("NULL".to_string());
            continue;
        }
        let bytes = b.get(at..at + n as usize).ok_or_else(bad)?;
        at += n as usize;
        let text = value(bytes, true, element)?;
        items.push(quoted(&text)?);
    }
    Ok(format!("[{}]", items.join(", ")))
}

/// A list element quoted for DuckDB's text-to-list cast, which reads either quote and has no
/// escape for the other.
fn quoted(text: &str) -> Result<String, ParamError> {
    if !text.contains('\'') {
        Ok(format!("'{text}'"))
    } else if !text.contains('"') {
        Ok(format!("\"{text}\""))
    } else {
        Err(ParamError::BothQuotes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_values_become_the_text_duckdb_casts() {
        assert_eq!(
            value(&2026i64.to_be_bytes(), true, &Type::INT8).unwrap(),
            "2026"
        );
        assert_eq!(
            value(&9497i32.to_be_bytes(), true, &Type::DATE).unwrap(),
            "2026-01-01"
        );
        assert_eq!(
            value(&i32::MAX.to_be_bytes(), true, &Type::DATE).unwrap(),
            "infinity"
        );
        assert_eq!(
            value(&i64::MIN.to_be_bytes(), true, &Type::TIMESTAMPTZ).unwrap(),
            "-infinity"
        );
        assert_eq!(
            value(&1_500_000i64.to_be_bytes(), true, &Type::TIMESTAMPTZ).unwrap(),
            "2000-01-01 00:00:01.500000+00"
        );
        // 12345.678 and -0.05: digits 1, 2345, 6780 (weight 1, scale 3); 500 (weight -1).
        let numeric =
            |words: &[i16]| -> Vec<u8> { words.iter().flat_map(|w| w.to_be_bytes()).collect() };
        assert_eq!(
            value(&numeric(&[3, 1, 0, 3, 1, 2345, 6780]), true, &Type::NUMERIC).unwrap(),
            "12345.678"
        );
        assert_eq!(
            value(
                &numeric(&[1, -1, 0x4000u16 as i16, 2, 500]),
                true,
                &Type::NUMERIC
            )
            .unwrap(),
            "-0.05"
        );
        // ['SNS', NULL] as text[].
        let mut array = Vec::new();
        for w in [1i32, 1, 25, 2, 1] {
            array.extend(w.to_be_bytes());
        }
        array.extend(3i32.to_be_bytes());
        array.extend(b"SNS");
        array.extend((-1i32).to_be_bytes());
        assert_eq!(
            value(&array, true, &Type::TEXT_ARRAY).unwrap(),
            "['SNS', NULL]"
        );
        assert_eq!(value(b"2026", false, &Type::INT8).unwrap(), "2026");
        assert!(value(&[0, 1], true, &Type::INT8).is_err());
        assert!(value(&(-1i64).to_be_bytes(), true, &Type::TIME).is_err());
    }
}

//! `COPY (query) TO STDOUT` and `COPY view TO STDOUT`, in text, CSV or PostgreSQL's binary
//! format, as psql's `\copy`, connectorx (polars' `read_database_uri`) and the ADBC driver
//! read. Only the query inside is SQL for DuckDB, checked as any other ([`super::guard`]); the
//! rows go to the client batch by batch as DuckDB makes them, never the whole result at once.

use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use pgwire::api::results::{CopyCsvOptions, CopyEncoder, CopyTextOptions, FieldFormat, FieldInfo};
use pgwire::messages::copy::CopyData;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::tokenizer::{Token, Tokenizer};

use super::encode;
use super::guard::Offsets;
use crate::query::QueryError;

/// A `COPY ... TO STDOUT`.
#[derive(Debug, Clone, PartialEq)]
pub struct CopyOut {
    /// The query whose rows are copied (a view's name becomes `SELECT * FROM` it).
    pub query: String,
    pub format: CopyFormat,
    /// A first line of column names (text and CSV).
    pub header: bool,
    pub delimiter: Option<String>,
    pub null: Option<String>,
}

/// The formats of COPY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyFormat {
    Text,
    Csv,
    Binary,
}

/// Why a `COPY ... TO STDOUT` is refused: the message names the option or word.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadCopy(String);

fn bad(why: impl Into<String>) -> Option<Result<CopyOut, BadCopy>> {
    Some(Err(BadCopy(why.into())))
}

impl CopyOut {
    /// `sql` as a `COPY ... TO STDOUT`: `None` when it is another COPY (to a file, from a
    /// client: for DuckDB to refuse), an error naming what is wrong with one to STDOUT.
    pub fn parse(sql: &str) -> Option<Result<CopyOut, BadCopy>> {
        let spans: Vec<_> = Tokenizer::new(&PostgreSqlDialect {}, sql)
            .tokenize_with_location()
            .ok()?
            .into_iter()
            .filter(|t| !matches!(t.token, Token::Whitespace(_)))
            .collect();
        let offsets = Offsets::new(sql);
        let starts: Vec<usize> = spans
            .iter()
            .map(|t| offsets.of(t))
            .chain([sql.len()])
            .collect();
        let tokens: Vec<Token> = spans.into_iter().map(|t| t.token).collect();
        // The client's own text of tokens `from..to` (quotes, escapes and comments as sent).
        let text = |from: usize, to: usize| sql[starts[from]..starts[to]].trim().to_string();
        let word = |t: Option<&Token>| match t {
            Some(Token::Word(w)) if w.quote_style.is_none() => Some(w.value.to_ascii_uppercase()),
            _ => None,
        };
        if word(tokens.first()).as_deref() != Some("COPY") {
            return None;
        }
        // What is copied: a parenthesised query, or a view and perhaps its columns.
        let (query, mut at) = if tokens.get(1) == Some(&Token::LParen) {
            let close = matching(&tokens, 1)?;
            (text(2, close), close + 1)
        } else {
            let mut at = 1;
            while let Some(t @ (Token::Word(_) | Token::Period)) = tokens.get(at) {
                if matches!(t, Token::Word(w) if w.quote_style.is_none()
                    && w.value.eq_ignore_ascii_case("TO"))
                {
                    break;
                }
                at += 1;
            }
            if at == 1 {
                return None;
            }
            let name = text(1, at);
            let columns = if tokens.get(at) == Some(&Token::LParen) {
                let close = matching(&tokens, at)?;
                let columns = text(at + 1, close);
                at = close + 1;
                columns
            } else {
                "*".to_string()
            };
            (format!("SELECT {columns} FROM {name}"), at)
        };
        if word(tokens.get(at)).as_deref() != Some("TO")
            || word(tokens.get(at + 1)).as_deref() != Some("STDOUT")
        {
            return None;
        }
        at += 2;
        let mut copy = CopyOut {
            query,
            format: CopyFormat::Text,
            header: false,
            delimiter: None,
            null: None,
        };
        if word(tokens.get(at)).as_deref() == Some("WITH") {
            at += 1;
        }
        // `(FORMAT csv, HEADER true, ...)`, or the older `CSV HEADER`, `BINARY`.
        let options: Vec<Token> = if tokens.get(at) == Some(&Token::LParen) {
            let close = matching(&tokens, at)?;
            let inner = tokens[at + 1..close].to_vec();
            at = close + 1;
            inner
        } else {
            let rest = tokens[at..].to_vec();
            at = tokens.len();
            rest
        };
        if tokens[at..]
            .iter()
            .any(|t| !matches!(t, Token::SemiColon | Token::EOF))
        {
            return bad("COPY ... TO STDOUT: unexpected words after its options");
        }
        let mut options = options
            .into_iter()
            .filter(|t| !matches!(t, Token::Comma | Token::SemiColon | Token::EOF))
            .peekable();
        let value = |t: Option<Token>| match t {
            Some(Token::SingleQuotedString(s)) => Some(s),
            Some(Token::Word(w)) => Some(w.value),
            Some(Token::Number(n, _)) => Some(n),
            _ => None,
        };
        while let Some(option) = options.next() {
            let Some(name) = word(Some(&option)) else {
                return bad(format!("COPY ... TO STDOUT: unexpected {option}"));
            };
            // An optional `AS` before a value (`DELIMITER AS ','`).
            if matches!(options.peek(), Some(Token::Word(w)) if w.value.eq_ignore_ascii_case("AS"))
            {
                options.next();
            }
            match name.as_str() {
                "FORMAT" => match value(options.next())
                    .map(|v| v.to_ascii_lowercase())
                    .as_deref()
                {
                    Some("text") => copy.format = CopyFormat::Text,
                    Some("csv") => copy.format = CopyFormat::Csv,
                    Some("binary") => copy.format = CopyFormat::Binary,
                    other => {
                        return bad(format!(
                            "COPY format {} is not one of text, csv, binary",
                            other.unwrap_or("(none)")
                        ))
                    }
                },
                "CSV" => copy.format = CopyFormat::Csv,
                "BINARY" => copy.format = CopyFormat::Binary,
                "HEADER" => {
                    copy.header = match options.peek().and_then(|t| word(Some(t))).as_deref() {
                        Some("TRUE" | "ON") => {
                            options.next();
                            true
                        }
                        Some("FALSE" | "OFF") => {
                            options.next();
                            false
                        }
                        _ => true,
                    }
                }
                "DELIMITER" => copy.delimiter = value(options.next()),
                "NULL" => copy.null = value(options.next()),
                other => {
                    return bad(format!(
                        "COPY option {other} is not supported by hspq serve (FORMAT, HEADER, \
                         DELIMITER and NULL are)"
                    ))
                }
            }
        }
        if let Some(d) = &copy.delimiter {
            if d.chars().count() != 1 || !d.is_ascii() || matches!(d.as_str(), "\n" | "\r" | "\\") {
                return bad(
                    "COPY delimiter must be a single ASCII character other than newline, \
                     carriage return and backslash",
                );
            }
        }
        if let Some(n) = &copy.null {
            let delimiter = copy.delimiter.clone().unwrap_or_else(|| {
                if copy.format == CopyFormat::Csv {
                    ",".into()
                } else {
                    "\t".into()
                }
            });
            if n.contains(['\n', '\r']) || n.contains(delimiter.as_str()) {
                return bad("COPY null representation cannot hold a newline or the delimiter");
            }
        }
        Some(Ok(copy))
    }

    /// The COPY format code of the protocol (0 text, 1 binary).
    pub fn format_code(&self) -> i8 {
        i8::from(self.format == CopyFormat::Binary)
    }

    /// An encoder of rows of `fields` (typed as the results are) in this COPY's format.
    pub fn encoder(&self, fields: Vec<FieldInfo>) -> CopyEncoder {
        let format = if self.format == CopyFormat::Binary {
            FieldFormat::Binary
        } else {
            FieldFormat::Text
        };
        let fields: Vec<FieldInfo> = fields
            .into_iter()
            .map(|f| {
                FieldInfo::new(
                    f.name().to_string(),
                    None,
                    None,
                    f.datatype().clone(),
                    format,
                )
            })
            .collect();
        let fields = Arc::new(fields);
        match self.format {
            CopyFormat::Binary => CopyEncoder::new_binary(fields),
            CopyFormat::Text => {
                let mut options = CopyTextOptions::default();
                if let Some(d) = &self.delimiter {
                    options.delimiter = d.as_str().into();
                }
                if let Some(n) = &self.null {
                    options.null_string = n.as_str().into();
                }
                CopyEncoder::new_text(fields, options)
            }
            CopyFormat::Csv => {
                let mut options = CopyCsvOptions::default();
                if let Some(d) = &self.delimiter {
                    options.delimiter = d.as_str().into();
                }
                if let Some(n) = &self.null {
                    options.null_string = n.as_str().into();
                }
                CopyEncoder::new_csv(fields, options)
            }
        }
    }

    /// The header line (column names), for text and CSV.
    pub fn header_line(&self, names: &[String]) -> Option<Vec<u8>> {
        if !self.header || self.format == CopyFormat::Binary {
            return None;
        }
        let delimiter = self.delimiter.clone().unwrap_or_else(|| {
            if self.format == CopyFormat::Csv {
                ",".into()
            } else {
                "\t".into()
            }
        });
        let quote = |n: &String| {
            if self.format == CopyFormat::Csv {
                if n.contains(&delimiter) || n.contains(['"', '\n', '\r']) {
                    format!("\"{}\"", n.replace('"', "\"\""))
                } else {
                    n.clone()
                }
            } else {
                // Text format escapes as its rows do.
                n.replace('\\', "\\\\")
                    .replace('\t', "\\t")
                    .replace('\n', "\\n")
                    .replace('\r', "\\r")
            }
        };
        let mut line = names.iter().map(quote).collect::<Vec<_>>().join(&delimiter);
        line.push('\n');
        Some(line.into_bytes())
    }

    /// One batch's rows, each as a CopyData message.
    pub fn rows(
        &self,
        encoder: &mut CopyEncoder,
        batch: &RecordBatch,
    ) -> Result<Vec<CopyData>, QueryError> {
        let columns = batch
            .columns()
            .iter()
            .map(|c| {
                if self.format == CopyFormat::Binary {
                    encode::binaries(c)
                } else {
                    encode::texts(c)
                        .map(|t| t.into_iter().map(|v| v.map(String::into_bytes)).collect())
                }
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| QueryError::Usage(format!("cannot encode the result: {e}")))?;
        let mut out = Vec::with_capacity(batch.num_rows());
        for row in 0..batch.num_rows() {
            for column in &columns {
                encoder
                    .encode_field(&encode::Encoded(column[row].as_deref()))
                    .map_err(|e| QueryError::Usage(e.to_string()))?;
            }
            out.push(encoder.take_copy());
        }
        Ok(out)
    }
}

/// A result's columns as the fields of its rows, typed as query results are.
pub fn fields_of(schema: &arrow::datatypes::Schema) -> Vec<FieldInfo> {
    schema
        .fields()
        .iter()
        .map(|f| {
            FieldInfo::new(
                f.name().clone(),
                None,
                None,
                encode::pg_type(f.data_type()),
                FieldFormat::Text,
            )
        })
        .collect()
}

/// PostgreSQL's binary COPY header alone, for a result without rows (the encoder writes it
/// with the first row).
pub fn binary_header() -> CopyData {
    let mut header = b"PGCOPY\n\xff\r\n\0".to_vec();
    header.extend(0i32.to_be_bytes());
    header.extend(0i32.to_be_bytes());
    CopyData::new(header.into())
}

/// The index of the `)` closing the `(` at `open`.
fn matching(tokens: &[Token], open: usize) -> Option<usize> {
    let mut depth = 0;
    for (i, t) in tokens.iter().enumerate().skip(open) {
        match t {
            Token::LParen => depth += 1,
            Token::RParen => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_to_stdout_is_read_as_psql_connectorx_and_adbc_send_it() {
        let c = CopyOut::parse("COPY ( select 1 as a ) TO STDOUT with (format csv, header)")
            .unwrap()
            .unwrap();
        assert_eq!(c.format, CopyFormat::Csv);
        assert!(c.header);
        assert_eq!(c.query, "select 1 as a");
        let c = CopyOut::parse("copy (select $$)$$, E'\\'' /* ) */) to stdout")
            .unwrap()
            .unwrap();
        assert_eq!(c.query, "select $$)$$, E'\\'' /* ) */");
        let c = CopyOut::parse("copy (select * from billing) to stdout with binary")
            .unwrap()
            .unwrap();
        assert_eq!(c.format, CopyFormat::Binary);
        let c = CopyOut::parse("COPY billing (year, product) TO STDOUT CSV HEADER DELIMITER ';'")
            .unwrap()
            .unwrap();
        assert_eq!(c.query, "SELECT year, product FROM billing");
        assert_eq!(c.delimiter.as_deref(), Some(";"));
        assert_eq!(
            CopyOut::parse("COPY (SELECT 1) TO STDOUT (FORMAT binary)")
                .unwrap()
                .unwrap()
                .format,
            CopyFormat::Binary
        );
        // Not to the client: DuckDB's to judge (and refuse).
        assert!(CopyOut::parse("copy billing to '/tmp/x.csv'").is_none());
        assert!(CopyOut::parse("copy billing from stdin").is_none());
        assert!(CopyOut::parse("select 1").is_none());
        assert!(CopyOut::parse("COPY (select 1) TO STDOUT (FORCE_QUOTE *)")
            .unwrap()
            .is_err());
        for bad in [
            "(DELIMITER '')",
            "(DELIMITER ';;')",
            "(FORMAT csv, NULL 'a,b')",
        ] {
            assert!(
                CopyOut::parse(&format!("COPY (select 1, 2) TO STDOUT {bad}"))
                    .unwrap()
                    .is_err(),
                "{bad}"
            );
        }
    }
}

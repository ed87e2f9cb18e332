//! Query results → the output formats of `hspq sql` (CONTRACT §1): a width-aware table, CSV,
//! JSON, NDJSON, Markdown and Parquet.
//!
//! Export formats stream batch by batch, so memory stays bounded whatever the result size; the
//! table keeps only the rows it shows. Nested values (lists) are written as text where a format
//! has no nested types (CSV, Markdown, table).

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

pub use crate::config::Format;

impl Format {
    /// Table and Markdown: limited to the rows a person reads, and counted on stderr.
    pub fn is_for_people(self) -> bool {
        matches!(self, Format::Table | Format::Markdown)
    }
}

/// Why writing a result failed.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The reader went away (`| head`): not a failure.
    #[error("output closed")]
    Closed,
    /// Writing failed.
    #[error("writing the result: {0}")]
    Io(String),
}

/// A sink that notes when the reader went away. Arrow's CSV writer reports I/O errors as text,
/// so whether a write failed on a closed pipe is taken from the `io::Error` itself, here.
struct Watched<W> {
    inner: W,
    closed: Arc<AtomicBool>,
}

impl<W: Write> Watched<W> {
    fn note<T>(&self, r: std::io::Result<T>) -> std::io::Result<T> {
        if let Err(e) = &r {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                self.closed.store(true, Ordering::Relaxed);
            }
        }
        r
    }
}

impl<W: Write> Write for Watched<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let r = self.inner.write(buf);
        self.note(r)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let r = self.inner.flush();
        self.note(r)
    }
}

/// An Arrow or Parquet writer's error: `Closed` when the sink saw the reader go away, or an
/// I/O error in the error's chain of causes says so.
fn io(e: impl std::error::Error + 'static, closed: &AtomicBool) -> OutputError {
    if closed.load(Ordering::Relaxed) {
        return OutputError::Closed;
    }
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(c) = cause {
        if c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
        {
            return OutputError::Closed;
        }
        cause = c.source();
    }
    OutputError::Io(e.to_string())
}

impl From<std::io::Error> for OutputError {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            OutputError::Closed
        } else {
            OutputError::Io(e.to_string())
        }
    }
}

/// Options of the formats for people (table, and Markdown's row limit).
#[derive(Clone, Copy, Debug)]
pub struct TableOptions {
    /// Rows shown at most (the rest are counted).
    pub max_rows: usize,
    /// Terminal width to fit into.
    pub width: usize,
    /// Widest a single column may be.
    pub max_column_width: usize,
}

impl Default for TableOptions {
    fn default() -> Self {
        TableOptions {
            max_rows: 40,
            width: 120,
            max_column_width: 40,
        }
    }
}

/// Writes a result in one format.
pub struct ResultWriter<'w> {
    format: Format,
    out: Box<dyn Write + 'w>,
    table: TableOptions,
    schema: Option<SchemaRef>,
    rows: usize,
    kept: Vec<RecordBatch>,
    kept_rows: usize,
    csv: Option<arrow::csv::Writer<Box<dyn Write + 'w>>>,
    json: Option<arrow::json::ArrayWriter<Box<dyn Write + 'w>>>,
    parquet: Option<parquet::arrow::ArrowWriter<Box<dyn Write + Send + 'w>>>,
    parquet_sink: Option<Box<dyn Write + Send + 'w>>,
    started: bool,
    /// Raised by the sink when the reader went away.
    closed: Arc<AtomicBool>,
}

impl<'w> ResultWriter<'w> {
    /// A writer of `format` into `out`. Parquet needs a `Send` sink: pass it as `parquet_out`.
    pub fn new(format: Format, out: Box<dyn Write + 'w>, table: TableOptions) -> ResultWriter<'w> {
        let closed = Arc::new(AtomicBool::new(false));
        ResultWriter {
            format,
            out: Box::new(Watched {
                inner: out,
                closed: closed.clone(),
            }),
            table,
            schema: None,
            rows: 0,
            kept: Vec::new(),
            kept_rows: 0,
            csv: None,
            json: None,
            parquet: None,
            parquet_sink: None,
            started: false,
            closed,
        }
    }

    /// A Parquet writer into `out`.
    pub fn parquet(out: Box<dyn Write + Send + 'w>) -> ResultWriter<'w> {
        let mut w = ResultWriter::new(
            Format::Parquet,
            Box::new(std::io::sink()),
            TableOptions::default(),
        );
        w.parquet_sink = Some(Box::new(Watched {
            inner: out,
            closed: w.closed.clone(),
        }));
        w
    }

    /// Rows written so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Writes one batch.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), OutputError> {
        if self.schema.is_none() {
            self.start(batch.schema())?;
        }
        self.rows += batch.num_rows();
        match self.format {
            Format::Table => {
                if self.kept_rows < self.table.max_rows {
                    let take = (self.table.max_rows - self.kept_rows).min(batch.num_rows());
                    self.kept.push(batch.slice(0, take));
                    self.kept_rows += take;
                }
            }
            Format::Csv => {
                let flat = flatten(batch);
                self.csv
                    .as_mut()
                    .expect("started")
                    .write(&flat)
                    .map_err(|e| io(e, &self.closed))?;
            }
            Format::Json => self
                .json
                .as_mut()
                .expect("started")
                .write(batch)
                .map_err(|e| io(e, &self.closed))?,
            Format::Ndjson => {
                let mut w = arrow::json::WriterBuilder::new()
                    .with_explicit_nulls(true)
                    .build::<_, arrow::json::writer::LineDelimited>(&mut self.out);
                w.write(batch).map_err(|e| io(e, &self.closed))?;
                w.finish().map_err(|e| io(e, &self.closed))?;
            }
            Format::Markdown => {
                let flat = flatten(batch);
                // Like the table, a Markdown result is for people: it shows `max_rows` rows.
                let written = self.rows - batch.num_rows();
                let shown = self
                    .table
                    .max_rows
                    .saturating_sub(written)
                    .min(flat.num_rows());
                for row in 0..shown {
                    let cells: Vec<String> = flat
                        .columns()
                        .iter()
                        .map(|c| cell(c, row).replace('|', "\\|").replace('\n', " "))
                        .collect();
                    writeln!(self.out, "| {} |", cells.join(" | "))?;
                }
            }
            Format::Parquet => self
                .parquet
                .as_mut()
                .expect("started")
                .write(batch)
                .map_err(|e| io(e, &self.closed))?,
        }
        Ok(())
    }

    fn start(&mut self, schema: SchemaRef) -> Result<(), OutputError> {
        self.schema = Some(schema.clone());
        self.started = true;
        match self.format {
            Format::Csv => {
                let out = std::mem::replace(&mut self.out, Box::new(std::io::sink()));
                self.csv = Some(
                    arrow::csv::WriterBuilder::new()
                        .with_header(true)
                        .build(out),
                );
            }
            Format::Json => {
                let out = std::mem::replace(&mut self.out, Box::new(std::io::sink()));
                // Every key in every object, nulls included, so readers see one shape.
                self.json = Some(
                    arrow::json::WriterBuilder::new()
                        .with_explicit_nulls(true)
                        .build(out),
                );
            }
            Format::Markdown => {
                let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                writeln!(self.out, "| {} |", names.join(" | "))?;
                writeln!(self.out, "|{}", "---|".repeat(names.len()))?;
            }
            Format::Parquet => {
                let sink = self.parquet_sink.take().expect("parquet writer has a sink");
                let props = parquet::file::properties::WriterProperties::builder()
                    .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
                    .build();
                self.parquet = Some(
                    parquet::arrow::ArrowWriter::try_new(sink, schema, Some(props))
                        .map_err(|e| io(e, &self.closed))?,
                );
            }
            Format::Table | Format::Ndjson => {}
        }
        Ok(())
    }

    /// Finishes the output. `schema` is the result's, for an empty result's header.
    pub fn finish(mut self, schema: Option<SchemaRef>) -> Result<usize, OutputError> {
        if !self.started {
            if let Some(schema) = schema.filter(|s| !s.fields().is_empty()) {
                self.start(schema)?;
            }
        }
        match self.format {
            Format::Table => {
                if let Some(schema) = &self.schema {
                    let text = render_table(schema, &self.kept, self.table);
                    self.out.write_all(text.as_bytes())?;
                }
            }
            Format::Csv => {
                if let Some(w) = self.csv.take() {
                    // A header even for an empty result.
                    if self.rows == 0 {
                        let mut w = w;
                        let schema = self.schema.clone().expect("started");
                        w.write(&flatten(&RecordBatch::new_empty(schema)))
                            .map_err(|e| io(e, &self.closed))?;
                        w.into_inner().flush()?;
                    } else {
                        w.into_inner().flush()?;
                    }
                }
            }
            Format::Json => match self.json.take() {
                Some(mut w) => {
                    // The writer prints `[]` itself for a result without rows.
                    w.finish().map_err(|e| io(e, &self.closed))?;
                    let mut out = w.into_inner();
                    out.write_all(b"\n")?;
                    out.flush()?;
                }
                None => self.out.write_all(b"[]\n")?,
            },
            Format::Parquet => {
                if let Some(w) = self.parquet.take() {
                    w.close().map_err(|e| io(e, &self.closed))?;
                }
            }
            Format::Ndjson | Format::Markdown => {}
        }
        self.out.flush()?;
        Ok(self.rows)
    }
}

fn cell(array: &ArrayRef, row: usize) -> String {
    let options = FormatOptions::default().with_null("NULL");
    match ArrayFormatter::try_new(array.as_ref(), &options) {
        Ok(f) => f.value(row).to_string(),
        Err(_) => "?".into(),
    }
}

/// Nested columns (lists, structs, maps) as text, for formats without nested types.
pub fn flatten(batch: &RecordBatch) -> RecordBatch {
    let nested = |t: &DataType| {
        matches!(
            t,
            DataType::List(_)
                | DataType::LargeList(_)
                | DataType::Struct(_)
                | DataType::Map(_, _)
                | DataType::FixedSizeList(_, _)
        )
    };
    if !batch
        .schema()
        .fields()
        .iter()
        .any(|f| nested(f.data_type()))
    {
        return batch.clone();
    }
    let options = FormatOptions::default().with_null("");
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (f, c) in batch.schema().fields().iter().zip(batch.columns()) {
        if nested(f.data_type()) {
            let formatter =
                ArrayFormatter::try_new(c.as_ref(), &options).expect("nested values format");
            let text: StringArray = (0..c.len())
                .map(|i| (!c.is_null(i)).then(|| formatter.value(i).to_string()))
                .collect();
            fields.push(Field::new(f.name(), DataType::Utf8, true));
            columns.push(Arc::new(text));
        } else {
            fields.push(f.as_ref().clone());
            columns.push(c.clone());
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("same lengths")
}

/// The narrowest a column cut to the screen's last space may be.
const MIN_CUT_WIDTH: usize = 12;

/// A box-drawn table fitted to `opts.width`: long values are cut with `…`, and columns that
/// do not fit are left out (and named below the table).
pub fn render_table(schema: &SchemaRef, batches: &[RecordBatch], opts: TableOptions) -> String {
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let types: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| short_type(f.data_type()))
        .collect();
    let mut rows: Vec<Vec<String>> = Vec::new();
    for b in batches {
        let options = FormatOptions::default().with_null("NULL");
        let formatters: Vec<_> = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).ok())
            .collect();
        for r in 0..b.num_rows() {
            rows.push(
                formatters
                    .iter()
                    .map(|f| f.as_ref().map_or("?".into(), |f| f.value(r).to_string()))
                    .collect(),
            );
        }
    }
    // Display width, not char count: CJK letters take two columns, combining marks none.
    let cut = |s: &str, w: usize| -> String {
        let s = s.replace('\n', "↵").replace('\t', " ");
        if s.width() <= w {
            return s;
        }
        let mut t = String::new();
        let mut used = 0;
        for c in s.chars() {
            let cw = c.width().unwrap_or(0);
            if used + cw + 1 > w {
                break;
            }
            t.push(c);
            used += cw;
        }
        t.push('…');
        t
    };
    let mut widths: Vec<usize> = names
        .iter()
        .zip(&types)
        .map(|(n, t)| n.width().max(t.width()))
        .collect();
    for row in &rows {
        for (i, v) in row.iter().enumerate() {
            widths[i] = widths[i].max(v.replace('\t', " ").replace('\n', "↵").width());
        }
    }
    for w in widths.iter_mut() {
        *w = (*w).min(opts.max_column_width).max(1);
    }
    // Keep as many columns as fit; the border costs 3 per column plus 1. The first column that
    // does not fit is still shown, cut, when a dozen of its characters do.
    let mut shown = 0;
    let mut used = 1;
    let room = opts.width.max(20);
    for w in widths.iter_mut() {
        if used + *w + 3 > room && shown > 0 {
            let left = room.saturating_sub(used + 3);
            if left >= MIN_CUT_WIDTH {
                *w = left;
                shown += 1;
            }
            break;
        }
        used += *w + 3;
        shown += 1;
    }
    let line = |l: &str, m: &str, r: &str| -> String {
        let parts: Vec<String> = widths[..shown].iter().map(|w| "─".repeat(w + 2)).collect();
        format!("{l}{}{r}\n", parts.join(m))
    };
    let row_text = |cells: &[String]| -> String {
        let parts: Vec<String> = cells[..shown]
            .iter()
            .zip(&widths)
            .map(|(c, w)| {
                let c = cut(c, *w);
                format!(" {c}{} ", " ".repeat(w.saturating_sub(c.width())))
            })
            .collect();
        format!("│{}│\n", parts.join("│"))
    };
    let mut out = String::new();
    out.push_str(&line("┌", "┬", "┐"));
    out.push_str(&row_text(&names));
    out.push_str(&row_text(&types));
    out.push_str(&line("├", "┼", "┤"));
    for r in &rows {
        out.push_str(&row_text(r));
    }
    out.push_str(&line("└", "┴", "┘"));
    if shown < names.len() {
        out.push_str(&format!(
            "{} more column(s) not shown: {} (use --format csv, or select fewer columns)\n",
            names.len() - shown,
            names[shown..].join(", ")
        ));
    }
    out
}

fn short_type(t: &DataType) -> String {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "varchar".into(),
        DataType::Int64 => "bigint".into(),
        DataType::Int32 => "integer".into(),
        DataType::Int16 => "smallint".into(),
        DataType::Int8 => "tinyint".into(),
        DataType::Float64 => "double".into(),
        DataType::Float32 => "float".into(),
        DataType::Boolean => "boolean".into(),
        DataType::Date32 => "date".into(),
        DataType::Timestamp(_, Some(_)) => "timestamptz".into(),
        DataType::Timestamp(_, None) => "timestamp".into(),
        DataType::Decimal128(p, s) => format!("decimal({p},{s})"),
        DataType::List(f) | DataType::LargeList(f) => format!("{}[]", short_type(f.data_type())),
        other => other.to_string().to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_cuts_the_first_column_that_does_not_fit_when_a_dozen_characters_do() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("reasons", DataType::Utf8, false),
            Field::new("more", DataType::Utf8, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec!["Acme"])),
                Arc::new(StringArray::from(vec![
                    "usage down 80%; no scan for 40 days",
                ])),
                Arc::new(StringArray::from(vec!["x"])),
            ],
        )
        .unwrap();
        let at = |width: usize| {
            render_table(
                &schema,
                std::slice::from_ref(&batch),
                TableOptions {
                    width,
                    ..TableOptions::default()
                },
            )
        };
        let narrow = at(30);
        assert!(narrow.contains("│ usage down 80%;… │"), "{narrow}");
        let table = narrow.lines().filter(|l| !l.contains("not shown"));
        assert!(table.clone().all(|l| l.width() <= 30), "{narrow}");
        assert!(
            narrow.contains("1 more column(s) not shown: more"),
            "{narrow}"
        );
        // Too little room for a dozen characters: left out and named.
        let narrower = at(20);
        assert!(narrower.contains("not shown: reasons, more"), "{narrower}");
    }

    #[test]
    fn a_broken_pipe_anywhere_in_a_writers_error_means_the_reader_went_away() {
        let pipe = || std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        let arrow = arrow::error::ArrowError::IoError("writing".into(), pipe());
        let open = AtomicBool::new(false);
        assert!(matches!(io(arrow, &open), OutputError::Closed));
        let parquet = parquet::errors::ParquetError::External(Box::new(pipe()));
        assert!(matches!(io(parquet, &open), OutputError::Closed));
        let full = std::io::Error::other("No space left on device");
        let other = arrow::error::ArrowError::from(full);
        assert!(matches!(io(other, &open), OutputError::Io(m) if m.contains("No space")));
        // Arrow's CSV writer keeps only the text of an I/O error: the sink noticed it.
        let csv = arrow::error::ArrowError::CsvError("Broken pipe (os error 32)".into());
        assert!(matches!(
            io(csv, &AtomicBool::new(true)),
            OutputError::Closed
        ));
    }
}

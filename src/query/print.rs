//! The one printer: where a result goes (stdout, a file, the pager), in which format, and the
//! line on stderr that says how many rows it had. `hspq sql`, `hspq query`, `hspq status`,
//! `hspq demo` and every result of the shell print through it, so they agree on what a
//! person sees; [`output`](super::output) owns the formats themselves.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;

pub use crate::config::PrintOptions;

use super::output::{Format, OutputError, ResultWriter, TableOptions};
use super::QueryError;

impl Default for PrintOptions {
    fn default() -> Self {
        PrintOptions {
            format: Format::Table,
            output: None,
            append: false,
            max_rows: 40,
            width: screen_width(),
            column_width: TableOptions::default().max_column_width,
            pager: false,
            timer: false,
            count: true,
            more: "--max-rows or --format csv".into(),
        }
    }
}

impl PrintOptions {
    /// Every row into `path`, in `format`, replacing the file (`.export`, `hspq sql -o`).
    pub fn file(format: Format, path: PathBuf) -> PrintOptions {
        PrintOptions {
            format,
            output: Some(path),
            max_rows: usize::MAX,
            ..PrintOptions::default()
        }
    }

    fn table(&self) -> TableOptions {
        TableOptions {
            max_rows: self.max_rows,
            width: self.width,
            max_column_width: self.column_width,
        }
    }
}

/// What a printed result held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Printed {
    /// Rows in the result.
    pub rows: usize,
    /// Rows shown (fewer than `rows` when a format for people was limited).
    pub shown: usize,
}

/// Prints results as its options say.
#[derive(Clone, Debug, Default)]
pub struct Printer {
    /// The options; the shell's dot-commands change them between statements.
    pub options: PrintOptions,
}

impl Printer {
    /// A printer with these options.
    pub fn new(options: PrintOptions) -> Printer {
        Printer { options }
    }

    /// Runs `produce` (which writes a result into the writer it is given and returns the rows
    /// written and the result's schema) into a writer for the format and destination, finishes
    /// the output and says on stderr how many rows there were. A reader that went away
    /// (`| head`) is not an error.
    pub fn print(
        &self,
        produce: impl FnOnce(&mut ResultWriter<'_>) -> Result<(usize, Option<SchemaRef>), QueryError>,
    ) -> Result<Printed, QueryError> {
        let o = &self.options;
        let started = Instant::now();
        // The formats for people go to the screen through a buffer, so a result taller than the
        // screen can go to the pager instead; they hold at most max_rows rows.
        let paging = o.pager && o.output.is_none() && o.format.is_for_people();
        let mut screen: Vec<u8> = Vec::new();
        let mut out = match (&o.output, o.format) {
            (None, Format::Parquet) => {
                return Err(QueryError::Usage(
                    "parquet is written to a file: add --output FILE.parquet (.export FILE.parquet in the shell)".into(),
                ))
            }
            (Some(path), Format::Parquet) => ResultWriter::parquet(Box::new(self.open(path)?)),
            (Some(path), f) => ResultWriter::new(f, Box::new(self.open(path)?), o.table()),
            (None, f) if paging => ResultWriter::new(f, Box::new(&mut screen), o.table()),
            (None, f) => ResultWriter::new(
                f,
                Box::new(std::io::BufWriter::new(std::io::stdout())),
                o.table(),
            ),
        };
        let (rows, schema) = match produce(&mut out) {
            Err(QueryError::Output(OutputError::Closed)) => {
                return Ok(Printed { rows: 0, shown: 0 })
            }
            other => other?,
        };
        match out.finish(schema) {
            Ok(_) | Err(OutputError::Closed) => {}
            Err(e) => return Err(e.into()),
        }
        if paging {
            show(&screen);
        }
        let shown = if o.format.is_for_people() {
            rows.min(o.max_rows)
        } else {
            rows
        };
        let printed = Printed { rows, shown };
        if let Some(line) = self.footer(printed, started) {
            eprintln!("{line}");
        }
        Ok(printed)
    }

    /// Prints a result already in memory (status, listings).
    pub fn print_batches(
        &self,
        schema: SchemaRef,
        batches: &[RecordBatch],
    ) -> Result<Printed, QueryError> {
        self.print(move |out| {
            let mut rows = 0;
            for b in batches {
                rows += b.num_rows();
                out.write(b)?;
            }
            Ok((rows, Some(schema)))
        })
    }

    fn open(
        &self,
        path: &std::path::Path,
    ) -> Result<std::io::BufWriter<std::fs::File>, QueryError> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(self.options.append)
            .truncate(!self.options.append)
            .open(path)
            .map_err(|e| QueryError::Usage(format!("cannot write {}: {e}", path.display())))?;
        Ok(std::io::BufWriter::new(file))
    }

    /// The line after a result: the row count for people, where a file went, the time when
    /// the timer is on; nothing for a machine format on stdout.
    fn footer(&self, p: Printed, started: Instant) -> Option<String> {
        let o = &self.options;
        if !o.count {
            return None;
        }
        let rows = format!("{} row{}", p.rows, if p.rows == 1 { "" } else { "s" });
        let time = if o.timer {
            format!(" in {:.3} s", started.elapsed().as_secs_f64())
        } else {
            String::new()
        };
        let more = if p.shown < p.rows {
            format!(" ({} shown; {} for all)", p.shown, o.more)
        } else {
            String::new()
        };
        match &o.output {
            Some(path) => Some(format!("wrote {rows}{more} to {}{time}", path.display())),
            None if o.format == Format::Table || !more.is_empty() || o.timer => {
                Some(format!("{rows}{more}{time}"))
            }
            None => None,
        }
    }
}

/// The terminal's width in columns: `COLUMNS`, else the terminal's, else 120.
pub fn screen_width() -> usize {
    if let Some(n) = std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()) {
        return n;
    }
    window_size().map_or(120, |(_, cols)| cols)
}

/// The terminal's height in lines: `LINES`, else the terminal's, else 24.
pub fn screen_lines() -> usize {
    if let Some(n) = std::env::var("LINES").ok().and_then(|l| l.parse().ok()) {
        return n;
    }
    window_size().map_or(24, |(rows, _)| rows)
}

/// Rows and columns of the terminal on stdout, if it is one.
fn window_size() -> Option<(usize, usize)> {
    // SAFETY: TIOCGWINSZ fills a winsize struct, which is plain data.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) } == 0;
    (ok && size.ws_row > 0 && size.ws_col > 0)
        .then_some((size.ws_row as usize, size.ws_col as usize))
}

/// Prints `text`, through the pager (`$PAGER`, else `less -S`) when it is taller than the
/// screen less the prompt's line; straight to the screen if the pager cannot start.
fn show(text: &[u8]) {
    let lines = text.iter().filter(|b| **b == b'\n').count();
    if lines + 1 > screen_lines() {
        let pager = std::env::var("PAGER")
            .ok()
            .filter(|p| !p.trim().is_empty())
            .unwrap_or_else(|| "less -S".to_string());
        let child = std::process::Command::new("sh")
            .args(["-c", &pager])
            .stdin(std::process::Stdio::piped())
            .spawn();
        if let Ok(mut child) = child {
            if let Some(mut stdin) = child.stdin.take() {
                // The pager may quit before reading everything (q in less): not an error.
                let _ = stdin.write_all(text);
            }
            // 127: the shell found no such program; the result must not be lost.
            if !matches!(child.wait().map(|s| s.code()), Ok(Some(127))) {
                return;
            }
        }
        eprintln!("hspq: cannot start the pager {pager:?} (set PAGER, or .pager off)");
    }
    let mut stdout = std::io::stdout();
    let _ = stdout.write_all(text);
    let _ = stdout.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn footer(o: PrintOptions, rows: usize, shown: usize) -> Option<String> {
        Printer::new(o).footer(Printed { rows, shown }, Instant::now())
    }

    #[test]
    fn the_footer_counts_rows_for_people_and_is_silent_for_machines() {
        let table = PrintOptions::default();
        assert_eq!(footer(table.clone(), 1, 1).as_deref(), Some("1 row"));
        assert_eq!(
            footer(table, 50, 40).as_deref(),
            Some("50 rows (40 shown; --max-rows or --format csv for all)")
        );
        let csv = PrintOptions {
            format: Format::Csv,
            ..PrintOptions::default()
        };
        assert_eq!(footer(csv.clone(), 50, 50), None);
        let timed = footer(PrintOptions { timer: true, ..csv }, 2, 2).unwrap();
        assert!(timed.starts_with("2 rows in 0.0"), "{timed}");
        let file = PrintOptions::file(Format::Json, "out.json".into());
        assert_eq!(
            footer(file, 3, 3).as_deref(),
            Some("wrote 3 rows to out.json")
        );
    }
}

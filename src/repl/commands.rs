//! The shell's dot-commands: what each says (`.help`), how a line parses into one, and what
//! running it does to the shell's state.

use std::io::Write;
use std::path::PathBuf;
use std::str::FromStr;

use super::cancel::Cancel;

use super::run_script;
use super::{Last, State};
use crate::lake::Dataset;
use crate::query::output::Format;
use crate::query::print::{PrintOptions, Printer};
use crate::query::status::LakeStatus;
use crate::query::{bundled, views, Engine, QueryError};

/// The dot-commands, with their help (one place, printed by `.help`).
pub const DOT_COMMANDS: &[(&str, &str)] = &[
    (".help", "this list"),
    (".tables", "the views"),
    (".schema [VIEW]", "columns and types of one view or all"),
    (".queries", "the bundled queries and their parameters"),
    (".run NAME [KEY=VALUE ...]", "run a bundled query"),
    (".mode FORMAT", "table, csv, json, ndjson or markdown"),
    (".maxrows N", "rows the table and markdown formats show"),
    (".timer on|off", "print how long each statement took"),
    (
        ".pager on|off",
        "results taller than the screen go through $PAGER (less -S)",
    ),
    (
        ".output [FILE]",
        "send results to FILE, or back to the screen",
    ),
    (
        ".export FILE",
        "run the last statement again into FILE: .csv, .json, .ndjson, .parquet or .md",
    ),
    (".read FILE", "run the SQL in FILE"),
    (".status", "the lake: where, datasets, last sync"),
    (".quit", "leave (Ctrl-D too)"),
];

/// A parsed dot-command.
#[derive(Debug, PartialEq, Eq)]
pub enum DotCommand {
    /// `.help`
    Help,
    /// `.tables`
    Tables,
    /// `.schema [view]`
    Schema(Option<String>),
    /// `.queries`
    Queries,
    /// `.run NAME k=v...`
    Run(String, Vec<(String, String)>),
    /// `.mode FORMAT`
    Mode(Format),
    /// `.maxrows N`
    MaxRows(usize),
    /// `.timer on|off`
    Timer(bool),
    /// `.pager on|off`
    Pager(bool),
    /// `.output [FILE]`
    Output(Option<PathBuf>),
    /// `.export FILE`
    Export(PathBuf),
    /// `.read FILE`
    Read(PathBuf),
    /// `.status`
    Status,
    /// `.quit`
    Quit,
}

/// A dot-command the shell cannot run: the message says what it takes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadCommand(String);

impl FromStr for DotCommand {
    type Err = BadCommand;

    fn from_str(line: &str) -> Result<Self, Self::Err> {
        let mut words = line.split_whitespace();
        let cmd = words.next().unwrap_or_default();
        let rest: Vec<&str> = words.collect();
        let one = |what: &str| -> Result<&str, BadCommand> {
            rest.first()
                .copied()
                .ok_or_else(|| BadCommand(format!("{cmd} needs {what}")))
        };
        Ok(match cmd {
            ".help" => DotCommand::Help,
            ".tables" => DotCommand::Tables,
            ".schema" => DotCommand::Schema(rest.first().map(|s| s.to_string())),
            ".queries" => DotCommand::Queries,
            ".run" => {
                let name = one("a query name (see .queries)")?.to_string();
                let params = rest[1..]
                    .iter()
                    .map(|p| bundled::parse_param(p).map_err(|e| BadCommand(e.to_string())))
                    .collect::<Result<Vec<_>, _>>()?;
                DotCommand::Run(name, params)
            }
            ".mode" => {
                let f = one("a format: table, csv, json, ndjson, markdown")?;
                let format = <Format as clap::ValueEnum>::from_str(f, true).map_err(|_| {
                    BadCommand(format!(
                        "unknown format {f:?}: use table, csv, json, ndjson or markdown"
                    ))
                })?;
                if format == Format::Parquet {
                    return Err(BadCommand(
                        "parquet needs a file: use hspq sql --format parquet --output FILE".into(),
                    ));
                }
                DotCommand::Mode(format)
            }
            ".maxrows" => DotCommand::MaxRows(
                one("a number")?
                    .parse()
                    .map_err(|_| BadCommand(".maxrows needs a number".into()))?,
            ),
            ".timer" => match one("on or off")? {
                "on" => DotCommand::Timer(true),
                "off" => DotCommand::Timer(false),
                other => return Err(BadCommand(format!(".timer takes on or off, not {other:?}"))),
            },
            ".pager" => match one("on or off")? {
                "on" => DotCommand::Pager(true),
                "off" => DotCommand::Pager(false),
                other => return Err(BadCommand(format!(".pager takes on or off, not {other:?}"))),
            },
            ".output" => DotCommand::Output(rest.first().map(PathBuf::from)),
            ".read" => DotCommand::Read(PathBuf::from(one("a file")?)),
            ".export" => DotCommand::Export(PathBuf::from(one(
                "a file: .csv, .json, .ndjson, .parquet or .md",
            )?)),
            ".status" => DotCommand::Status,
            ".quit" | ".exit" => DotCommand::Quit,
            other => {
                let names: Vec<&str> = DOT_COMMANDS
                    .iter()
                    .map(|(n, _)| n.split(' ').next().unwrap_or(n))
                    .collect();
                let best = names
                    .iter()
                    .min_by_key(|n| strsim::levenshtein(n, other))
                    .copied()
                    .unwrap_or(".help");
                return Err(BadCommand(format!(
                    "unknown command {other}: did you mean {best}? (.help lists them)"
                )));
            }
        })
    }
}

/// The export format a file name asks for.
fn export_format(path: &std::path::Path) -> Result<Format, QueryError> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    Ok(match ext.as_deref() {
        Some("csv") => Format::Csv,
        Some("json") => Format::Json,
        Some("ndjson" | "jsonl") => Format::Ndjson,
        Some("parquet") => Format::Parquet,
        Some("md") => Format::Markdown,
        _ => {
            return Err(QueryError::Usage(format!(
                "cannot tell the format of {}: name it .csv, .json, .ndjson, .parquet or .md",
                path.display()
            )))
        }
    })
}

pub(super) fn dot(
    engine: &Engine,
    state: &mut State,
    cmd: DotCommand,
    cancel: &Cancel,
) -> Result<(), QueryError> {
    match cmd {
        DotCommand::Help => {
            for (name, what) in DOT_COMMANDS {
                println!("{name:<28} {what}");
            }
            println!(
                "{:<28} run against the views (several lines are fine)",
                "SQL ending with ;"
            );
        }
        DotCommand::Tables => {
            for name in views::names() {
                println!("{name}");
            }
        }
        DotCommand::Schema(Some(v)) if Dataset::from_name(&v).is_none() => {
            // A derived view: its columns as DuckDB sees them.
            let name = views::names()
                .into_iter()
                .find(|n| *n == v)
                .ok_or_else(|| QueryError::Usage(format!("no view {v:?}; .tables lists them")))?;
            let sql = format!("select column_name, column_type from (describe {name})");
            listing(state).print(|out| engine.run(&sql, out))?;
        }
        DotCommand::Schema(view) => {
            let views: Vec<Dataset> = match &view {
                Some(v) => Dataset::from_name(v).into_iter().collect(),
                None => Dataset::ALL.to_vec(),
            };
            for d in views {
                let cols: Vec<String> = d
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| format!("  {} {}", f.name(), views::duck_type(f.data_type())))
                    .collect();
                println!(
                    "{} (key: {})\n{}",
                    d.name(),
                    d.key().join(", "),
                    cols.join("\n")
                );
            }
        }
        DotCommand::Queries => print!("{}", bundled::describe_all()),
        DotCommand::Run(name, params) => {
            let q = bundled::find(&name)?;
            {
                let _running = cancel.start();
                state.printer.print(|out| q.run(engine, &params, out))?;
            }
            state.last = Some(Last::Query(name, params));
        }
        DotCommand::Mode(f) => state.printer.options.format = f,
        DotCommand::MaxRows(n) => state.printer.options.max_rows = n.max(1),
        DotCommand::Timer(on) => state.printer.options.timer = on,
        DotCommand::Pager(on) => state.printer.options.pager = on,
        DotCommand::Output(path) => {
            state.printer.options.append = path.is_some();
            state.printer.options.output = path;
        }
        DotCommand::Export(path) => {
            let format = export_format(&path)?;
            let last = state.last.clone().ok_or_else(|| {
                QueryError::Usage("nothing to export yet: run a statement first".into())
            })?;
            // Every row: the limit of the formats for people is for the screen.
            let export = Printer::new(PrintOptions {
                timer: state.printer.options.timer,
                ..PrintOptions::file(format, path)
            });
            let _running = cancel.start();
            export.print(|out| match last {
                Last::Sql(sql) => engine.run(&sql, out),
                Last::Query(name, params) => bundled::find(&name)?.run(engine, &params, out),
            })?;
        }
        DotCommand::Read(path) => {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| QueryError::Usage(format!("cannot read {}: {e}", path.display())))?;
            if !run_script(engine, state, &text, cancel) {
                return Err(QueryError::Usage(format!("{} had errors", path.display())));
            }
        }
        DotCommand::Status => {
            let status = LakeStatus::read(engine, &state.data)?;
            print!("{}", status.heading());
            let (schema, batch) = status.datasets();
            let quiet = Printer::new(PrintOptions {
                count: false,
                ..listing(state).options
            });
            quiet.print_batches(schema, &[batch])?;
            print!("{}", status.footing());
        }
        DotCommand::Quit => {}
    }
    let _ = std::io::stdout().flush();
    Ok(())
}

/// The printer of a listing the shell makes (`.status`, `.schema`): whole, whatever `.maxrows`
/// says, which is for results (a status cut at three datasets hid the rest without a word).
fn listing(state: &State) -> Printer {
    Printer::new(PrintOptions {
        max_rows: usize::MAX,
        ..state.printer.options.clone()
    })
}

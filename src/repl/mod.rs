//! `hspq repl`: the interactive SQL shell over the lake's views.
//!
//! The loop only routes input: dot-commands ([`DotCommand`], parsed with `FromStr`, their help
//! generated from one table) or SQL, run by the query engine and printed by the same
//! [`Printer`] as `hspq sql`. rustyline edits lines, keeps history in the user's data directory and asks the
//! [`Shell`] helper whether a statement is complete (it is when it ends with `;`) and what to
//! complete. Ctrl-C cancels a running query through DuckDB's interrupt and keeps the shell;
//! Ctrl-D leaves. With stdin not a terminal, statements are read from it, and a failing one
//! makes the exit status non-zero.

mod cancel;

use std::borrow::Cow;
use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::str::FromStr;

use cancel::Cancel;
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::{CmdKind, Highlighter};
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::{Context, Helper};

use crate::config::Config;
use crate::lake::Dataset;
use crate::query::output::Format;
use crate::query::print::{PrintOptions, Printer};
use crate::query::status::LakeStatus;
use crate::query::{bundled, split_statements, sql_segments, views, Engine, QueryError};

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

impl FromStr for DotCommand {
    type Err = String;

    fn from_str(line: &str) -> Result<Self, Self::Err> {
        let mut words = line.split_whitespace();
        let cmd = words.next().unwrap_or_default();
        let rest: Vec<&str> = words.collect();
        let one = |what: &str| -> Result<&str, String> {
            rest.first()
                .copied()
                .ok_or_else(|| format!("{cmd} needs {what}"))
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
                    .map(|p| bundled::parse_param(p))
                    .collect::<Result<Vec<_>, _>>()?;
                DotCommand::Run(name, params)
            }
            ".mode" => {
                let f = one("a format: table, csv, json, ndjson, markdown")?;
                let format = <Format as clap::ValueEnum>::from_str(f, true).map_err(|_| {
                    format!("unknown format {f:?}: use table, csv, json, ndjson or markdown")
                })?;
                if format == Format::Parquet {
                    return Err(
                        "parquet needs a file: use hspq sql --format parquet --output FILE".into(),
                    );
                }
                DotCommand::Mode(format)
            }
            ".maxrows" => DotCommand::MaxRows(
                one("a number")?
                    .parse()
                    .map_err(|_| ".maxrows needs a number".to_string())?,
            ),
            ".timer" => match one("on or off")? {
                "on" => DotCommand::Timer(true),
                "off" => DotCommand::Timer(false),
                other => return Err(format!(".timer takes on or off, not {other:?}")),
            },
            ".pager" => match one("on or off")? {
                "on" => DotCommand::Pager(true),
                "off" => DotCommand::Pager(false),
                other => return Err(format!(".pager takes on or off, not {other:?}")),
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
                    .min_by_key(|n| edit_distance(n, other))
                    .copied()
                    .unwrap_or(".help");
                return Err(format!(
                    "unknown command {other}: did you mean {best}? (.help lists them)"
                ));
            }
        })
    }
}

/// Levenshtein distance, for suggestions.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            cur.push(
                (prev[j] + usize::from(ca != *cb))
                    .min(prev[j + 1] + 1)
                    .min(cur[j] + 1),
            );
        }
        prev = cur;
    }
    prev[b.len()]
}

const KEYWORDS: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "GROUP BY",
    "ORDER BY",
    "HAVING",
    "LIMIT",
    "JOIN",
    "LEFT JOIN",
    "ON",
    "USING",
    "AS",
    "AND",
    "OR",
    "NOT",
    "IN",
    "IS NULL",
    "IS NOT NULL",
    "BETWEEN",
    "LIKE",
    "ILIKE",
    "DISTINCT",
    "COUNT",
    "SUM",
    "AVG",
    "MIN",
    "MAX",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "WITH",
    "UNION ALL",
    "DESCRIBE",
    "QUALIFY",
    "OVER",
    "PARTITION BY",
    "DATE_TRUNC",
    "COALESCE",
    "CAST",
    "CREATE TABLE",
    "COPY",
    "SUMMARIZE",
];

/// Words after which a table name comes.
const TABLE_POSITION: &[&str] = &[
    "from",
    "join",
    "describe",
    "summarize",
    "table",
    "into",
    "update",
];

/// Words that start a clause in which commas separate expressions, not tables.
const CLAUSES: &[&str] = &[
    "select", "where", "by", "on", "using", "having", "qualify", "window", "set", "values",
];

/// Completion candidates for the word ending at `pos` of `line`, the statement's earlier lines
/// being `before`: dot-commands at the start, bundled query names and then their parameters
/// after `.run`, views after `.schema`, formats after `.mode`; in SQL, views where a table goes
/// (after FROM, JOIN, ...), elsewhere the columns of the views the statement reads (all views'
/// when it names none yet), keywords, and what `engine` suggests for the statement so far
/// (DuckDB's own `sql_auto_complete`: functions and keywords; its names of views and columns
/// are left out, since it offers every view's columns wherever it is). Returns where the word
/// starts and the candidates.
pub fn candidates(
    before: &str,
    line: &str,
    pos: usize,
    engine: &dyn Fn(&str) -> Vec<String>,
) -> (usize, Vec<String>) {
    let head = &line[..pos];
    let start = head
        .rfind(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'))
        .map_or(0, |i| i + 1);
    let word = &head[start..];
    if before.trim().is_empty() && head.trim_start().starts_with('.') {
        let words: Vec<&str> = head.split_whitespace().collect();
        let typing_first = words.len() <= 1 && !head.ends_with(' ');
        let list: Vec<String> = match (typing_first, words.first().copied()) {
            (true, _) => DOT_COMMANDS
                .iter()
                .map(|(n, _)| n.split(' ').next().unwrap_or(n).to_string())
                .collect(),
            (false, Some(".run"))
                if words.len() == 1 || (words.len() == 2 && !head.ends_with(' ')) =>
            {
                bundled::all().into_iter().map(|q| q.name).collect()
            }
            (false, Some(".run")) => bundled::find(words[1])
                .map(|q| q.params.iter().map(|p| format!("{}=", p.name)).collect())
                .unwrap_or_default(),
            (false, Some(".schema")) => views::names().into_iter().map(String::from).collect(),
            (false, Some(".mode")) => ["table", "csv", "json", "ndjson", "markdown"]
                .map(String::from)
                .to_vec(),
            _ => Vec::new(),
        };
        return (
            start,
            list.into_iter().filter(|n| n.starts_with(word)).collect(),
        );
    }
    let lower = word.to_lowercase();
    // A qualified name (`billing.bill`) completes the part after the dot.
    let (start, lower) = match lower.rfind('.') {
        Some(dot) => (start + dot + 1, lower[dot + 1..].to_string()),
        None => (start, lower),
    };
    let statement = format!("{before}{line}");
    let earlier: Vec<String> = words_of(&format!("{before}{}", &line[..start]));
    let mut out: Vec<String> = Vec::new();
    // A table goes right after FROM, JOIN, ..., and after a comma of a FROM list (the nearest
    // clause word before it is FROM); after a table's name comes an alias or a keyword.
    let table_position = match earlier.last().map(String::as_str) {
        Some(w) if TABLE_POSITION.contains(&w) => true,
        Some(",") => earlier
            .iter()
            .rev()
            .find(|w| TABLE_POSITION.contains(&w.as_str()) || CLAUSES.contains(&w.as_str()))
            .is_some_and(|w| TABLE_POSITION.contains(&w.as_str())),
        _ => false,
    };
    if table_position {
        out.extend(
            views::names()
                .into_iter()
                .filter(|n| n.starts_with(&lower))
                .map(String::from),
        );
        return (start, out);
    }
    if lower.is_empty() {
        return (start, out);
    }
    let named: Vec<Dataset> = {
        let words = words_of(&statement);
        let mut named: Vec<Dataset> = Vec::new();
        for pair in words.windows(2) {
            if TABLE_POSITION.contains(&pair[0].as_str()) || pair[0] == "," {
                if let Some(d) = Dataset::from_name(&pair[1]) {
                    if !named.contains(&d) {
                        named.push(d);
                    }
                }
            }
        }
        if named.is_empty() {
            Dataset::ALL.to_vec()
        } else {
            named
        }
    };
    for d in named {
        for f in d.schema().fields() {
            if f.name().starts_with(&lower) && !out.contains(f.name()) {
                out.push(f.name().clone());
            }
        }
    }
    let upper = word.to_uppercase();
    let keyword_case = word.chars().next().is_some_and(|c| c.is_lowercase());
    let in_case = |k: &str| {
        if keyword_case {
            k.to_lowercase()
        } else {
            k.to_uppercase()
        }
    };
    for k in KEYWORDS.iter().filter(|k| k.starts_with(&upper)) {
        out.push(in_case(k));
    }
    if !word.contains('.') {
        let is_name = |w: &str| {
            Dataset::from_name(w).is_some()
                || Dataset::ALL
                    .iter()
                    .any(|d| d.schema().fields().iter().any(|f| f.name() == w))
        };
        for suggestion in engine(&format!("{before}{head}")) {
            // Keywords come with a trailing space.
            let w = suggestion.trim_end();
            if w.to_lowercase().starts_with(&lower) && !is_name(w) {
                out.push(in_case(w));
            }
        }
    }
    out.sort();
    out.dedup();
    (start, out)
}

/// The lowercase words and commas of SQL text, outside quotes and comments.
fn words_of(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (_, code) in sql_segments(sql).into_iter().filter(|(code, _)| *code) {
        for word in code.split_inclusive(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.')) {
            let (name, sep) = match word.char_indices().last() {
                Some((i, c)) if !(c.is_alphanumeric() || c == '_' || c == '.') => {
                    (&word[..i], Some(c))
                }
                _ => (word, None),
            };
            if !name.is_empty() {
                out.push(name.to_lowercase());
            }
            if sep == Some(',') {
                out.push(",".to_string());
            }
        }
    }
    out
}

/// Whether the input is a whole statement: a dot-command, or SQL ending with `;`.
pub fn is_complete(input: &str) -> bool {
    let t = input.trim();
    t.is_empty() || t.starts_with('.') || t.ends_with(';') || split_statements(t).is_empty()
}

/// rustyline's helper: completion, which sees the statement's earlier lines, and highlighting.
#[derive(Default)]
pub struct Shell {
    /// The lines of the statement being typed before the current one.
    before: String,
    /// Whether to highlight: the terminal shows colours and `NO_COLOR` is not set.
    color: bool,
    /// A connection to the engine's database, for DuckDB's own suggestions.
    duckdb: Option<duckdb::Connection>,
}

impl Shell {
    /// What DuckDB's `sql_auto_complete` suggests at the end of `sql`; nothing if it cannot.
    fn duckdb_suggestions(&self, sql: &str) -> Vec<String> {
        let Some(conn) = &self.duckdb else {
            return Vec::new();
        };
        let suggest = || -> duckdb::Result<Vec<String>> {
            let mut stmt = conn.prepare("select suggestion from sql_auto_complete(?)")?;
            let rows = stmt.query_map([sql], |r| r.get::<_, String>(0))?;
            rows.collect()
        };
        suggest().unwrap_or_default()
    }
}

impl Completer for Shell {
    type Candidate = Pair;
    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let (start, words) =
            candidates(&self.before, line, pos, &|sql| self.duckdb_suggestions(sql));
        Ok((
            start,
            words
                .into_iter()
                .map(|w| Pair {
                    display: w.clone(),
                    replacement: w,
                })
                .collect(),
        ))
    }
}

impl Hinter for Shell {
    type Hint = String;
}

impl Highlighter for Shell {
    fn highlight<'l>(&self, line: &'l str, _: usize) -> Cow<'l, str> {
        if self.color && !line.trim_start().starts_with('.') {
            Cow::Owned(highlight_sql(line))
        } else {
            Cow::Borrowed(line)
        }
    }

    fn highlight_char(&self, _: &str, _: usize, kind: CmdKind) -> bool {
        // Every edit may start or end a keyword, string or comment.
        self.color && kind != CmdKind::MoveCursor
    }
}

/// The escape codes of the highlighting: keywords bold blue, strings green, numbers yellow,
/// comments grey.
const KEYWORD: &str = "\x1b[1;34m";
const STRING: &str = "\x1b[32m";
const NUMBER: &str = "\x1b[33m";
const COMMENT: &str = "\x1b[90m";
const RESET: &str = "\x1b[0m";

/// Words highlighted as keywords.
const KEYWORD_WORDS: &[&str] = &[
    "select",
    "from",
    "where",
    "group",
    "by",
    "order",
    "having",
    "limit",
    "offset",
    "join",
    "left",
    "right",
    "full",
    "inner",
    "outer",
    "cross",
    "on",
    "using",
    "as",
    "and",
    "or",
    "not",
    "in",
    "is",
    "null",
    "between",
    "like",
    "ilike",
    "distinct",
    "case",
    "when",
    "then",
    "else",
    "end",
    "with",
    "union",
    "all",
    "except",
    "intersect",
    "describe",
    "qualify",
    "over",
    "partition",
    "window",
    "asc",
    "desc",
    "true",
    "false",
    "cast",
    "create",
    "table",
    "view",
    "copy",
    "to",
    "summarize",
    "filter",
    "exists",
    "any",
    "interval",
    "date",
    "insert",
    "into",
    "values",
    "set",
    "pivot",
    "unpivot",
    "explain",
    "analyze",
    "nulls",
    "first",
    "last",
    "replace",
    "exclude",
];

/// `line` with SQL keywords, strings, numbers and comments coloured; the same text otherwise,
/// so the cursor stays where rustyline puts it.
pub fn highlight_sql(line: &str) -> String {
    let mut out = String::with_capacity(line.len() * 2);
    for (code, text) in sql_segments(line) {
        if !code {
            let color = match text.as_bytes()[0] {
                b'\'' => STRING,
                b'"' => {
                    out.push_str(text);
                    continue;
                }
                _ => COMMENT,
            };
            out.push_str(color);
            out.push_str(text);
            out.push_str(RESET);
            continue;
        }
        let is_word = |c: char| c.is_alphanumeric() || c == '_';
        let mut rest = text;
        while !rest.is_empty() {
            let len = rest.find(|c: char| !is_word(c)).unwrap_or(rest.len());
            if len == 0 {
                let c = rest.chars().next().unwrap_or(' ');
                out.push(c);
                rest = &rest[c.len_utf8()..];
                continue;
            }
            let (word, after) = rest.split_at(len);
            let color = if word.chars().all(|c| c.is_ascii_digit()) {
                Some(NUMBER)
            } else if KEYWORD_WORDS.contains(&word.to_lowercase().as_str()) {
                Some(KEYWORD)
            } else {
                None
            };
            match color {
                Some(color) => {
                    out.push_str(color);
                    out.push_str(word);
                    out.push_str(RESET);
                }
                None => out.push_str(word),
            }
            rest = after;
        }
    }
    out
}

impl Validator for Shell {}

impl Helper for Shell {}

/// The prompt, and the prompt of a statement's further lines (as wide, so the text aligns).
const PROMPT: &str = "hspq> ";
const CONTINUE: &str = "  ..> ";

/// The shell's settings and where results go.
struct State {
    /// Format, row limit, timer, pager and `.output` file: the dot-commands change them.
    printer: Printer,
    /// The lake as the user named it.
    data: String,
    /// The last statement that ran, for `.export`.
    last: Option<Last>,
}

/// A statement `.export` can run again.
#[derive(Clone, Debug)]
enum Last {
    Sql(String),
    Query(String, Vec<(String, String)>),
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

/// How a shell session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// Every statement succeeded.
    Ok,
    /// A statement failed (a script goes on after it; its exit status says so).
    Failed,
    /// Ctrl-C stopped a script read from stdin.
    Interrupted,
}

/// Runs the shell over the lake `config` names, printing as `config.print` says (the
/// interactive shell starts with a table and the pager, a script with CSV); says how it ended.
pub async fn run(config: &Config) -> Result<Ended, QueryError> {
    let engine = Engine::open_as_of(&config.lake, config.as_of.as_ref()).await?;
    if let Some(n) = &engine.notice {
        eprintln!("hspq: {n}");
    }
    let interactive = std::io::stdin().is_terminal();
    let mut state = State {
        printer: Printer::new(config.print.clone()),
        data: config.lake.to_string(),
        last: None,
    };
    let take_ctrl_c = || {
        Cancel::install(engine.interrupter())
            .map_err(|e| QueryError::Usage(format!("cannot handle Ctrl-C: {e}")))
    };
    if !interactive {
        let cancel = take_ctrl_c()?;
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| QueryError::Usage(format!("reading stdin: {e}")))?;
        return Ok(match run_script(&engine, &mut state, &text, &cancel) {
            _ if cancel.pressed() => Ended::Interrupted,
            true => Ended::Ok,
            false => Ended::Failed,
        });
    }
    let history = dirs::data_dir().map(|d| d.join("hspq").join("history.txt"));
    // History holds whole statements (added when complete), not their lines; a second Tab
    // lists the candidates rather than cycling through them.
    let config = rustyline::Config::builder()
        .auto_add_history(false)
        .completion_type(rustyline::CompletionType::List)
        .build();
    let mut editor =
        rustyline::Editor::<Shell, rustyline::history::DefaultHistory>::with_config(config)
            .map_err(|e| QueryError::Usage(format!("cannot start the line editor: {e}")))?;
    editor.set_helper(Some(Shell {
        before: String::new(),
        color: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        duckdb: engine.connection().try_clone().ok(),
    }));
    // After the editor, which installs a SIGINT handler of its own.
    let cancel = take_ctrl_c()?;
    if let Some(h) = &history {
        if let Some(dir) = h.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = editor.load_history(h);
    }
    eprintln!(
        "hspq repl over {}: views {}. End statements with ';'. .help for commands, Ctrl-D to leave.",
        state.data,
        views::names().join(", ")
    );
    let mut ok = true;
    // The statement's lines so far; read line by line so that each continuation line gets a
    // prompt of its own (rustyline's multi-line editing has none).
    let mut pending = String::new();
    loop {
        let prompt = if pending.is_empty() { PROMPT } else { CONTINUE };
        if let Some(shell) = editor.helper_mut() {
            shell.before.clone_from(&pending);
        }
        match editor.readline(prompt) {
            Ok(line) => {
                if pending.is_empty() && line.trim().is_empty() {
                    continue;
                }
                pending.push_str(&line);
                pending.push('\n');
                if !is_complete(&pending) {
                    continue;
                }
                let input = std::mem::take(&mut pending);
                let _ = editor.add_history_entry(input.trim_end());
                // Written at once (appended, so shells open side by side keep each other's), so
                // a closed terminal or a killed shell loses none of it.
                if let Some(h) = &history {
                    let _ = editor.append_history(h);
                }
                cancel.pressed();
                if !run_input(&engine, &mut state, &input, &cancel) {
                    ok = false;
                }
                if matches!(input.trim().parse::<DotCommand>(), Ok(DotCommand::Quit)) {
                    break;
                }
            }
            // Ctrl-C at a prompt drops the line and the statement's earlier lines.
            Err(ReadlineError::Interrupted) => pending.clear(),
            Err(ReadlineError::Eof) => break,
            Err(e) => {
                eprintln!("hspq: {e}");
                break;
            }
        }
    }
    Ok(if ok { Ended::Ok } else { Ended::Failed })
}

/// Runs a script: dot-command lines and `;`-terminated SQL. Returns whether all succeeded; stops
/// at the first Ctrl-C.
fn run_script(engine: &Engine, state: &mut State, text: &str, cancel: &Cancel) -> bool {
    let mut ok = true;
    let mut pending = String::new();
    for line in text.lines() {
        if pending.trim().is_empty() && line.trim_start().starts_with('.') {
            let dot = line.trim().to_string();
            ok &= run_input(engine, state, &dot, cancel);
            if matches!(dot.parse::<DotCommand>(), Ok(DotCommand::Quit)) {
                return ok;
            }
            if cancel.was_pressed() {
                return false;
            }
            continue;
        }
        pending.push_str(line);
        pending.push('\n');
        if is_complete(&pending) {
            ok &= run_input(engine, state, &pending, cancel);
            pending.clear();
            if cancel.was_pressed() {
                return false;
            }
        }
    }
    if !pending.trim().is_empty() {
        ok &= run_input(engine, state, &pending, cancel);
    }
    ok
}

/// One input: a dot-command or SQL. Prints errors; returns whether it succeeded.
fn run_input(engine: &Engine, state: &mut State, input: &str, cancel: &Cancel) -> bool {
    let t = input.trim();
    if t.is_empty() {
        return true;
    }
    if t.starts_with('.') {
        return match t.parse::<DotCommand>() {
            Ok(cmd) => match dot(engine, state, cmd, cancel) {
                Ok(()) => true,
                Err(e) => {
                    eprintln!("hspq: {e}");
                    false
                }
            },
            Err(e) => {
                eprintln!("hspq: {e}");
                false
            }
        };
    }
    for statement in split_statements(t) {
        let result = {
            let _running = cancel.start();
            state.printer.print(|out| engine.run(&statement, out))
        };
        match result {
            Ok(_) => state.last = Some(Last::Sql(statement)),
            Err(e) => {
                eprintln!("hspq: {e}");
                return false;
            }
        }
    }
    true
}

fn dot(
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
            state.printer.print(|out| engine.run(&sql, out))?;
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
                ..state.printer.options.clone()
            });
            quiet.print_batches(schema, &[batch])?;
            print!("{}", status.footing());
        }
        DotCommand::Quit => {}
    }
    let _ = std::io::stdout().flush();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_commands_parse_and_unknown_ones_get_a_suggestion() {
        assert_eq!(
            ".schema billing".parse(),
            Ok(DotCommand::Schema(Some("billing".into())))
        );
        assert_eq!(".mode CSV".parse(), Ok(DotCommand::Mode(Format::Csv)));
        assert_eq!(
            ".run churn_risk window_days=7".parse(),
            Ok(DotCommand::Run(
                "churn_risk".into(),
                vec![("window_days".into(), "7".into())]
            ))
        );
        assert_eq!(".timer on".parse(), Ok(DotCommand::Timer(true)));
        assert!(".tabels"
            .parse::<DotCommand>()
            .unwrap_err()
            .contains("did you mean .tables"));
        assert!(".maxrows x".parse::<DotCommand>().is_err());
        assert!(".mode parquet"
            .parse::<DotCommand>()
            .unwrap_err()
            .contains("--output"));
    }

    fn complete(before: &str, line: &str) -> Vec<String> {
        candidates(before, line, line.len(), &|_| Vec::new()).1
    }

    #[test]
    fn duckdb_suggests_functions_and_keywords_but_not_names_out_of_place() {
        let shell = Shell {
            duckdb: duckdb::Connection::open_in_memory().ok(),
            ..Shell::default()
        };
        // A view in DuckDB's catalog, so it has names of its own to offer.
        shell
            .duckdb
            .as_ref()
            .unwrap()
            .execute_batch("create view churn as select 1 as usage_value")
            .unwrap();
        let engine = |sql: &str| shell.duckdb_suggestions(sql);
        let at_end = |line: &str| candidates("", line, line.len(), &engine).1;
        let words = at_end("select regexp_ex");
        assert!(words.contains(&"regexp_extract".to_string()), "{words:?}");
        let upper = at_end("SELECT REGEXP_EX");
        assert!(upper.contains(&"REGEXP_EXTRACT".to_string()), "{upper:?}");
        // `usage_value` is a column of daily_usage and churn: offered once, by hspq's own
        // completion, which knows which views the statement reads.
        let in_billing = at_end("select usage from billing");
        assert!(
            !in_billing.contains(&"usage_value".to_string()),
            "{in_billing:?}"
        );
        let keyword = at_end("select 1 from churn wh");
        assert!(keyword.contains(&"where".to_string()), "{keyword:?}");
        // Where a table goes, only views.
        assert_eq!(
            at_end("select * from chu"),
            vec!["churn", "churn_weights", "churn_departures", "churn_events"]
        );
    }

    #[test]
    fn completion_knows_where_it_is() {
        assert_eq!(
            candidates("", ".ta", 3, &|_| Vec::new()),
            (0, vec![".tables".to_string()])
        );
        assert_eq!(
            candidates("", ".run churn_", 11, &|_| Vec::new()),
            (
                5,
                vec![
                    "churn_risk".to_string(),
                    "churn_backtest".to_string(),
                    "churn_signals".to_string()
                ]
            )
        );
        assert_eq!(
            complete("", ".run churn_risk "),
            vec!["window_days=", "as_of="]
        );
        assert_eq!(
            complete("", ".schema bil"),
            vec!["billing", "billing_totals"]
        );
        assert_eq!(complete("", ".mode n"), vec!["ndjson"]);
        // Where a table goes: views only, never a column.
        assert_eq!(
            complete("", "select * from bil"),
            vec!["billing", "billing_totals"]
        );
        assert_eq!(
            complete("", "select * from billing b join dail"),
            vec!["daily_usage"]
        );
        assert_eq!(
            complete("", "select * from periods, bil"),
            vec!["billing", "billing_totals"]
        );
        assert_eq!(complete("select *\n", "from eng"), vec!["engagement"]);
        assert_eq!(
            complete("", "select * from billing b, dail"),
            vec!["daily_usage"],
            "a comma of a FROM list with aliases"
        );
        // After a table's name comes an alias or a keyword, not another table.
        assert!(complete("", "select * from churn wh").contains(&"where".to_string()));
        assert!(complete("", "select a, bil").contains(&"billing_value".to_string()));
        // Elsewhere: the columns of the views the statement reads, and keywords.
        assert_eq!(
            complete("", "select billing_v"),
            vec!["billing_value"],
            "no view named yet: every view's columns"
        );
        assert_eq!(
            candidates("", "select security from billing", 15, &|_| Vec::new()),
            (7, vec!["security_center_id".to_string()])
        );
        let (start, cols) = candidates("", "select prod from daily_usage", 11, &|_| Vec::new());
        assert_eq!((start, cols), (7, vec!["product".to_string()]));
        assert_eq!(
            complete("select count(*)\nfrom churn\n", "where failure_r"),
            vec!["failure_ratio"]
        );
        assert_eq!(
            complete("", "select * from churn where billing_v"),
            Vec::<String>::new(),
            "billing_value is not a column of churn"
        );
        assert_eq!(
            complete("", "select churn.failure_r"),
            vec!["failure_ratio"]
        );
        assert_eq!(complete("", "sel"), vec!["select"]);
        assert_eq!(complete("", "SEL"), vec!["SELECT"]);
        // A FROM inside a string is no table position.
        assert!(!complete("", "select 'from' || bil").contains(&"billing".to_string()));
    }

    #[test]
    fn highlighting_colours_keywords_strings_numbers_and_comments_only() {
        assert_eq!(
            highlight_sql("SELECT x, 'from' as \"select\", 42 -- from"),
            format!(
                "{KEYWORD}SELECT{RESET} x, {STRING}'from'{RESET} {KEYWORD}as{RESET} \"select\", \
                 {NUMBER}42{RESET} {COMMENT}-- from{RESET}"
            )
        );
        assert_eq!(highlight_sql("billing_value1"), "billing_value1");
    }

    #[test]
    fn a_statement_is_complete_at_its_semicolon() {
        assert!(!is_complete("select *\nfrom billing"));
        assert!(is_complete("select *\nfrom billing;"));
        assert!(is_complete(".tables"));
        assert!(is_complete("  "));
    }
}

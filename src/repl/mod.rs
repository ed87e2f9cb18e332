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
mod commands;
mod complete;
mod highlight;

use std::io::{IsTerminal, Read};

use cancel::Cancel;
use rustyline::error::ReadlineError;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::Helper;

use crate::config::Config;
use crate::query::print::Printer;
use crate::query::{split_statements, views, Engine, QueryError};
use commands::dot;
pub use commands::{DotCommand, DOT_COMMANDS};
pub use complete::candidates;
pub use highlight::highlight_sql;

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

impl Hinter for Shell {
    type Hint = String;
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

#[cfg(test)]
mod tests {
    use super::highlight::{COMMENT, KEYWORD, NUMBER, RESET, STRING};
    use super::*;
    use crate::query::output::Format;

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
            .to_string()
            .contains("did you mean .tables"));
        assert!(".maxrows x".parse::<DotCommand>().is_err());
        assert!(".mode parquet"
            .parse::<DotCommand>()
            .unwrap_err()
            .to_string()
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

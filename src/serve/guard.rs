//! What of a client's SQL may run: only reads, as DuckDB's own parser and binder see them.
//!
//! A text reaches DuckDB only after [`check`] has had DuckDB parse and bind it (without running
//! it, see [`crate::query::raw`]) and found exactly one statement, a query, or an `EXPLAIN
//! [ANALYZE]` of one; the text that then runs is the text that was checked. No scan of the text
//! by hand decides anything: quoting, comments and nesting are DuckDB's to read. Splitting a
//! simple query into its statements ([`split`]) is only a convenience: a piece cut in the wrong
//! place fails the check, it cannot smuggle a second statement through.
//!
//! A `PIVOT` without its values listed (`PIVOT v ON k USING sum(x)`) is refused: DuckDB makes it
//! a `CREATE TYPE` for the values and a query over that type, and a type created in the
//! session is a write (harmless in memory, but allowing it means allowing `CREATE`). Listing the
//! values (`PIVOT v ON k IN ('a', 'b') USING sum(x)`) is one query and runs.

use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

use crate::query::raw::{InspectError, Inspected, Inspector, ParamType, StatementKind};
use crate::query::SqlError;

/// A statement found to be a read, ready to run.
#[derive(Debug, PartialEq, Clone)]
pub struct Allowed {
    /// The text to run: the client's, or for `EXPLAIN` one rebuilt around the checked query.
    pub sql: String,
    /// DuckDB's types for its parameters.
    pub parameters: Vec<ParamType>,
}

/// Why a statement does not run.
#[derive(Debug, PartialEq)]
pub enum Refusal {
    /// It would write or change something (SQLSTATE 25006, read-only transaction).
    Write(String),
    /// It holds more than one statement where one is expected (42601, syntax error).
    NotOne(String),
    /// DuckDB could not parse or bind it: its own message.
    Sql(String),
}

impl Refusal {
    /// The SQLSTATE a client is told.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Write(_) => "25006",
            Refusal::NotOne(_) => "42601",
            Refusal::Sql(m) => sqlstate(m),
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Refusal::Write(m) | Refusal::NotOne(m) | Refusal::Sql(m) => m,
        }
    }
}

/// The SQLSTATE PostgreSQL gives the error DuckDB describes in `message` (see
/// [`SqlError::sqlstate`]).
pub fn sqlstate(message: &str) -> &'static str {
    SqlError::new(message).sqlstate()
}

/// Comments a statement may open (see [`check`]).
const MAX_COMMENTS: usize = 1000;

/// What DuckDB statements this server runs, for messages.
const WHAT_RUNS: &str = "run SELECT, WITH, FROM, VALUES, TABLE, SHOW, DESCRIBE, SUMMARIZE or \
                         EXPLAIN over the lake's views";

/// The words a query begins with. DuckDB's grammar, PostgreSQL's, tells a statement's kind by
/// its first word (after parentheses); one that begins otherwise is never bound.
const QUERY_WORDS: [&str; 13] = [
    "SELECT",
    "WITH",
    "VALUES",
    "TABLE",
    "FROM",
    "SHOW",
    "DESCRIBE",
    "DESC",
    "SUMMARIZE",
    "PIVOT",
    "UNPIVOT",
    "PIVOT_WIDER",
    "PIVOT_LONGER",
];

/// A session's guard: [`check`] on its parser connection, remembering the reads it found by
/// their text. A dashboard or a driver sends the same statements again and again, and the
/// verdict on a text cannot change during a session: DuckDB's parser, its functions, the table
/// macros and the views' columns (cast to the contract's types) are fixed; a sync changes only
/// the files the views read. Checking cost a tenth of the server's time under a dashboard mix
/// (it parses the text twice and binds it once more than running it does).
pub struct Guard {
    inspector: Inspector,
    reads: std::cell::RefCell<std::collections::HashMap<String, Allowed>>,
}

/// How many texts a session remembers (all are forgotten when it is full).
const READS_KEPT: usize = 256;

/// Texts longer than this are checked each time (not worth keeping).
const LONGEST_KEPT: usize = 64 << 10;

impl Guard {
    pub fn new(inspector: Inspector) -> Guard {
        Guard {
            inspector,
            reads: Default::default(),
        }
    }

    /// [`check`], or the verdict on the same text before.
    pub fn check(&self, sql: &str) -> Result<Allowed, Refusal> {
        if let Some(allowed) = self.reads.borrow().get(sql) {
            return Ok(allowed.clone());
        }
        let allowed = check(&self.inspector, sql)?;
        if sql.len() <= LONGEST_KEPT {
            let mut reads = self.reads.borrow_mut();
            if reads.len() >= READS_KEPT {
                reads.clear();
            }
            reads.insert(sql.to_string(), allowed.clone());
        }
        Ok(allowed)
    }
}

/// Whether `sql` is one read, by DuckDB's parser and binder; nothing of it runs here.
///
/// Binding is not free of effects: DuckDB creates `EXPORT DATABASE`'s folder when it binds the
/// statement. So a statement is bound only when its first word is one a query begins with;
/// that word can only refuse, never admit: DuckDB must then find one statement, a query.
pub fn check(inspector: &Inspector, sql: &str) -> Result<Allowed, Refusal> {
    if unguarded() {
        return Ok(Allowed {
            sql: sql.to_string(),
            parameters: Vec::new(),
        });
    }
    // DuckDB's lexer slows down on nested comments (50,000 took minutes, beyond any cancel).
    if sql.matches("/*").count() > MAX_COMMENTS {
        return Err(Refusal::Sql(format!(
            "a statement may open at most {MAX_COMMENTS} comments (/* */) here"
        )));
    }
    match leading_word(sql) {
        Err(refusal) => Err(refusal),
        Ok(None) => Err(Refusal::Sql("an empty statement".into())),
        Ok(Some(word)) if word == "EXPLAIN" => explain(inspector, sql),
        Ok(Some(word)) if QUERY_WORDS.contains(&word.as_str()) => query(inspector, sql),
        Ok(Some(word)) => Err(refused(&word)),
    }
}

/// Whether this guard is switched off, so that a test can show the second one
/// ([`super::confine`]) holding alone: only in a debug build, never in a release.
pub fn unguarded() -> bool {
    cfg!(debug_assertions) && std::env::var_os("HSPQ_SERVE_TEST_UNGUARDED").is_some()
}

fn refused(what: &str) -> Refusal {
    Refusal::Write(format!(
        "hspq serve is read-only: {what} statements are refused ({WHAT_RUNS})"
    ))
}

/// `sql`, which begins as a query does, if DuckDB finds it one query calling only functions
/// that read. Its parse tree is checked before it is bound: some table functions act when
/// bound.
fn query(inspector: &Inspector, sql: &str) -> Result<Allowed, Refusal> {
    match inspector.parse_tree(sql) {
        Ok(tree) => functions(inspector, &tree)?,
        // Not one query (a PIVOT without its values is two statements), or not parsed.
        Err(cannot) => {
            return Err(match inspector.count(sql) {
                Ok(n) if n != 1 => not_one(sql, n),
                Err(InspectError::NotOne(n)) => not_one(sql, n),
                Err(InspectError::Sql(message)) => Refusal::Sql(message),
                Ok(_) => Refusal::Write(format!(
                    "hspq serve is read-only: cannot tell what this query calls ({cannot})"
                )),
            })
        }
    }
    match inspector.prepare_one(sql) {
        Ok(Inspected {
            kind: StatementKind::Select,
            parameters,
        }) => Ok(Allowed {
            sql: sql.to_string(),
            parameters,
        }),
        Ok(Inspected {
            kind: StatementKind::Other(name),
            ..
        }) => Err(refused(name)),
        Ok(Inspected {
            kind: StatementKind::Explain,
            ..
        }) => Err(refused("nested EXPLAIN")),
        Err(InspectError::NotOne(n)) => Err(not_one(sql, n)),
        Err(InspectError::Sql(message)) => Err(Refusal::Sql(message)),
    }
}

/// Why a text of `n` statements is refused where one is expected.
fn not_one(sql: &str, n: usize) -> Refusal {
    if n == 0 {
        Refusal::Sql("an empty statement".into())
    } else if leading_word(sql).ok().flatten().as_deref() == Some("PIVOT")
        || sql.to_ascii_uppercase().contains("PIVOT")
    {
        Refusal::Write(format!(
            "hspq serve is read-only: a PIVOT without its values listed is refused (DuckDB \
             runs it as {n} statements, one of them CREATE TYPE): list them, as in \
             PIVOT billing ON product IN ('SNS', 'PAT') USING sum(billing_value)"
        ))
    } else {
        Refusal::NotOne(format!(
            "cannot run {n} statements as one: a prepared statement holds one (send them \
             one at a time, or in a simple query)"
        ))
    }
}

/// The table functions a query may call: those that read (the lake's files, within DuckDB's
/// sandbox) or describe. A query is not always only a read: DuckDB's `enable_logging()`,
/// `enable_profiling()` and `checkpoint()` change the database or write files, and `query()`
/// runs SQL, so a table function not listed here (or a table macro) is refused.
const TABLE_FUNCTIONS: [&str; 60] = [
    "range",
    "generate_series",
    "unnest",
    "repeat",
    "repeat_row",
    "glob",
    "read_parquet",
    "parquet_scan",
    "read_csv",
    "read_csv_auto",
    "read_json",
    "read_json_auto",
    "read_ndjson",
    "read_ndjson_auto",
    "read_json_objects",
    "read_json_objects_auto",
    "read_ndjson_objects",
    "read_text",
    "read_blob",
    "sniff_csv",
    "parquet_metadata",
    "parquet_schema",
    "parquet_file_metadata",
    "parquet_kv_metadata",
    "parquet_full_metadata",
    "parquet_bloom_probe",
    "json_each",
    "json_tree",
    "duckdb_columns",
    "duckdb_constraints",
    "duckdb_databases",
    "duckdb_dependencies",
    "duckdb_functions",
    "duckdb_indexes",
    "duckdb_keywords",
    "duckdb_schemas",
    "duckdb_sequences",
    "duckdb_settings",
    "duckdb_tables",
    "duckdb_types",
    "duckdb_views",
    "duckdb_extensions",
    "duckdb_memory",
    "duckdb_optimizers",
    "duckdb_temporary_files",
    "duckdb_variables",
    "pragma_table_info",
    "pragma_version",
    "pragma_platform",
    "pragma_database_size",
    "pragma_collations",
    "pragma_show",
    "pragma_storage_info",
    "pragma_metadata_info",
    "pragma_user_agent",
    "pg_timezone_names",
    "icu_calendar_names",
    "test_all_types",
    "summary",
    "duckdb_logs",
];

/// Scalar functions with an effect beyond their result.
const SCALAR_EFFECTS: [&str; 1] = ["write_log"];

/// Refuses a query that calls a table function not in [`TABLE_FUNCTIONS`] (nor a table macro)
/// or a scalar one with an effect, wherever in it: its parse tree is DuckDB's.
fn functions(inspector: &Inspector, tree: &serde_json::Value) -> Result<(), Refusal> {
    let macros = inspector
        .table_macros()
        .map_err(|e| Refusal::Sql(e.to_string()))?;
    let mut stack = vec![tree];
    while let Some(node) = stack.pop() {
        match node {
            serde_json::Value::Object(fields) => {
                let name = || {
                    fields
                        .get("function")
                        .and_then(|f| f.get("function_name"))
                        .or_else(|| fields.get("function_name"))
                        .and_then(|n| n.as_str())
                        .unwrap_or_default()
                        .to_ascii_lowercase()
                };
                if fields.get("type").and_then(|t| t.as_str()) == Some("TABLE_FUNCTION") {
                    let name = name();
                    if !TABLE_FUNCTIONS.contains(&name.as_str()) && !macros.contains(&name) {
                        return Err(Refusal::Write(format!(
                            "hspq serve is read-only: the table function {name}() is refused (it \
                             runs SQL, changes DuckDB's settings or writes); read the views"
                        )));
                    }
                    // A reader's options that write: read_csv's rejects tables (temporary
                    // tables that would hide the lake's views for the rest of the session).
                    let arguments = fields
                        .get("function")
                        .and_then(|f| f.get("children"))
                        .and_then(|c| c.as_array())
                        .into_iter()
                        .flatten();
                    for argument in arguments {
                        let option = argument
                            .get("left")
                            .and_then(|l| l.get("column_names"))
                            .and_then(|n| n.get(0))
                            .and_then(|n| n.as_str())
                            .unwrap_or_default()
                            .to_ascii_lowercase();
                        if option.contains("reject") {
                            return Err(Refusal::Write(format!(
                                "hspq serve is read-only: {name}()'s option {option} is refused \
                                 (it stores rejected rows in a table)"
                            )));
                        }
                    }
                } else if fields.get("class").and_then(|t| t.as_str()) == Some("FUNCTION") {
                    let name = name();
                    if SCALAR_EFFECTS.contains(&name.as_str()) {
                        return Err(Refusal::Write(format!(
                            "hspq serve is read-only: {name}() is refused"
                        )));
                    }
                }
                stack.extend(fields.values());
            }
            serde_json::Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    Ok(())
}

/// `EXPLAIN [ANALYZE] X` runs only when X alone is a query (ANALYZE runs X), and what runs is
/// rebuilt from the X that was checked.
fn explain(inspector: &Inspector, sql: &str) -> Result<Allowed, Refusal> {
    let refused = |why: &str| {
        Refusal::Write(format!(
            "hspq serve is read-only: EXPLAIN is run only over one query ({why})"
        ))
    };
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql)
        .tokenize_with_location()
        .map_err(|e| Refusal::Sql(e.to_string()))?;
    let offsets = Offsets::new(sql);
    let mut words = tokens
        .iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)));
    if words.next().and_then(word) != Some("EXPLAIN".into()) {
        return Err(refused("it does not start with EXPLAIN"));
    }
    let mut next = words.next();
    let analyze = matches!(next.and_then(word).as_deref(), Some("ANALYZE" | "ANALYSE"));
    if analyze {
        next = words.next();
    }
    let Some(start) = next.filter(|t| t.token != Token::EOF) else {
        return Err(refused("nothing to explain"));
    };
    let inner = &sql[offsets.of(start)..];
    match leading_word(inner) {
        Ok(Some(w)) if QUERY_WORDS.contains(&w.as_str()) => {}
        Ok(Some(w)) => return Err(refused(&format!("not over {w}"))),
        Ok(None) => return Err(refused("nothing to explain")),
        Err(refusal) => return Err(refusal),
    }
    query(inspector, inner).map_err(|r| match r {
        Refusal::Sql(m) => Refusal::Sql(m),
        other => refused(other.message()),
    })?;
    let rebuilt = format!("EXPLAIN {}{inner}", if analyze { "ANALYZE " } else { "" });
    match inspector.prepare_one(&rebuilt) {
        Ok(Inspected {
            kind: StatementKind::Explain,
            parameters,
        }) => Ok(Allowed {
            sql: rebuilt,
            parameters,
        }),
        Ok(_) | Err(InspectError::NotOne(_)) => Err(refused("it reads as something else")),
        Err(InspectError::Sql(m)) => Err(Refusal::Sql(m)),
    }
}

/// A simple query's statements, cut at the semicolons PostgreSQL's lexer sees (quotes, dollar
/// quotes, E-strings and nested comments respected); pieces holding only comments are left
/// out. Text the lexer cannot read is one piece, for DuckDB to judge.
pub fn split(sql: &str) -> Vec<&str> {
    let Ok(tokens) = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize_with_location() else {
        return if sql.trim().is_empty() {
            Vec::new()
        } else {
            vec![sql]
        };
    };
    let offsets = Offsets::new(sql);
    let mut pieces = Vec::new();
    let (mut start, mut empty) = (0, true);
    for t in &tokens {
        match t.token {
            Token::SemiColon => {
                let end = offsets.of(t);
                if !empty {
                    pieces.push(sql[start..end].trim());
                }
                (start, empty) = (end + 1, true);
            }
            Token::Whitespace(_) | Token::EOF => {}
            _ => empty = false,
        }
    }
    if !empty {
        pieces.push(sql[start..].trim());
    }
    pieces
}

/// The first word of `sql` in capitals, after comments and opening parentheses (`None` for
/// text without any); an error when PostgreSQL's lexer cannot read it.
fn leading_word(sql: &str) -> Result<Option<String>, Refusal> {
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql)
        .tokenize_with_location()
        .map_err(|e| Refusal::Sql(format!("cannot read the statement: {e}")))?;
    Ok(tokens
        .iter()
        .find(|t| !matches!(t.token, Token::Whitespace(_) | Token::LParen))
        .filter(|t| t.token != Token::EOF)
        .map(|t| word(t).unwrap_or_else(|| t.token.to_string())))
}

/// An unquoted word in capitals.
fn word(t: &TokenWithSpan) -> Option<String> {
    match &t.token {
        Token::Word(w) if w.quote_style.is_none() => Some(w.value.to_ascii_uppercase()),
        _ => None,
    }
}

/// Byte offsets of the tokenizer's (line, column) locations, which count characters.
pub(super) struct Offsets<'a> {
    sql: &'a str,
    lines: Vec<usize>,
}

impl<'a> Offsets<'a> {
    pub(super) fn new(sql: &'a str) -> Self {
        let lines = std::iter::once(0)
            .chain(sql.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Offsets { sql, lines }
    }

    pub(super) fn of(&self, t: &TokenWithSpan) -> usize {
        let start = t.span.start;
        let line = self.lines[(start.line as usize)
            .saturating_sub(1)
            .min(self.lines.len() - 1)];
        self.sql[line..]
            .char_indices()
            .nth((start.column as usize).saturating_sub(1))
            .map_or(self.sql.len(), |(i, _)| line + i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::raw::Database;

    #[test]
    fn a_simple_query_splits_where_postgresql_would() {
        assert_eq!(
            split("select $$'$$; select E'\\';' ; -- a;b\n select 'c;d' /* e; /* f; */ g; */"),
            vec![
                "select $$'$$",
                "select E'\\';'",
                "-- a;b\n select 'c;d' /* e; /* f; */ g; */"
            ]
        );
        assert_eq!(split(" ; -- only a comment\n;"), Vec::<&str>::new());
        assert_eq!(
            split("select 'é'; select 2"),
            vec!["select 'é'", "select 2"]
        );
        assert_eq!(
            split("select 'unterminated; copy"),
            vec!["select 'unterminated; copy"]
        );
    }

    #[test]
    fn only_reads_pass_and_explain_is_rebuilt_around_the_checked_query() {
        let db = Database::open_in_memory().unwrap();
        let conn = db.connection().unwrap();
        conn.execute_batch("create view v as select 'a' as k, 1 as x")
            .unwrap();
        let i = db.inspector(None).unwrap();
        assert_eq!(check(&i, "select * from v").unwrap().sql, "select * from v");
        assert_eq!(
            check(&i, "explain /* c */ analyze select * from v")
                .unwrap()
                .sql,
            "EXPLAIN ANALYZE select * from v"
        );
        for (sql, code) in [
            ("explain analyze copy (select 42) to 'x.csv'", "25006"),
            ("select 1; copy (select 42) to 'x.csv'; select 1", "42601"),
            ("pivot v on k using sum(x)", "25006"),
            ("attach 'x.duckdb'", "25006"),
            ("set memory_limit = '1GB'", "25006"),
            ("select * from nowhere", "42P01"),
            ("export database 'hspq-guard-export'", "25006"),
            ("explain export database 'hspq-guard-export'", "25006"),
            (
                "explain analyze (export database 'hspq-guard-export')",
                "25006",
            ),
        ] {
            assert_eq!(check(&i, sql).map_err(|r| r.code()), Err(code), "{sql}");
        }
        assert!(check(&i, "pivot v on k in ('a') using sum(x)").is_ok());
        assert!(check(&i, "select * from range(3), (select unnest([1, 2]))").is_ok());
        for effect in [
            "select * from enable_logging(storage='file', storage_path='.')",
            "select 1 from (select * from main.enable_profiling())",
            "with x as (select * from checkpoint()) select * from x",
            "select * from query('select 1')",
            "select write_log('x')",
            "select * from v where k in (select * from truncate_duckdb_logs())",
            "select * from json_execute_serialized_sql(json_serialize_sql('select 1'))",
            "select * from read_csv('x.csv', store_rejects = true, rejects_table = 'v')",
        ] {
            assert_eq!(
                check(&i, effect).map_err(|r| r.code()),
                Err("25006"),
                "{effect}"
            );
        }
        assert!(check(&i, "explain explain analyze copy (select 1) to 'x.csv'").is_err());
        // DuckDB's lexer would take minutes over these.
        let comments = format!("select 1 {}{}", "/*".repeat(1001), "*/".repeat(1001));
        assert!(matches!(check(&i, &comments), Err(Refusal::Sql(m)) if m.contains("comments")));
        // Refused before DuckDB binds them: binding EXPORT makes its folder.
        assert!(!std::path::Path::new("hspq-guard-export").exists());
        assert!(!std::path::Path::new("x.csv").exists());
    }
}

//! Tab completion: views after FROM and JOIN, their columns elsewhere, keywords and
//! dot-commands.

use rustyline::completion::{Completer, Pair};
use rustyline::Context;

use super::commands::DOT_COMMANDS;
use super::Shell;
use crate::lake::Dataset;
use crate::query::{bundled, sql_segments, views};

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

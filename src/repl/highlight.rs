//! Highlighting as the user types: keywords, strings, numbers and comments, on a terminal
//! that wants colour.

use std::borrow::Cow;

use rustyline::highlight::{CmdKind, Highlighter};

use super::Shell;
use crate::query::sql_segments;

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
pub(super) const KEYWORD: &str = "\x1b[1;34m";
pub(super) const STRING: &str = "\x1b[32m";
pub(super) const NUMBER: &str = "\x1b[33m";
pub(super) const COMMENT: &str = "\x1b[90m";
pub(super) const RESET: &str = "\x1b[0m";

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

//! Server-side cursors: `DECLARE name [BINARY] [NO SCROLL] CURSOR [WITH[OUT] HOLD] FOR query`,
//! `FETCH`, `MOVE` and `CLOSE`, as psycopg2's named cursors, Tableau and ODBC-style clients
//! read. DuckDB has none: a cursor is a result read as the client fetches it
//! ([`super::stream`]), so it reads one version of the lake however long it stays open. Only
//! the query inside is SQL for DuckDB, checked as any other ([`super::guard`]).
//!
//! Cursors scan forward only (PostgreSQL's `NO SCROLL`). One without `WITH HOLD` closes with its
//! transaction block, as in PostgreSQL; one with it stays until closed, or until it has been
//! left unread for `--query-timeout`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::datatypes::SchemaRef;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::tokenizer::{Token, Tokenizer};

use super::guard::Offsets;
use super::stream::Rows;

/// A cursor statement.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// `DECLARE`: the query, as the client wrote it.
    Declare {
        name: String,
        query: String,
        hold: bool,
        binary: bool,
    },
    /// `FETCH` (`moving`: `MOVE`, which skips the rows).
    Fetch {
        name: String,
        count: Count,
        moving: bool,
    },
    /// `CLOSE name`, or `CLOSE ALL` (`None`).
    Close(Option<String>),
}

/// How many rows a FETCH or MOVE takes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Count {
    Rows(u64),
    All,
}

/// Why a cursor statement cannot be taken: a SQLSTATE and a message.
pub type Refusal = (&'static str, String);

/// `sql` as a cursor statement; `None` when it begins with another word.
pub fn parse(sql: &str) -> Option<Result<Command, Refusal>> {
    let spans: Vec<_> = Tokenizer::new(&PostgreSqlDialect {}, sql)
        .tokenize_with_location()
        .ok()?
        .into_iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_) | Token::EOF))
        .collect();
    let offsets = Offsets::new(sql);
    let starts: Vec<usize> = spans.iter().map(|t| offsets.of(t)).collect();
    let mut tokens: Vec<Token> = spans.into_iter().map(|t| t.token).collect();
    while tokens.last() == Some(&Token::SemiColon) {
        tokens.pop();
    }
    let word = |at: usize| match tokens.get(at) {
        Some(Token::Word(w)) if w.quote_style.is_none() => Some(w.value.to_ascii_uppercase()),
        _ => None,
    };
    let syntax = |what: &str| Err(("42601", format!("syntax error in {what}")));
    let first = word(0)?;
    let command = match first.as_str() {
        "DECLARE" => {
            let Some(name) = name(tokens.get(1)) else {
                return Some(syntax("DECLARE: a cursor name comes after DECLARE"));
            };
            let (mut at, mut binary, mut hold) = (2, false, false);
            loop {
                match word(at).as_deref() {
                    Some("BINARY") => binary = true,
                    Some("ASENSITIVE" | "INSENSITIVE" | "NO") => {}
                    Some("SCROLL") if word(at - 1).as_deref() == Some("NO") => {}
                    Some("SCROLL") => {
                        return Some(Err((
                            "0A000",
                            "hspq serve's cursors scan forward only: declare it without SCROLL"
                                .into(),
                        )))
                    }
                    _ => break,
                }
                at += 1;
            }
            if word(at).as_deref() != Some("CURSOR") {
                return Some(syntax("DECLARE: expected CURSOR"));
            }
            at += 1;
            match (word(at).as_deref(), word(at + 1).as_deref()) {
                (Some("WITH"), Some("HOLD")) => {
                    hold = true;
                    at += 2;
                }
                (Some("WITHOUT"), Some("HOLD")) => at += 2,
                _ => {}
            }
            if word(at).as_deref() != Some("FOR") || at + 1 >= tokens.len() {
                return Some(syntax("DECLARE: expected FOR and a query"));
            }
            let end = match tokens.len() {
                n if n < starts.len() => starts[n],
                _ => sql.len(),
            };
            Command::Declare {
                name,
                query: sql[starts[at + 1]..end].trim().to_string(),
                hold,
                binary,
            }
        }
        "FETCH" | "MOVE" => {
            let moving = first == "MOVE";
            let last = tokens.len().saturating_sub(1);
            let Some(name) = (last > 0).then(|| name(tokens.get(last))).flatten() else {
                return Some(syntax(&format!("{first}: expected a cursor name")));
            };
            // What stands between FETCH and the name, without FROM or IN.
            let mut between: Vec<&Token> = tokens[1..last].iter().collect();
            if matches!(between.last(), Some(Token::Word(w)) if w.quote_style.is_none()
                && matches!(w.value.to_ascii_uppercase().as_str(), "FROM" | "IN"))
            {
                between.pop();
            }
            let words: Vec<String> = between
                .iter()
                .map(|t| match t {
                    Token::Word(w) => w.value.to_ascii_uppercase(),
                    Token::Number(n, _) => n.clone(),
                    other => other.to_string(),
                })
                .collect();
            let words: Vec<&str> = words.iter().map(String::as_str).collect();
            // A count as PostgreSQL takes it: a bigint; no sign here (negative is backward).
            let number = |n: &str| {
                n.parse::<i64>()
                    .ok()
                    .filter(|n| *n >= 0)
                    .map(|n| Count::Rows(n as u64))
            };
            let count = match words.as_slice() {
                [] | ["NEXT"] | ["FORWARD"] => Some(Count::Rows(1)),
                ["ALL"] | ["FORWARD", "ALL"] => Some(Count::All),
                [n] | ["FORWARD", n] => number(n),
                ["RELATIVE", "0"] => Some(Count::Rows(0)),
                _ => None,
            };
            let backward = words.iter().any(|w| {
                matches!(
                    *w,
                    "BACKWARD" | "PRIOR" | "FIRST" | "LAST" | "ABSOLUTE" | "RELATIVE" | "-"
                )
            });
            let Some(count) = count else {
                if backward {
                    return Some(Err((
                        "55000",
                        format!(
                            "cursor can only scan forward: hspq serve's {first} takes NEXT, a \
                             count, ALL or FORWARD [count | ALL]"
                        ),
                    )));
                }
                return Some(Err((
                    "42601",
                    format!(
                        "syntax error in {first}: expected NEXT, a count (0 to \
                         9223372036854775807), ALL or FORWARD [count | ALL], then FROM or IN \
                         and the cursor's name"
                    ),
                )));
            };
            Command::Fetch {
                name,
                count,
                moving,
            }
        }
        "CLOSE" => match (tokens.len(), word(1).as_deref()) {
            (2, Some("ALL")) => Command::Close(None),
            (2, _) => match name(tokens.get(1)) {
                Some(name) => Command::Close(Some(name)),
                None => return Some(syntax("CLOSE: expected a cursor name or ALL")),
            },
            _ => return Some(syntax("CLOSE: expected a cursor name or ALL")),
        },
        _ => return None,
    };
    Some(Ok(command))
}

/// A cursor's name as PostgreSQL folds it: unquoted lower case, quoted as written.
fn name(token: Option<&Token>) -> Option<String> {
    match token {
        Some(Token::Word(w)) if w.quote_style.is_none() => Some(w.value.to_lowercase()),
        Some(Token::Word(w)) if !w.value.is_empty() => Some(w.value.clone()),
        _ => None,
    }
}

/// An open cursor.
pub struct Cursor {
    pub schema: SchemaRef,
    /// Its rows from where the last FETCH left off; a FETCH holds it until it has sent its rows.
    pub rows: Arc<tokio::sync::Mutex<Rows>>,
    pub binary: bool,
    hold: bool,
    /// Declared in a block (or an implicit one) not yet committed: a rollback removes it, as
    /// PostgreSQL removes a cursor whose transaction aborted, held or not.
    pending: std::sync::atomic::AtomicBool,
    /// When a FETCH or MOVE last used it.
    used: Mutex<Instant>,
    /// Which cursor of the connection it is (a name can be declared again after CLOSE).
    id: u64,
}

/// A connection's open cursors, by name.
#[derive(Default)]
pub struct Cursors {
    open: Mutex<HashMap<String, Arc<Cursor>>>,
    made: AtomicU64,
    /// Names of held cursors closed for being left unread, so that a FETCH of one says why.
    expired: Mutex<std::collections::HashSet<String>>,
}

impl Cursors {
    /// Opens `name` over `rows`; an error if a cursor of that name is open. Returns its id.
    pub fn declare(
        &self,
        name: &str,
        schema: SchemaRef,
        rows: Rows,
        binary: bool,
        hold: bool,
    ) -> Result<u64, Refusal> {
        let mut open = self.open.lock().map_err(|_| poisoned())?;
        if open.contains_key(name) {
            return Err(("42P03", format!("cursor \"{name}\" already exists")));
        }
        let id = self.made.fetch_add(1, Ordering::SeqCst);
        open.insert(
            name.to_string(),
            Arc::new(Cursor {
                schema,
                rows: Arc::new(tokio::sync::Mutex::new(rows)),
                binary,
                hold,
                pending: std::sync::atomic::AtomicBool::new(true),
                used: Mutex::new(Instant::now()),
                id,
            }),
        );
        if let Ok(mut expired) = self.expired.lock() {
            expired.remove(name);
        }
        Ok(id)
    }

    /// The cursor `name`, marked used now.
    pub fn get(&self, name: &str) -> Result<Arc<Cursor>, Refusal> {
        let open = self.open.lock().map_err(|_| poisoned())?;
        let cursor = open.get(name).cloned().ok_or_else(|| {
            let expired = self.expired.lock().is_ok_and(|e| e.contains(name));
            let why = match expired {
                true => ": it was left unread longer than --query-timeout and closed",
                false => "",
            };
            ("34000", format!("cursor \"{name}\" does not exist{why}"))
        })?;
        if let Ok(mut used) = cursor.used.lock() {
            *used = Instant::now();
        }
        Ok(cursor)
    }

    /// Closes `name` (`None`: every cursor).
    pub fn close(&self, name: Option<&str>) -> Result<(), Refusal> {
        let mut open = self.open.lock().map_err(|_| poisoned())?;
        match name {
            None => open.clear(),
            Some(name) => {
                open.remove(name)
                    .ok_or_else(|| ("34000", format!("cursor \"{name}\" does not exist")))?;
            }
        }
        Ok(())
    }

    /// A transaction block (or the implicit one of a statement outside a block) ended: its
    /// cursors without `WITH HOLD` close with it; held ones declared in it stay if it
    /// committed, and close if it rolled back.
    pub fn end_block(&self, committed: bool) {
        use std::sync::atomic::Ordering::SeqCst;
        if let Ok(mut open) = self.open.lock() {
            open.retain(|_, c| c.hold && (committed || !c.pending.load(SeqCst)));
            for c in open.values() {
                c.pending.store(false, SeqCst);
            }
        }
    }

    /// Closes the cursors left unread for `idle`; true when the cursor `id` is gone.
    pub fn expire(&self, idle: Duration, id: u64) -> bool {
        let Ok(mut open) = self.open.lock() else {
            return true;
        };
        let mut gone = Vec::new();
        open.retain(|name, c| {
            let unread = c.used.lock().map(|u| u.elapsed()).unwrap_or_default();
            // A FETCH sending its rows holds the rows' lock: that is reading, not idling.
            let keep = !c.hold || unread < idle || c.rows.try_lock().is_err();
            if !keep {
                gone.push(name.clone());
            }
            keep
        });
        if let Ok(mut expired) = self.expired.lock() {
            expired.extend(gone);
        }
        !open.values().any(|c| c.id == id)
    }
}

fn poisoned() -> Refusal {
    ("XX000", "the cursors' lock is poisoned".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declare(sql: &str) -> (String, String, bool, bool) {
        match parse(sql) {
            Some(Ok(Command::Declare {
                name,
                query,
                hold,
                binary,
            })) => (name, query, hold, binary),
            other => panic!("{sql}: {other:?}"),
        }
    }

    #[test]
    fn declare_keeps_the_query_as_written() {
        assert_eq!(
            declare("DECLARE \"SQL_CUR03\" CURSOR WITH HOLD FOR select * from billing;"),
            (
                "SQL_CUR03".into(),
                "select * from billing".into(),
                true,
                false
            )
        );
        assert_eq!(
            declare("declare c binary no scroll cursor without hold for FROM t -- x"),
            ("c".into(), "FROM t -- x".into(), false, true)
        );
        assert_eq!(
            declare("DECLARE c CURSOR FOR select $$a;b$$, 'x''y'"),
            ("c".into(), "select $$a;b$$, 'x''y'".into(), false, false)
        );
        assert!(matches!(
            parse("declare c scroll cursor for select 1"),
            Some(Err(("0A000", _)))
        ));
        assert!(matches!(
            parse("declare c cursor select 1"),
            Some(Err(("42601", _)))
        ));
        assert_eq!(parse("select 1"), None);
    }

    #[test]
    fn fetch_and_move_go_forward() {
        let fetch = |sql: &str| match parse(sql) {
            Some(Ok(Command::Fetch {
                name,
                count,
                moving,
            })) => (name, count, moving),
            other => panic!("{sql}: {other:?}"),
        };
        assert_eq!(
            fetch("FETCH 2048 IN \"SQL_CUR03\""),
            ("SQL_CUR03".into(), Count::Rows(2048), false)
        );
        assert_eq!(
            fetch("fetch forward 2000 from c;"),
            ("c".into(), Count::Rows(2000), false)
        );
        assert_eq!(fetch("FETCH ALL C"), ("c".into(), Count::All, false));
        assert_eq!(fetch("fetch c"), ("c".into(), Count::Rows(1), false));
        assert_eq!(fetch("MOVE 10 IN c"), ("c".into(), Count::Rows(10), true));
        for backward in [
            "fetch prior c",
            "fetch backward 2 c",
            "fetch -1 c",
            "fetch last c",
        ] {
            assert!(
                matches!(parse(backward), Some(Err(("55000", _)))),
                "{backward}"
            );
        }
        for wrong in [
            "fetch 1.5 c",
            "fetch '5' c",
            "fetch c c",
            "fetch 9223372036854775808 c",
        ] {
            assert!(matches!(parse(wrong), Some(Err(("42601", _)))), "{wrong}");
        }
        assert_eq!(
            fetch("fetch 9223372036854775807 c"),
            ("c".into(), Count::Rows(i64::MAX as u64), false)
        );
        assert_eq!(parse("close all"), Some(Ok(Command::Close(None))));
        assert_eq!(
            parse("CLOSE \"A b\""),
            Some(Ok(Command::Close(Some("A b".into()))))
        );
    }
}

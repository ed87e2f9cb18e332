//! What a statement is, by its first words: the PostgreSQL statements answered here without
//! DuckDB (`SET`, `SHOW`, `BEGIN`, cursors, `COPY ... TO STDOUT`) and the settings clients ask
//! for. Reading by words decides nothing about what runs: everything else goes to DuckDB, whose
//! own parser decides whether it is a read ([`super::guard`]).

use std::fmt::Debug;

use super::catalog::Identity;
use super::{copy, cursor};
use super::{duckdb_version, AS_OF_SETTING, SERVER_VERSION};

/// What a statement is: answered here, or SQL for DuckDB (which [`guard`] checks).
#[derive(Debug, PartialEq)]
pub(super) enum Kind {
    /// SQL for DuckDB, run if its parser finds it a read.
    Query,
    /// Answered here with this command tag and no rows (SET, BEGIN, ...): nothing runs.
    Noop(&'static str),
    /// `SHOW <name>` of a PostgreSQL setting, answered here.
    Setting(String, String),
    /// `SET hspq.as_of = 'v42'` (a version, time or date) or back to the newest (`None`): the
    /// past version of the lake this connection reads; `SET LOCAL` for the open block only.
    AsOf(Option<String>, Scope),
    /// `RESET ALL` or `DISCARD ALL` (the tag): what a connection pool sends before it hands the
    /// connection to its next user; `hspq.as_of` goes back to the newest, and DISCARD closes
    /// the cursors.
    Reset(&'static str),
    /// `COPY ... TO STDOUT`: its query's rows streamed to the client.
    Copy(copy::CopyOut),
    /// A transaction block's start or end, answered here: each statement reads the lake as it
    /// is then, and only the status drivers read follows the block.
    Transaction(Block),
    /// `DECLARE`, `FETCH`, `MOVE`, `CLOSE`: a server-side cursor's.
    Cursor(cursor::Command),
    /// Failed before anything runs: the SQLSTATE, and why.
    Failed(&'static str, String),
    /// Refused, with why.
    Refused(String),
    /// Not understood (a syntax error), with why.
    Invalid(String),
}

/// The open block is as its status says; a statement failed in it; a rollback to a savepoint
/// took it back from failing.
pub(super) const BLOCK_OK: u8 = 0;
pub(super) const BLOCK_FAILED: u8 = 1;
pub(super) const BLOCK_RECOVERED: u8 = 2;

/// How long a `SET` holds, as in PostgreSQL: the session (undone by a rollback of the block
/// it was made in), or the open block only (`SET LOCAL`).
#[derive(Debug, PartialEq, Clone, Copy)]
pub(super) enum Scope {
    Session,
    Local,
}

/// What a statement does to a transaction block.
#[derive(Debug, PartialEq)]
pub(super) enum Block {
    Begin,
    Commit,
    Rollback,
    /// `ROLLBACK TO SAVEPOINT`: a failed block may go on after it in PostgreSQL; here the
    /// statements after it run, though the status drivers read stays failed until the block
    /// ends (pgwire keeps that byte).
    RollbackToSavepoint,
}

/// The PostgreSQL statements answered here by their first words. They never reach DuckDB, so
/// reading them by words decides nothing about what runs.
pub(super) fn kind(sql: &str) -> Kind {
    let text = strip_comments(sql);
    let mut words = text
        .trim_start_matches(|c: char| c == '(' || c.is_whitespace())
        .split(|c: char| c.is_whitespace() || c == ';' || c == '(' || c == '=')
        .filter(|w| !w.is_empty());
    let first = words.next().unwrap_or_default().to_ascii_uppercase();
    match first.as_str() {
        "SET" | "RESET" => {
            let mut name = words.next().unwrap_or_default().to_ascii_lowercase();
            let mut scope = Scope::Session;
            if matches!(name.as_str(), "session" | "local" | "global") {
                if name == "local" {
                    scope = Scope::Local;
                }
                name = words.next().unwrap_or_default().to_ascii_lowercase();
            }
            if name.trim_matches('"') == AS_OF_SETTING {
                if first == "RESET" {
                    return Kind::AsOf(None, scope);
                }
                return match as_of_value(text) {
                    Ok(value) => {
                        Kind::AsOf(value.filter(|v| !v.eq_ignore_ascii_case("default")), scope)
                    }
                    Err(why) => Kind::Invalid(why),
                };
            }
            if first == "RESET" && name == "all" {
                return Kind::Reset("RESET");
            }
            if is_duckdb_setting(&name) {
                Kind::Refused(format!(
                    "hspq serve is read-only: DuckDB's setting {name} cannot be changed \
                     (PostgreSQL settings are accepted, and have no effect)"
                ))
            } else {
                Kind::Noop("SET")
            }
        }
        "BEGIN" | "START" => Kind::Transaction(Block::Begin),
        "COMMIT" | "END" => Kind::Transaction(Block::Commit),
        "ROLLBACK" | "ABORT" => {
            let to = words
                .find(|w| !matches!(w.to_ascii_uppercase().as_str(), "WORK" | "TRANSACTION"))
                .is_some_and(|w| w.eq_ignore_ascii_case("TO"));
            if to {
                Kind::Transaction(Block::RollbackToSavepoint)
            } else {
                Kind::Transaction(Block::Rollback)
            }
        }
        // Savepoints change nothing here (nothing writes); SQLAlchemy's nested blocks use them.
        "SAVEPOINT" => Kind::Noop("SAVEPOINT"),
        "RELEASE" => Kind::Noop("RELEASE"),
        "DISCARD" => match words.next().map(str::to_ascii_uppercase).as_deref() {
            Some("ALL") => Kind::Reset("DISCARD ALL"),
            // PLANS, SEQUENCES, TEMP: none is kept here.
            Some(what) => Kind::Noop(match what {
                "PLANS" => "DISCARD PLANS",
                "SEQUENCES" => "DISCARD SEQUENCES",
                _ => "DISCARD TEMP",
            }),
            None => Kind::Invalid("DISCARD: expected ALL, PLANS, SEQUENCES or TEMP".into()),
        },
        // Nothing is ever notified here, so no connection listens (a pool's reset says it).
        "UNLISTEN" => Kind::Noop("UNLISTEN"),
        "DEALLOCATE" => Kind::Noop("DEALLOCATE"),
        "COPY" => match copy::CopyOut::parse(sql) {
            Some(Ok(copy)) => Kind::Copy(copy),
            Some(Err(why)) => Kind::Invalid(why.to_string()),
            // To or from a file: DuckDB says what it is, and the guard refuses it.
            None => Kind::Query,
        },
        "DECLARE" | "FETCH" | "MOVE" | "CLOSE" => match cursor::parse(sql) {
            Some(Ok(command)) => Kind::Cursor(command),
            Some(Err((code, why))) => Kind::Failed(code, why),
            None => Kind::Query,
        },
        "SHOW" => {
            let rest: Vec<&str> = words.collect();
            let name = rest.join(" ").to_ascii_lowercase();
            if name.trim_end_matches(';').trim_matches('"') == AS_OF_SETTING {
                // Its value is the connection's (see `Queries::with_as_of`).
                return Kind::Setting(AS_OF_SETTING.into(), String::new());
            }
            match setting(&name) {
                Some(value) => Kind::Setting(name.replace(' ', "_"), value.to_string()),
                None => Kind::Query,
            }
        }
        "" => Kind::Noop("EMPTY"),
        _ => Kind::Query,
    }
}

/// The value of `SET hspq.as_of = value` (or `TO value`): a string literal, whose quotes may
/// hold spaces (`'2026-12-01 08:00:00Z'`) and doubled quotes, or one bare word; nothing may
/// follow it but a semicolon.
fn as_of_value(text: &str) -> Result<Option<String>, String> {
    let lower = text.to_ascii_lowercase();
    let Some(at) = lower.find(AS_OF_SETTING) else {
        return Ok(None);
    };
    let rest = text[at + AS_OF_SETTING.len()..]
        .trim_start_matches('"')
        .trim_start();
    let rest = match rest.strip_prefix('=') {
        Some(r) => r.trim_start(),
        None if rest.len() >= 2 && rest[..2].eq_ignore_ascii_case("to") => rest[2..].trim_start(),
        None => rest,
    };
    let (value, after) = match rest.strip_prefix('\'') {
        Some(quoted) => {
            let mut value = String::new();
            let mut chars = quoted.char_indices().peekable();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                if c == '\'' {
                    if chars.peek().is_some_and(|(_, n)| *n == '\'') {
                        chars.next();
                        value.push('\'');
                        continue;
                    }
                    end = Some(i + 1);
                    break;
                }
                value.push(c);
            }
            let end = end.ok_or("SET hspq.as_of: the quoted value has no closing quote")?;
            (value, &quoted[end..])
        }
        None => {
            let end = rest
                .find(|c: char| c.is_whitespace() || c == ';')
                .unwrap_or(rest.len());
            (rest[..end].to_string(), &rest[end..])
        }
    };
    if !after
        .trim_matches(|c: char| c.is_whitespace() || c == ';')
        .is_empty()
    {
        return Err(format!(
            "SET hspq.as_of takes one value, quoted when it holds a space (SET hspq.as_of = \
             '2026-12-01 08:00:00Z'); found more after {value:?}"
        ));
    }
    Ok((!value.is_empty()).then_some(value))
}

/// Whether `name` is one of DuckDB's settings and not also PostgreSQL's (`SET timezone` is
/// both, and accepted as PostgreSQL's).
fn is_duckdb_setting(name: &str) -> bool {
    static DUCKDB: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    const POSTGRESQL: [&str; 12] = [
        "time",
        "names",
        "transaction",
        "session",
        "role",
        "extra_float_digits",
        "application_name",
        "client_min_messages",
        "bytea_output",
        "lock_timeout",
        "idle_in_transaction_session_timeout",
        "default_transaction_isolation",
    ];
    let name = name.trim_matches('"');
    if setting(name).is_some() || POSTGRESQL.contains(&name) {
        return false;
    }
    let duckdb = DUCKDB.get_or_init(|| {
        duckdb::Connection::open_in_memory()
            .and_then(|c| {
                let mut s = c.prepare("SELECT lower(name) FROM duckdb_settings()")?;
                let names = s.query_map([], |r| r.get::<_, String>(0))?;
                names.collect()
            })
            .unwrap_or_default()
    });
    name == "variable" || duckdb.iter().any(|n| n == name)
}

/// The PostgreSQL settings clients ask for (`SHOW`, `current_setting()`), with the values this
/// server has.
const SETTINGS: [(&str, &str); 20] = [
    ("server_version", SERVER_VERSION),
    ("server_version_num", "140000"),
    ("server_encoding", "UTF8"),
    ("client_encoding", "UTF8"),
    ("standard_conforming_strings", "on"),
    ("datestyle", "ISO, MDY"),
    ("timezone", "UTC"),
    ("intervalstyle", "postgres"),
    ("integer_datetimes", "on"),
    ("transaction_isolation", "read committed"),
    ("default_transaction_read_only", "on"),
    ("transaction_read_only", "on"),
    ("max_identifier_length", "63"),
    ("lc_collate", "C"),
    ("lc_ctype", "C"),
    ("search_path", "main"),
    ("is_superuser", "off"),
    ("application_name", ""),
    ("statement_timeout", "0"),
    ("max_index_keys", "32"),
];

/// A setting's value, by any of the names `SHOW` knows it by.
pub(super) fn setting(name: &str) -> Option<&'static str> {
    let name = match name {
        "time zone" => "timezone",
        "transaction isolation level" => "transaction_isolation",
        other => other,
    };
    SETTINGS.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

/// What the catalog tells a client about itself and the server.
pub(super) fn identity(user: &str, database: &str) -> Identity {
    Identity {
        user: user.to_string(),
        database: database.to_string(),
        version: format!(
            "PostgreSQL {SERVER_VERSION} (hspq {}, DuckDB {})",
            env!("CARGO_PKG_VERSION"),
            duckdb_version()
        ),
        settings: SETTINGS.to_vec(),
    }
}

/// The SQL without its leading `--` and `/* */` comments.
fn strip_comments(sql: &str) -> &str {
    let mut rest = sql.trim_start();
    loop {
        if let Some(after) = rest.strip_prefix("--") {
            rest = after.split_once('\n').map_or("", |(_, r)| r).trim_start();
        } else if let Some(after) = rest.strip_prefix("/*") {
            rest = after.split_once("*/").map_or("", |(_, r)| r).trim_start();
        } else {
            return rest;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_clients_say_before_their_queries_is_answered_here() {
        assert_eq!(kind("  select 1"), Kind::Query);
        assert_eq!(kind("-- a note\n/* more */ copy t to 'x'"), Kind::Query);
        assert_eq!(kind("SET extra_float_digits = 3"), Kind::Noop("SET"));
        assert_eq!(kind("SET SESSION timezone TO 'UTC'"), Kind::Noop("SET"));
        assert_eq!(kind("set application_name='x'"), Kind::Noop("SET"));
        assert_eq!(
            kind("show transaction isolation level"),
            Kind::Setting(
                "transaction_isolation_level".into(),
                "read committed".into()
            )
        );
        assert_eq!(kind("SHOW TABLES"), Kind::Query);
        for duckdb in [
            "set enable_external_access = true",
            "SET GLOBAL allowed_directories = ['/']",
            "reset lock_configuration",
            "set variable x = 1",
            "set memory_limit='1GB'",
        ] {
            assert!(
                matches!(kind(duckdb), Kind::Refused(why) if why.contains("DuckDB's setting")),
                "{duckdb}"
            );
        }
    }

    #[test]
    fn set_hspq_as_of_takes_its_whole_value_or_says_what_is_wrong() {
        let as_of = |v: &str| Kind::AsOf(Some(v.into()), Scope::Session);
        assert_eq!(
            kind("SET hspq.as_of = '2026-12-07 16:13:07Z'"),
            as_of("2026-12-07 16:13:07Z")
        );
        assert_eq!(kind("set session \"hspq.as_of\" to v42;"), as_of("v42"));
        assert_eq!(kind("SET hspq.as_of TO ' v42'"), as_of(" v42"));
        assert_eq!(kind("SET hspq.as_of = 'it''s'"), as_of("it's"));
        assert_eq!(kind("SET hspq.as_of=v42"), as_of("v42"));
        assert_eq!(
            kind("SET hspq.as_of = DEFAULT"),
            Kind::AsOf(None, Scope::Session)
        );
        assert_eq!(kind("RESET hspq.as_of"), Kind::AsOf(None, Scope::Session));
        assert_eq!(
            kind("SET LOCAL hspq.as_of = 'v3'"),
            Kind::AsOf(Some("v3".into()), Scope::Local)
        );
        // What connection pools send before handing a connection on.
        assert_eq!(kind("RESET ALL"), Kind::Reset("RESET"));
        assert_eq!(kind("discard all"), Kind::Reset("DISCARD ALL"));
        assert_eq!(kind("UNLISTEN *"), Kind::Noop("UNLISTEN"));
        for wrong in [
            "SET hspq.as_of = 'v1001' junk",
            "SET hspq.as_of = v1001 junk",
        ] {
            assert!(
                matches!(kind(wrong), Kind::Invalid(why) if why.contains("takes one value")),
                "{wrong}"
            );
        }
        assert!(matches!(
            kind("SET hspq.as_of = 'v1"),
            Kind::Invalid(why) if why.contains("no closing quote")
        ));
    }
}

//! DuckDB's errors by type. DuckDB names an error's type (its `ExceptionType`) only in front of
//! the message, `Catalog Error: Table with name x does not exist!`, and duckdb-rs passes the text
//! alone; it is read here, once, so that callers match a type rather than words of a message.

/// The type DuckDB gave an error (the ones hspq tells apart; the rest are [`ErrorType::Other`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorType {
    /// A table, view, function or type that does not exist.
    Catalog,
    /// A name or type that does not bind (a column not found, an aggregate misused).
    Binder,
    /// Text that does not parse.
    Parser,
    /// A value that does not convert to its type.
    Conversion,
    /// A number out of its type's range.
    OutOfRange,
    /// A function's input it refuses.
    InvalidInput,
    /// Something the settings forbid (a path outside `allowed_directories`).
    Permission,
    /// The memory limit was reached.
    OutOfMemory,
    /// A file could not be read (or was deleted under the statement).
    Io,
    /// The statement was interrupted (by hspq, or by DuckDB itself when another of its
    /// threads failed).
    Interrupt,
    /// Any other type.
    Other,
}

impl ErrorType {
    /// The type named in front of `message`.
    fn of(message: &str) -> ErrorType {
        let Some((name, _)) = message.split_once(" Error:") else {
            return ErrorType::Other;
        };
        match name {
            "Catalog" => ErrorType::Catalog,
            "Binder" => ErrorType::Binder,
            "Parser" => ErrorType::Parser,
            "Conversion" => ErrorType::Conversion,
            "Out of Range" => ErrorType::OutOfRange,
            "Invalid Input" => ErrorType::InvalidInput,
            "Permission" => ErrorType::Permission,
            "Out of Memory" => ErrorType::OutOfMemory,
            "IO" => ErrorType::Io,
            "INTERRUPT" | "Interrupt" => ErrorType::Interrupt,
            _ => ErrorType::Other,
        }
    }
}

/// An error DuckDB raised: its type and its message, as DuckDB wrote it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SqlError {
    kind: ErrorType,
    message: String,
}

impl SqlError {
    /// DuckDB's `message`, its type read from its front.
    pub fn new(message: impl Into<String>) -> SqlError {
        let message = message.into();
        SqlError {
            kind: ErrorType::of(&message),
            message,
        }
    }

    /// The error's type.
    pub fn kind(&self) -> ErrorType {
        self.kind
    }

    /// The message, as DuckDB wrote it.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether a file the statement reads is gone (a sync deleted it after the views were
    /// made over it): then a newer commit has the rows.
    pub fn is_missing_file(&self) -> bool {
        let m = &self.message;
        // A streamed result that met it mid-way reports "Invalid Input Error: Attempting to
        // execute an unsuccessful or closed pending query result", with the IO error after.
        (self.kind == ErrorType::Io || m.contains("IO Error:"))
            && (m.contains("No files found")
                || m.contains("No such file")
                || m.contains("Cannot open file")
                || m.contains("could not be opened"))
    }

    /// The SQLSTATE PostgreSQL gives the same error (drivers raise a class per code:
    /// asyncpg's UndefinedTableError, psycopg's errors.UndefinedTable). Within a type, DuckDB
    /// says what is missing only in words.
    pub fn sqlstate(&self) -> &'static str {
        let m = &self.message;
        match self.kind {
            ErrorType::Catalog if m.contains("Table with name") || m.contains("View with name") => {
                "42P01"
            }
            ErrorType::Catalog if m.contains("Function with name") || m.contains("Macro") => {
                "42883"
            }
            ErrorType::Catalog => "42704",
            ErrorType::Parser => "42601",
            ErrorType::Binder if m.contains("Referenced column") || m.contains("not found") => {
                "42703"
            }
            ErrorType::Binder => "42803",
            ErrorType::Conversion => "22P02",
            ErrorType::OutOfRange => "22003",
            ErrorType::InvalidInput => "22023",
            ErrorType::Permission => "42501",
            ErrorType::OutOfMemory => "53200",
            ErrorType::Io => "58030",
            // Not 57014 (query_canceled): hspq's own cancels and time-outs are told apart where
            // they happen. DuckDB says "Interrupted" also for a parallel query whose other
            // thread failed (error() in a streamed result, say): the cause is lost.
            ErrorType::Interrupt | ErrorType::Other => "XX000",
        }
    }
}

impl From<&duckdb::Error> for SqlError {
    fn from(e: &duckdb::Error) -> SqlError {
        SqlError::new(match e {
            duckdb::Error::DuckDBFailure(_, Some(msg)) => msg.clone(),
            other => other.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duckdbs_errors_are_typed_by_what_it_raised() {
        let db = duckdb::Connection::open_in_memory().unwrap();
        let error = |sql: &str| SqlError::from(&db.execute_batch(sql).unwrap_err());
        let missing = error("select * from nowhere");
        assert_eq!(missing.kind(), ErrorType::Catalog);
        assert_eq!(missing.sqlstate(), "42P01");
        assert!(missing.message().contains("nowhere"), "{missing}");
        assert_eq!(error("select nothing_here").kind(), ErrorType::Binder);
        assert_eq!(error("select from where").kind(), ErrorType::Parser);
        assert_eq!(error("select 'x'::integer").kind(), ErrorType::Conversion);
        let gone = error("select * from read_parquet('/nonexistent/x.parquet')");
        assert_eq!(gone.kind(), ErrorType::Io);
        assert!(gone.is_missing_file(), "{gone}");
        assert_eq!(SqlError::new("no type here").kind(), ErrorType::Other);
    }
}

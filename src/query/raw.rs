//! DuckDB's C API where duckdb-rs does not reach. Raw FFI, kept to this file.
//!
//! Two things need it: holding the database handle (duckdb-rs keeps its own private), so that a
//! second connection can see the engine's views; and asking DuckDB's own parser and binder what
//! a SQL text holds without running any of it. duckdb-rs's `Connection::prepare` runs every
//! statement of a text but the last, so it cannot be used to look before running;
//! `duckdb_extract_statements` + `duckdb_prepare_extracted_statement` only parse and bind.
//! `hspq serve` decides what a client may run with [`Inspector::prepare_one`].

use std::ffi::{CStr, CString};
use std::ptr;

use duckdb::ffi;

use super::{QueryError, SqlError};

/// An in-memory DuckDB database whose handle we keep.
pub(crate) struct Database {
    ptr: ffi::duckdb_database,
}

// The handle is DuckDB's database object, which is thread-safe: connecting to it from several
// threads at once is what it is for (`hspq serve`'s sessions share one).
unsafe impl Send for Database {}
unsafe impl Sync for Database {}

impl Database {
    pub(crate) fn open_in_memory() -> Result<Database, QueryError> {
        let mut ptr = ptr::null_mut();
        // SAFETY: a null path opens an in-memory database; `ptr` is written on success.
        let state = unsafe { ffi::duckdb_open(ptr::null(), &mut ptr) };
        if state != ffi::duckdb_state_DuckDBSuccess || ptr.is_null() {
            return Err(QueryError::Sql(SqlError::new(
                "cannot open an in-memory DuckDB database",
            )));
        }
        Ok(Database { ptr })
    }

    /// A duckdb-rs connection to this database.
    pub(crate) fn connection(&self) -> Result<duckdb::Connection, QueryError> {
        // SAFETY: the handle is open; duckdb-rs does not close a database it did not open, and
        // DuckDB keeps the instance alive while any connection to it is.
        Ok(unsafe { duckdb::Connection::open_from_raw(self.ptr) }?)
    }

    /// A connection that only parses and binds SQL, never runs it; `using` is the `USE`
    /// statement that makes it see its engine's views (see [`super::Engine::using`]).
    pub(crate) fn inspector(&self, using: Option<&str>) -> Result<Inspector, QueryError> {
        let mut con = ptr::null_mut();
        // SAFETY: the database handle is open; `con` is written on success.
        let state = unsafe { ffi::duckdb_connect(self.ptr, &mut con) };
        if state != ffi::duckdb_state_DuckDBSuccess || con.is_null() {
            return Err(QueryError::Sql(SqlError::new("cannot connect to DuckDB")));
        }
        let inspector = Inspector {
            con,
            conn: self.connection()?,
            macros: std::cell::OnceCell::new(),
        };
        if let Some(using) = using {
            inspector.conn.execute_batch(using)?;
            let text = CString::new(using)
                .map_err(|_| QueryError::Sql(SqlError::new("a catalog name holds a NUL")))?;
            // SAFETY: a valid connection and NUL-terminated text; a null result is allowed.
            let state = unsafe { ffi::duckdb_query(inspector.con, text.as_ptr(), ptr::null_mut()) };
            if state != ffi::duckdb_state_DuckDBSuccess {
                return Err(QueryError::Sql(SqlError::new(format!(
                    "cannot run `{using}` on DuckDB's parser connection"
                ))));
            }
        }
        Ok(inspector)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        // SAFETY: opened by us; connections still open keep the instance alive.
        unsafe { ffi::duckdb_close(&mut self.ptr) };
    }
}

/// A statement as DuckDB parsed and bound it, without running it.
#[derive(Debug, Clone, PartialEq)]
pub struct Inspected {
    /// What the statement is.
    pub kind: StatementKind,
    /// DuckDB's type for each parameter (`$1`, `$2`, ...), as it inferred it.
    pub parameters: Vec<ParamType>,
}

/// A parameter's type as DuckDB inferred it from where it is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamType {
    /// The type; `INVALID` or `ANY` where nothing tells (`SELECT $1`).
    pub id: ffi::DUCKDB_TYPE,
    /// A list's or array's element type.
    pub element: Option<ffi::DUCKDB_TYPE>,
}

/// What kind of statement DuckDB's parser made of a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementKind {
    /// A query: SELECT, FROM, VALUES, TABLE, SHOW, DESCRIBE, SUMMARIZE, PIVOT with its values.
    Select,
    /// EXPLAIN [ANALYZE] of another statement.
    Explain,
    /// Anything else, by DuckDB's name for it (COPY, ATTACH, CREATE, SET, ...).
    Other(&'static str),
}

/// Why a text could not be inspected as one statement.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InspectError {
    /// The text holds this many statements, not one.
    #[error("the text holds {0} statements, not one")]
    NotOne(usize),
    /// DuckDB could not parse or bind it; its message.
    #[error("{0}")]
    Sql(String),
}

impl From<duckdb::Error> for InspectError {
    fn from(e: duckdb::Error) -> InspectError {
        InspectError::Sql(super::sql_message(&e))
    }
}

/// A connection of the engine's database used only to parse and bind.
pub struct Inspector {
    con: ffi::duckdb_connection,
    /// For DuckDB's parse tree of a text, which a pure function gives (`json_serialize_sql`).
    conn: duckdb::Connection,
    /// The table macros, read once (clients cannot make any).
    macros: std::cell::OnceCell<Vec<String>>,
}

// A DuckDB connection may move between threads; it is used by one at a time (`&self` methods
// are called from the thread that owns the engine).
unsafe impl Send for Inspector {}

impl Drop for Inspector {
    fn drop(&mut self) {
        // SAFETY: connected by us.
        unsafe { ffi::duckdb_disconnect(&mut self.con) };
    }
}

/// Extracted statements, destroyed when dropped.
struct Extracted(ffi::duckdb_extracted_statements);

impl Drop for Extracted {
    fn drop(&mut self) {
        // SAFETY: DuckDB asks for this after every extract, even a failed one.
        unsafe { ffi::duckdb_destroy_extracted(&mut self.0) };
    }
}

/// A prepared statement, destroyed when dropped.
struct Prepared(ffi::duckdb_prepared_statement);

impl Drop for Prepared {
    fn drop(&mut self) {
        // SAFETY: DuckDB asks for this after every prepare, even a failed one.
        unsafe { ffi::duckdb_destroy_prepare(&mut self.0) };
    }
}

impl Inspector {
    /// `sql`'s statements as DuckDB's parser splits them.
    fn extract(&self, sql: &str) -> Result<(Extracted, usize), InspectError> {
        let text = CString::new(sql)
            .map_err(|_| InspectError::Sql("SQL text holds a NUL character".into()))?;
        let mut raw = ptr::null_mut();
        // SAFETY: a valid connection and NUL-terminated text; `raw` must be destroyed whatever
        // the outcome, which `Extracted` does.
        let count = unsafe { ffi::duckdb_extract_statements(self.con, text.as_ptr(), &mut raw) };
        let extracted = Extracted(raw);
        if count == 0 {
            // SAFETY: the error belongs to `extracted`, read before it is destroyed.
            let message = unsafe { message(ffi::duckdb_extract_statements_error(extracted.0)) };
            return match message {
                Some(m) => Err(InspectError::Sql(m)),
                None => Err(InspectError::NotOne(0)),
            };
        }
        Ok((extracted, count as usize))
    }

    /// DuckDB's parse tree of `sql` as JSON (`json_serialize_sql`: queries only). The text is
    /// an argument of a pure function; nothing of it runs.
    pub fn parse_tree(&self, sql: &str) -> Result<serde_json::Value, InspectError> {
        let json: String =
            self.conn
                .query_row("SELECT json_serialize_sql($1::VARCHAR)", [sql], |r| {
                    r.get(0)
                })?;
        let tree: serde_json::Value = serde_json::from_str(&json).map_err(|e| {
            InspectError::Sql(if e.to_string().contains("recursion limit") {
                "it is nested too deeply to check (about 100 levels at most)".to_string()
            } else {
                e.to_string()
            })
        })?;
        if tree["error"] == true {
            return Err(InspectError::Sql(
                tree["error_message"]
                    .as_str()
                    .unwrap_or("DuckDB cannot serialize it")
                    .to_string(),
            ));
        }
        Ok(tree)
    }

    /// The table macros of the database (hspq's `churn_scores`, DuckDB's `histogram`):
    /// functions written in SQL over what the binder checks anyway.
    pub fn table_macros(&self) -> Result<&[String], InspectError> {
        if let Some(names) = self.macros.get() {
            return Ok(names);
        }
        let mut stmt = self
            .conn
            .prepare("SELECT DISTINCT lower(function_name) FROM duckdb_functions() WHERE function_type = 'table_macro'")?;
        let names = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<_, _>>()?;
        Ok(self.macros.get_or_init(|| names))
    }

    /// How many statements DuckDB's parser finds in `sql`.
    pub fn count(&self, sql: &str) -> Result<usize, InspectError> {
        self.extract(sql).map(|(_, n)| n)
    }

    /// `sql` parsed and bound by DuckDB when it is exactly one statement: its kind and the
    /// types of its parameters. Nothing of it runs.
    pub fn prepare_one(&self, sql: &str) -> Result<Inspected, InspectError> {
        let (extracted, count) = self.extract(sql)?;
        if count != 1 {
            return Err(InspectError::NotOne(count));
        }
        let mut raw = ptr::null_mut();
        // SAFETY: index 0 of a one-statement extract; `raw` is destroyed by `Prepared`.
        let state =
            unsafe { ffi::duckdb_prepare_extracted_statement(self.con, extracted.0, 0, &mut raw) };
        let prepared = Prepared(raw);
        if state != ffi::duckdb_state_DuckDBSuccess {
            // SAFETY: the error belongs to `prepared`, read before it is destroyed.
            let m = unsafe { message(ffi::duckdb_prepare_error(prepared.0)) };
            return Err(InspectError::Sql(
                m.unwrap_or_else(|| "cannot prepare".into()),
            ));
        }
        // SAFETY: a successfully prepared statement.
        let (kind, count) = unsafe {
            (
                ffi::duckdb_prepared_statement_type(prepared.0),
                ffi::duckdb_nparams(prepared.0),
            )
        };
        let parameters = (1..=count)
            // SAFETY: parameter indexes are 1-based and within the count.
            .map(|i| unsafe { param_type(prepared.0, i) })
            .collect();
        Ok(Inspected {
            kind: statement_kind(kind),
            parameters,
        })
    }
}

/// Parameter `i`'s type, with a list's element type.
///
/// # Safety
/// `prepared` is successfully prepared and `i` within its parameter count (1-based).
unsafe fn param_type(prepared: ffi::duckdb_prepared_statement, i: ffi::idx_t) -> ParamType {
    let id = unsafe { ffi::duckdb_param_type(prepared, i) };
    let element = match id {
        ffi::DUCKDB_TYPE_DUCKDB_TYPE_LIST | ffi::DUCKDB_TYPE_DUCKDB_TYPE_ARRAY => unsafe {
            let mut list = ffi::duckdb_param_logical_type(prepared, i);
            if list.is_null() {
                None
            } else {
                let mut child = if id == ffi::DUCKDB_TYPE_DUCKDB_TYPE_LIST {
                    ffi::duckdb_list_type_child_type(list)
                } else {
                    ffi::duckdb_array_type_child_type(list)
                };
                let element = (!child.is_null()).then(|| ffi::duckdb_get_type_id(child));
                ffi::duckdb_destroy_logical_type(&mut child);
                ffi::duckdb_destroy_logical_type(&mut list);
                element
            }
        },
        _ => None,
    };
    ParamType { id, element }
}

/// A C string DuckDB owns, copied.
///
/// # Safety
/// `p` is null or a NUL-terminated string valid for this call.
unsafe fn message(p: *const std::os::raw::c_char) -> Option<String> {
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

fn statement_kind(t: ffi::duckdb_statement_type) -> StatementKind {
    use StatementKind::{Explain, Other, Select};
    match t {
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_SELECT => Select,
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_EXPLAIN => Explain,
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_INSERT => Other("INSERT"),
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_UPDATE => Other("UPDATE"),
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_DELETE => Other("DELETE"),
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_PREPARE => Other("PREPARE"),
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_CREATE => Other("CREATE"),
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_EXECUTE => Other("EXECUTE"),
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_ALTER => Other("ALTER"),
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_TRANSACTION => Other("TRANSACTION"),
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_COPY => Other("COPY"),
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_ANALYZE => Other("ANALYZE"),
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_VARIABLE_SET => Other("SET VARIABLE"),
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_CREATE_FUNC => Other("CREATE FUNCTION"),
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_DROP => Other("DROP"),
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_EXPORT => Other("EXPORT"),
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_PRAGMA => Other("PRAGMA"),
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_VACUUM => Other("VACUUM"),
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_CALL => Other("CALL"),
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_SET => Other("SET"),
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_LOAD => Other("LOAD/INSTALL"),
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_EXTENSION => Other("EXTENSION"),
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_ATTACH => Other("ATTACH"),
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_DETACH => Other("DETACH"),
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_MULTI => Other("MULTI"),
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_COPY_DATABASE => Other("COPY DATABASE"),
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_UPDATE_EXTENSIONS => {
            Other("UPDATE EXTENSIONS")
        }
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_MERGE_INTO => Other("MERGE INTO"),
        _ => Other("unknown"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inspector() -> (Database, duckdb::Connection, Inspector) {
        let db = Database::open_in_memory().unwrap();
        let conn = db.connection().unwrap();
        conn.execute_batch("CREATE VIEW v AS SELECT 1 AS a, DATE '2026-01-01' AS d")
            .unwrap();
        let inspector = db.inspector(None).unwrap();
        (db, conn, inspector)
    }

    #[test]
    fn statements_are_classified_by_duckdbs_parser_without_running() {
        let (_db, conn, i) = inspector();
        let kind = |sql: &str| i.prepare_one(sql).map(|s| s.kind);
        for read in [
            "select * from v",
            "from v",
            "values (1)",
            "table v",
            "describe v",
            "show tables",
            "summarize v",
            "with x as (select 1) select * from x",
            "select $$;copy$$",
        ] {
            assert_eq!(kind(read), Ok(StatementKind::Select), "{read}");
        }
        assert_eq!(kind("explain select 1"), Ok(StatementKind::Explain));
        assert_eq!(
            kind("copy (select 1) to 'x.csv'"),
            Ok(StatementKind::Other("COPY"))
        );
        assert_eq!(
            kind("create table t as select 1"),
            Ok(StatementKind::Other("CREATE"))
        );
        assert_eq!(
            kind("select 1; create table t (a int)"),
            Err(InspectError::NotOne(2))
        );
        assert!(matches!(kind("selec 1"), Err(InspectError::Sql(_))));
        assert!(matches!(
            kind("select * from nowhere"),
            Err(InspectError::Sql(_))
        ));
        // Preparing ran nothing: no table t.
        let tables: i64 = conn
            .query_row(
                "select count(*) from duckdb_tables() where table_name = 't'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tables, 0);
        // The view made on the other connection is seen, and parameters are typed.
        let s = i
            .prepare_one("select * from v where a = $1 and d > $2 and $3 = ['x']")
            .unwrap();
        let ids: Vec<_> = s.parameters.iter().map(|p| (p.id, p.element)).collect();
        assert_eq!(
            ids,
            vec![
                (ffi::DUCKDB_TYPE_DUCKDB_TYPE_INTEGER, None),
                (ffi::DUCKDB_TYPE_DUCKDB_TYPE_DATE, None),
                (
                    ffi::DUCKDB_TYPE_DUCKDB_TYPE_LIST,
                    Some(ffi::DUCKDB_TYPE_DUCKDB_TYPE_VARCHAR)
                ),
            ]
        );
    }
}

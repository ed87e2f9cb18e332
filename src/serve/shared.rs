//! The one DuckDB database every client's session runs in: one memory limit (`--memory-limit`)
//! and one set of worker threads for all, as an application embedding DuckDB would have.
//!
//! Why one: with a database per client, each got an even part of the budget whatever the
//! others did (a lone client could use 1/`--max-connections` of it), and each started its own
//! worker threads, so 32 busy clients ran some 64 threads on two cores: under a dashboard's
//! load the server did a fifth less work than in-process DuckDB (issue 18's benchmark). Now the
//! database's limit is the budget, DuckDB shares it among the queries running, and its
//! scheduler shares the cores.
//!
//! Each session keeps what was its own: its views (and `SET hspq.as_of`, and its PostgreSQL
//! catalog) live in an in-memory catalog of its own (`ATTACH ':memory:'`), which each of its
//! connections reads by default (`USE`, which DuckDB allows once the configuration is locked);
//! the catalog goes with the session. Sessions are apart as far as the first guard keeps them:
//! a statement that only reads cannot change another session's catalog, and nothing any
//! statement does reaches the lake (the sandbox below and [`super::confine`]).
//!
//! The database is opened on a confined thread, so its worker threads are confined
//! ([`super::confine`]), and sandboxed before the first client comes: it reads the lake's folder
//! only, spills into the server's scratch folder, and its configuration is locked. Settings a
//! connection holds for itself cannot be made once it is locked, so every connection a result
//! may run on (each with DuckDB's streaming buffer kept small, see [`super::stream`]) is made
//! here, before: a stock the sessions take from and give back to.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use super::confine::Confinement;
use super::session::SessionError;
use super::stream::STREAMING_BUFFER;
use crate::query::raw::Database;
use crate::query::{sql_message, PARQUET_METADATA_CACHE};

/// The database the sessions share, and the connections made for their results.
pub struct Shared {
    db: Arc<Database>,
    stock: Mutex<Vec<duckdb::Connection>>,
    given_back: Condvar,
    catalogs: AtomicU64,
}

/// How long a new session waits for the connections of one that just ended to come back.
const STOCK_WAIT: Duration = Duration::from_secs(5);

impl Shared {
    /// Opens the database over the lake folder `root` (an S3 lake's replica), using at most
    /// `memory` bytes and spilling beyond into the scratch folder, with `connections`
    /// connections in stock for results.
    pub fn open(
        confinement: &Confinement,
        root: &Path,
        memory: u64,
        connections: usize,
    ) -> Result<Arc<Shared>, SessionError> {
        std::thread::scope(|s| {
            s.spawn(|| {
                // First: DuckDB's worker threads, started when the database opens, inherit it.
                // How well the kernel confines was said once at start; the first guard holds
                // either way.
                confinement.enter()?;
                let db = Database::open_in_memory()?;
                let conn = db.connection()?;
                let stock = (0..connections)
                    .map(|_| {
                        let conn = db.connection()?;
                        conn.execute_batch(&format!(
                            "SET streaming_buffer_size = '{STREAMING_BUFFER}'"
                        ))?;
                        Ok(conn)
                    })
                    .collect::<Result<Vec<_>, crate::query::QueryError>>()?;
                sandbox(&conn, root, &confinement.scratch().join("spill"), memory)?;
                Ok(Arc::new(Shared {
                    db: Arc::new(db),
                    stock: Mutex::new(stock),
                    given_back: Condvar::new(),
                    catalogs: AtomicU64::new(0),
                }))
            })
            .join()
            .unwrap_or_else(|_| {
                Err(SessionError::Setup {
                    what: "open DuckDB",
                    detail: "the thread opening it failed".into(),
                })
            })
        })
    }

    /// The database.
    pub fn db(&self) -> Arc<Database> {
        self.db.clone()
    }

    /// A name for a new session's catalog, used by no other.
    pub fn catalog_name(&self) -> String {
        format!(
            "hspq_session_{}",
            self.catalogs.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// `n` connections from the stock. The stock holds enough for every session the server
    /// admits, but a session that just ended may still be giving its back: waits a little for
    /// them, then takes what there is (its client can then keep fewer results open).
    pub fn take(&self, n: usize) -> Vec<duckdb::Connection> {
        let stock = self.stock.lock().unwrap_or_else(|p| p.into_inner());
        let mut stock = match self
            .given_back
            .wait_timeout_while(stock, STOCK_WAIT, |stock| stock.len() < n)
        {
            Ok((stock, _)) => stock,
            Err(p) => p.into_inner().0,
        };
        let keep = stock.len().saturating_sub(n);
        stock.split_off(keep)
    }

    /// Puts connections back into the stock.
    pub fn give_back(&self, conns: impl IntoIterator<Item = duckdb::Connection>) {
        self.stock
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(conns);
        self.given_back.notify_all();
    }
}

/// Lets SQL read the lake's folder and nothing else, and change no setting: no `COPY ... TO`,
/// `ATTACH` of a file, `INSTALL`, `read_csv('/etc/passwd')` or turning that back on.
fn sandbox(
    conn: &duckdb::Connection,
    root: &Path,
    spill: &Path,
    memory: u64,
) -> Result<(), SessionError> {
    let root = root.display().to_string().replace('\'', "''");
    let spill = spill.display().to_string().replace('\'', "''");
    conn.execute_batch(&format!(
        "{PARQUET_METADATA_CACHE}; \
         SET temp_directory = '{spill}'; \
         SET memory_limit = '{}KiB'; \
         SET allowed_directories = ['{root}/']; \
         SET enable_external_access = false; \
         SET autoinstall_known_extensions = false; \
         SET autoload_known_extensions = false; \
         SET lock_configuration = true;",
        memory / 1024
    ))
    .map_err(|e| SessionError::Setup {
        what: "sandbox DuckDB",
        detail: sql_message(&e),
    })
}

//! DuckDB over the lake: the views, SQL execution with results streamed batch by batch, the
//! bundled queries. An S3 lake is read through its local copy ([`crate::lake::replica`]).
//!
//! An in-memory DuckDB gets one view per dataset over exactly the files the lake's latest
//! commit lists (see [`views`]), so hspq never reads a file a sync has not committed. Before
//! each statement the engine picks up a newer commit ([`Engine::refresh_if_changed`]); a
//! statement that meets a file deleted under it (the sync that replaced it has just ended) is
//! run once more on the fresh commit, so a shell left open across syncs keeps working.

pub mod bundled;
mod error;
pub mod output;
pub mod print;
pub mod raw;
pub mod status;
pub mod views;

use std::cell::{Cell, OnceCell, RefCell};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use tracing::warn;

use crate::lake::layout::history_path;
use crate::lake::log::{self, AsOf, Entry};
use crate::lake::pins::{self, Pin, Pins};
use crate::lake::{replica, Dataset, Lake, LakeError, LakeLocation};
pub use error::{ErrorType, SqlError};
use output::{OutputError, ResultWriter};
use views::Source;

/// Why a query could not run.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// DuckDB refused the SQL or failed running it.
    #[error(transparent)]
    Sql(#[from] SqlError),
    /// The lake cannot be read.
    #[error(transparent)]
    Lake(#[from] LakeError),
    /// There is no lake there.
    #[error("no lake at {0}: run `hspq ingest --data {0}` first (or pass --data)")]
    NoLake(String),
    /// Writing the result failed.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// A bundled query or its parameters are wrong.
    #[error("{0}")]
    Usage(String),
    /// The statement was cancelled (Ctrl-C, through DuckDB's interrupt).
    #[error("query cancelled")]
    Interrupted,
}

impl From<duckdb::Error> for QueryError {
    fn from(e: duckdb::Error) -> Self {
        QueryError::Sql(SqlError::from(&e))
    }
}

/// DuckDB's own message, without the Rust wrapper's decoration.
pub fn sql_message(e: &duckdb::Error) -> String {
    SqlError::from(e).message().to_string()
}

/// How many times views are made again over a newer commit when a sync deleted a file of the
/// one read just before (each time means the sync committed again in those milliseconds).
const MISSING_FILE_RETRIES: u32 = 5;

/// How often an S3 lake is asked whether a newer commit exists (a listing request).
pub const S3_CHECK_EVERY: Duration = Duration::from_secs(2);

/// A DuckDB connection with the lake's views.
pub struct Engine {
    conn: duckdb::Connection,
    /// The database `conn` is connected to (declared after it: dropped after it).
    db: Arc<raw::Database>,
    /// The catalog of `db` holding this engine's views when `db` is shared with other engines
    /// ([`Engine::open_shared`]); `None`: the database is the engine's own.
    catalog: Option<String>,
    /// Where the lake's files are read from (the local cache for an S3 lake).
    pub root: PathBuf,
    /// Something the user should know about the data (e.g. an offline cache's age).
    pub notice: Option<String>,
    /// The S3 lake read through the local cache.
    remote: Option<LakeLocation>,
    /// The log version the views show; `None` for a lake without a log.
    version: Cell<Option<u64>>,
    /// When the S3 lake was last asked for a newer commit.
    checked: Cell<Instant>,
    /// Whether a statement is being read, and so the version shown must be pinned.
    reading: Cell<bool>,
    /// Who writes this engine's pins (started at the first statement unless given).
    pins: OnceCell<Pins>,
    /// The pin on the version a statement reads.
    pin: RefCell<Option<Pin>>,
    /// Pinning failed once (a lake folder hspq may not write to): said once.
    pin_failed: Cell<bool>,
    /// The views show one past version (`--as-of`), never a newer one.
    fixed: Cell<bool>,
    /// Raised by an [`Interrupter`] of this engine; lowered when a statement starts. A statement
    /// that fails with it raised was cancelled, whatever DuckDB's message says.
    interrupted: Arc<AtomicBool>,
}

/// Cancels the statement an [`Engine`] is running, from another thread (Ctrl-C).
#[derive(Clone)]
pub struct Interrupter {
    duckdb: Arc<duckdb::InterruptHandle>,
    raised: Arc<AtomicBool>,
}

impl Interrupter {
    /// Interrupts the running statement, which then fails with [`QueryError::Interrupted`].
    pub fn interrupt(&self) {
        self.raised.store(true, Ordering::SeqCst);
        self.duckdb.interrupt();
    }
}

impl Engine {
    /// Opens the lake at `location`, registering every view; an S3 lake is read through a
    /// local copy that fetches only what changed.
    pub async fn open(location: &LakeLocation) -> Result<Engine, QueryError> {
        Engine::open_as_of(location, None).await
    }

    /// Opens the lake as it was at `as_of` (see [`AsOf`]): the views show that version and
    /// no newer one; `None` follows the newest, as [`Engine::open`].
    pub async fn open_as_of(
        location: &LakeLocation,
        as_of: Option<&AsOf>,
    ) -> Result<Engine, QueryError> {
        let db = Arc::new(raw::Database::open_in_memory()?);
        // Saves re-reading Parquet footers when a query scans a view more than once (a few % of
        // the bundled queries' time). It cannot go stale: the lake never rewrites a file under
        // the same name (docs/lake.md), and DuckDB re-reads a footer whose file changed anyway.
        db.connection()?.execute_batch(PARQUET_METADATA_CACHE)?;
        Engine::open_in(location, as_of, db, None).await
    }

    /// Opens the lake (its newest version, following syncs) in a catalog of its own, `catalog`,
    /// of a database other engines share (`hspq serve`'s sessions: one memory limit and one
    /// set of worker threads for all; see `serve::shared`). The database's settings are its
    /// owner's (set [`PARQUET_METADATA_CACHE`] there); the catalog goes when the engine does.
    pub(crate) async fn open_shared(
        location: &LakeLocation,
        db: Arc<raw::Database>,
        catalog: &str,
    ) -> Result<Engine, QueryError> {
        Engine::open_in(location, None, db, Some(catalog.to_string())).await
    }

    async fn open_in(
        location: &LakeLocation,
        as_of: Option<&AsOf>,
        db: Arc<raw::Database>,
        catalog: Option<String>,
    ) -> Result<Engine, QueryError> {
        let (root, notice, remote) = match (location, as_of) {
            // A past version is fixed: its files are fetched once, S3 is not asked again.
            (LakeLocation::S3 { .. }, Some(as_of)) => {
                (replica::fetch_version(location, as_of).await?, None, None)
            }
            (LakeLocation::S3 { .. }, None) => {
                let (root, notice) = replica::sync(location).await?;
                (root, notice, Some(location.clone()))
            }
            (LakeLocation::Local(root), _) => {
                if !root.is_dir() {
                    return Err(QueryError::NoLake(location.to_string()));
                }
                (root.canonicalize().unwrap_or(root.clone()), None, None)
            }
        };
        let conn = db.connection()?;
        if let Some(catalog) = &catalog {
            conn.execute_batch(&format!("ATTACH ':memory:' AS {}", quote_ident(catalog)))?;
        }
        let mut engine = Engine {
            conn,
            db,
            catalog,
            root,
            notice,
            remote,
            version: Cell::new(None),
            checked: Cell::new(Instant::now()),
            reading: Cell::new(false),
            pins: OnceCell::new(),
            pin: RefCell::new(None),
            pin_failed: Cell::new(false),
            fixed: Cell::new(false),
            interrupted: Arc::new(AtomicBool::new(false)),
        };
        if let Some(using) = engine.using() {
            engine.conn.execute_batch(&using)?;
        }
        if let Some(as_of) = as_of {
            let lake = engine.local_lake()?;
            let entry = log::resolve(&lake, as_of).await?;
            let newest = log::versions(&lake, None).await?.last().copied();
            // Which version a time or date named, said where the user looks (stderr).
            engine.notice = Some(format!(
                "reading v{} of {}, {} (--as-of)",
                entry.version,
                entry.written_at.format("%Y-%m-%d %H:%M:%SZ"),
                if newest == Some(entry.version) {
                    "the newest version, not following later syncs"
                } else {
                    "a past version"
                }
            ));
            engine.fixed.set(true);
            engine.register_views(Some(&entry))?;
            for (_, derived) in views::DERIVED.iter().chain(&views::MACROS) {
                engine.conn.execute_batch(derived)?;
            }
            return Ok(engine);
        }
        for attempt in 1.. {
            let latest = log::latest(&engine.local_lake()?).await?;
            // Creating a view opens its files (the derived ones, those of the views they read):
            // a sync that committed after the log was read may have deleted one of them, and
            // then has a newer commit to show.
            let created = engine.register_views(latest.as_ref()).and_then(|_| {
                // Once: they read the dataset views by name, which DuckDB binds at each query,
                // so a newer commit's views need no new ones.
                for (_, derived) in views::DERIVED.iter().chain(&views::MACROS) {
                    engine.conn.execute_batch(derived)?;
                }
                Ok(())
            });
            match created {
                Err(QueryError::Sql(e))
                    if e.is_missing_file() && attempt < MISSING_FILE_RETRIES => {}
                other => return other.map(|_| engine),
            }
        }
        unreachable!("the loop returns")
    }

    /// Shows the lake as it was at `as_of` from the next statement on, or (`None`) the
    /// newest version again, following syncs.
    pub fn set_as_of(&self, as_of: Option<&AsOf>) -> Result<(), QueryError> {
        let Some(as_of) = as_of else {
            if self.fixed.replace(false) {
                self.version.set(None);
                self.show_newest()?;
            }
            return Ok(());
        };
        let (lake, as_of) = (self.local_lake()?, as_of.clone());
        let entry = on_side_runtime(|| async move { log::resolve(&lake, &as_of).await })?;
        let was = self.fixed.replace(true);
        self.register_views(Some(&entry))
            .inspect_err(|_| self.fixed.set(was))
    }

    /// Whether it shows a past version (`--as-of`, `SET hspq.as_of`), not the newest.
    pub fn is_past(&self) -> bool {
        self.fixed.get()
    }

    /// Has `pins` write this engine's reader pins, for an engine that may not write itself (a
    /// confined `hspq serve` session); before its first statement.
    pub fn use_pins(&self, pins: Pins) {
        let _ = self.pins.set(pins);
    }

    /// The DuckDB connection holding the views.
    pub fn connection(&self) -> &duckdb::Connection {
        &self.conn
    }

    /// A second connection to the engine's database that parses and binds SQL without running
    /// it (what `hspq serve` decides with).
    pub fn inspector(&self) -> Result<raw::Inspector, QueryError> {
        self.db.inspector(self.using().as_deref())
    }

    /// Makes `conn`, a connection to this engine's database made elsewhere, see this engine's
    /// views (for a shared database's connections; nothing to do for a database of its own).
    pub fn adopt(&self, conn: &duckdb::Connection) -> Result<(), QueryError> {
        if let Some(using) = self.using() {
            conn.execute_batch(&using)?;
        }
        Ok(())
    }

    /// The statement that makes a connection of a shared database read this engine's catalog
    /// by default (DuckDB allows it once the configuration is locked).
    fn using(&self) -> Option<String> {
        self.catalog
            .as_ref()
            .map(|c| format!("USE {}", quote_ident(c)))
    }

    /// Another pin on the version the statement being read shows, for a result read after the
    /// statement returns (`hspq serve`'s portals and cursors); `None` when it reads unpinned.
    pub fn hold(&self) -> Option<Pin> {
        let version = self.pin.borrow().as_ref().map(Pin::version)?;
        self.pins.get()?.pin(version).ok()
    }

    /// What cancels this engine's running statement from another thread.
    pub fn interrupter(&self) -> Interrupter {
        Interrupter {
            duckdb: self.conn.interrupt_handle(),
            raised: self.interrupted.clone(),
        }
    }

    /// A statement's outcome, with a failure of a statement that was interrupted made
    /// [`QueryError::Interrupted`].
    fn cancelled<T>(&self, outcome: Result<T, QueryError>) -> Result<T, QueryError> {
        match outcome {
            Err(QueryError::Sql(_)) if self.interrupted.load(Ordering::SeqCst) => {
                Err(QueryError::Interrupted)
            }
            other => other,
        }
    }

    /// The log version the views show (`None` for a lake without a log).
    pub fn version(&self) -> Option<u64> {
        self.version.get()
    }

    /// The commit the views show, after picking up a newer one (`None` for a lake without a
    /// log): for what only the commit knows, such as a sync holding the lake.
    pub fn commit(&self) -> Result<Option<Entry>, QueryError> {
        self.refresh_if_changed()?;
        let lake = self.local_lake()?;
        let held = self.version.get();
        on_side_runtime(|| async move {
            match held {
                Some(v) => match log::read(&lake, v).await? {
                    Some(entry) => Ok(Some(entry)),
                    None => log::latest(&lake).await,
                },
                None => log::latest(&lake).await,
            }
        })
    }

    fn local_lake(&self) -> Result<Lake, LakeError> {
        Lake::open(&self.root.as_path().into())
    }

    /// Picks up a newer commit of the lake, if there is one; true when the views changed.
    /// Cheap: a listing of the log after the version held (an S3 lake is asked at most every
    /// two seconds; while it is unreachable the cache keeps answering).
    pub fn refresh_if_changed(&self) -> Result<bool, QueryError> {
        self.refresh(false)
    }

    fn refresh(&self, force: bool) -> Result<bool, QueryError> {
        if let (true, true, Some(v)) = (self.fixed.get(), force, self.version.get()) {
            // A file of the past version read moved to the history meanwhile: look again
            // where each file is.
            let lake = self.local_lake()?;
            let entry = on_side_runtime(|| async move { log::read(&lake, v).await })?;
            let entry = entry.ok_or_else(|| {
                QueryError::Lake(LakeError::Version(format!("v{v} is no longer kept")))
            })?;
            self.register_views(Some(&entry))?;
            return Ok(true);
        }
        // S3 is asked at most every few seconds; the copy's newest version is still shown, and
        // pinned, at every statement (the copy's next refresh keeps what a pin holds).
        if let Some(data) = self
            .remote
            .as_ref()
            .filter(|_| force || self.checked.get().elapsed() >= S3_CHECK_EVERY)
        {
            self.checked.set(Instant::now());
            let data = data.clone();
            if let Err(e) = on_side_runtime(|| async move { replica::sync(&data).await }) {
                warn!("could not refresh the local copy of the lake: {e}");
            }
        }
        self.show_newest()
    }

    /// Shows the newest version of the lake folder read; while a statement is being read
    /// (`Engine::reading`), pins the version shown and checks again that it is the newest (see
    /// [`crate::lake::pins`] for why that closes the race with a sync's clean-up). True when
    /// the views changed.
    fn show_newest(&self) -> Result<bool, QueryError> {
        let (mut changed, mut missing) = (false, 0);
        // Each round either shows a newer commit or pins: only syncs committing again and again
        // within microseconds keep it going, and then the statement runs unpinned (a file
        // deleted under it is still retried).
        for _ in 0..20 {
            let held = self.version.get();
            let newer = match self.fixed.get() {
                true => None,
                false => {
                    let lake = self.local_lake()?;
                    on_side_runtime(|| async move { log::newer_than(&lake, held).await })?
                }
            };
            match (newer, held) {
                (Some(entry), _) if Some(entry.version) != held => {
                    match self.register_views(Some(&entry)) {
                        Ok(()) => changed = true,
                        // Creating a view opens its files: a sync that committed again and
                        // deleted one of them in between has a newer commit to show.
                        Err(QueryError::Sql(e))
                            if e.is_missing_file() && missing + 1 < MISSING_FILE_RETRIES =>
                        {
                            missing += 1
                        }
                        Err(e) => return Err(e),
                    }
                }
                (_, Some(version)) if self.reading.get() => {
                    let pinned = self.pin.borrow().as_ref().map(Pin::version);
                    if pinned == Some(version) || !self.pin_version(version)? {
                        return Ok(changed);
                    }
                }
                _ => return Ok(changed),
            }
        }
        Ok(changed)
    }

    /// Pins `version` for the statement being read; false when it cannot (said once).
    fn pin_version(&self, version: u64) -> Result<bool, QueryError> {
        let pins = match self.pins.get() {
            Some(pins) => pins,
            None => {
                // The lake's own folder is tidied after pins end; an S3 lake's copy is kept
                // by its refresh.
                let started = match self.remote {
                    None => Pins::start_tidying(&self.root),
                    Some(_) => Pins::start(&self.root),
                }
                .map_err(|e| QueryError::Usage(format!("cannot start a thread: {e}")))?;
                self.pins.get_or_init(|| started)
            }
        };
        match pins.pin(version) {
            Ok(pin) => {
                drop(self.pin.replace(Some(pin)));
                Ok(true)
            }
            Err(e) => {
                if !self.pin_failed.replace(true) {
                    warn!(
                        "cannot pin the version read in {} ({e}): a sync that ends while a query \
                         runs may remove files it reads",
                        self.root.join(pins::PIN_DIR).display()
                    );
                }
                Ok(false)
            }
        }
    }

    /// Runs `f` on the newest version of the lake, pinned until `f` returns, so that no sync's
    /// clean-up removes a file it reads however long it takes.
    pub fn reading<T, E: From<QueryError>>(
        &self,
        f: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        self.reading.set(true);
        let outcome = self.refresh_if_changed().map_err(E::from).and_then(|_| f());
        self.reading.set(false);
        drop(self.pin.take());
        outcome
    }

    fn register_views(&self, entry: Option<&Entry>) -> Result<(), QueryError> {
        let root_text = self.root.display().to_string();
        // A past version's file that is neither in place nor in the history: say so, rather
        // than DuckDB's "no files found" for whatever view lists it.
        if let Some(entry) = entry.filter(|_| self.fixed.get()) {
            let gone =
                entry.manifest.files.keys().find(|p| {
                    !self.root.join(p).exists() && !self.root.join(history_path(p)).exists()
                });
            if let Some(gone) = gone {
                return Err(QueryError::Lake(crate::lake::LakeError::Version(format!(
                    "v{} can no longer be read: its file {gone} is gone from the lake's history \
                     (its retention passed, or it was removed); `hspq log` lists the versions kept",
                    entry.version
                ))));
            }
        }
        let mut sql = String::new();
        for d in Dataset::ALL {
            let source = if let Some(entry) = entry {
                let prefix = format!("{}/", d.name());
                let live: Vec<_> = entry
                    .manifest
                    .files
                    .iter()
                    .filter(|(p, _)| p.starts_with(&prefix))
                    .collect();
                let paths = live
                    .iter()
                    .map(
                        |(p, _)| match self.fixed.get() && !self.root.join(p).exists() {
                            // A past version's file that a sync retired.
                            true => format!("{root_text}/{}", history_path(p)),
                            false => format!("{root_text}/{p}"),
                        },
                    )
                    .collect();
                if live.iter().all(|(_, f)| f.unique_keys) {
                    Source::UniqueFiles(paths)
                } else {
                    Source::Files(paths)
                }
            } else if self.root.join(d.name()).is_dir() {
                // A lake copied without its bookkeeping: read what is there.
                Source::Glob(&root_text)
            } else {
                Source::Files(Vec::new())
            };
            sql.push_str(&views::view_sql(d, &source));
            sql.push('\n');
        }
        let files = entry.into_iter().flat_map(|e| {
            e.manifest
                .files
                .iter()
                .map(|(p, f)| (p.as_str(), f.rows, f.size, f.run_id.as_str()))
        });
        sql.push_str(&views::lake_files_sql(files));
        self.conn.execute_batch(&sql)?;
        self.version.set(entry.map(|e| e.version));
        Ok(())
    }

    /// Runs `f`; if it met a lake file deleted under it, picks up the newer commit and runs
    /// it once more.
    fn retrying<T>(&self, f: impl Fn() -> Result<T, QueryError>) -> Result<T, QueryError> {
        match f() {
            Err(QueryError::Sql(e)) if e.is_missing_file() && self.refresh(true)? => f(),
            other => other,
        }
    }

    /// Runs one statement through `f` on the engine's connection, after picking up a newer
    /// commit: once more if it met a lake file a sync deleted under it, and
    /// [`QueryError::Interrupted`] if an [`Interrupter`] cancelled it.
    pub fn statement<T>(
        &self,
        f: impl Fn(&duckdb::Connection) -> Result<T, QueryError>,
    ) -> Result<T, QueryError> {
        self.interrupted.store(false, Ordering::SeqCst);
        let outcome = self.reading(|| self.retrying(|| f(&self.conn)));
        self.cancelled(outcome)
    }

    /// Runs one SQL text (one or more statements); streams the last statement's result into
    /// `out`. Returns the rows written and the result's schema.
    pub fn run(
        &self,
        sql: &str,
        out: &mut ResultWriter<'_>,
    ) -> Result<(usize, Option<SchemaRef>), QueryError> {
        let statements = split_statements(sql);
        let Some((last, before)) = statements.split_last() else {
            return Err(QueryError::Usage("no SQL statement given".into()));
        };
        self.interrupted.store(false, Ordering::SeqCst);
        let outcome = self.reading(|| {
            for s in before {
                self.retrying(|| Ok(self.conn.execute_batch(s)?))?;
            }
            self.execute(last, Handover::Streamed, out)
        });
        self.cancelled(outcome)
    }

    /// Runs one statement whose result is report-sized (a bundled query) and writes it into
    /// `out`. DuckDB computes the whole result before the first row is written, which lets it
    /// finish the last step (a sort, say) on every core: a few % faster than streaming, at the
    /// cost of holding the result in memory, so [`Engine::run`] streams anything else.
    pub fn run_report(
        &self,
        sql: &str,
        out: &mut ResultWriter<'_>,
    ) -> Result<(usize, Option<SchemaRef>), QueryError> {
        self.interrupted.store(false, Ordering::SeqCst);
        self.cancelled(self.reading(|| self.execute(sql, Handover::Whole, out)))
    }

    /// Prepares and runs `sql`, writing the result into `out`; a statement that met a file
    /// deleted under it runs once more on the newer commit, if nothing was written yet.
    fn execute(
        &self,
        sql: &str,
        handover: Handover,
        out: &mut ResultWriter<'_>,
    ) -> Result<(usize, Option<SchemaRef>), QueryError> {
        let attempt = |out: &mut ResultWriter<'_>| {
            let mut stmt = self.conn.prepare(sql)?;
            self.write_result(&mut stmt, handover, out)
        };
        match attempt(out) {
            // Only when nothing was written yet: a retry must not print rows twice.
            Err(QueryError::Sql(e))
                if out.rows() == 0 && e.is_missing_file() && self.refresh(true)? =>
            {
                attempt(out)
            }
            // Half a result is out: say what happened and what to do, not only DuckDB's words.
            Err(QueryError::Sql(e)) if e.is_missing_file() => {
                let why = match self.pin_failed.get() {
                    true => "this reader could not pin the version it read (see the warning above)",
                    false => "the version it read was not pinned",
                };
                Err(QueryError::Usage(format!(
                    "a sync removed a file this query was reading, after {} row(s) were written \
                     ({why}): run it again. DuckDB said: {}",
                    out.rows(),
                    e.message().lines().last().unwrap_or_default()
                )))
            }
            other => other,
        }
    }

    /// Executes a prepared statement and writes its result into `out`, batch by batch.
    fn write_result(
        &self,
        stmt: &mut duckdb::Statement<'_>,
        handover: Handover,
        out: &mut ResultWriter<'_>,
    ) -> Result<(usize, Option<SchemaRef>), QueryError> {
        let schema = match handover {
            Handover::Streamed => stmt.stream_arrow([])?.get_schema(),
            Handover::Whole => stmt.query_arrow([])?.get_schema(),
        };
        let mut rows = 0;
        // `step` returns DuckDB's errors (an interrupt, say) where the iterator would panic.
        while let Some(chunk) = stmt.step()? {
            let batch = RecordBatch::from(&chunk);
            rows += batch.num_rows();
            out.write(&batch)?;
        }
        Ok((rows, Some(schema)))
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // A shared database's catalog goes with its engine. Connections still reading it (a
        // result being streamed) finish what they read; DuckDB lets a catalog go under them.
        if let Some(catalog) = &self.catalog {
            let detach = format!("USE memory; DETACH {}", quote_ident(catalog));
            if let Err(e) = self.conn.execute_batch(&detach) {
                warn!(
                    "could not let DuckDB's catalog {catalog} go: {}",
                    sql_message(&e)
                );
            }
        }
    }
}

/// The setting an engine's database gets: see [`Engine::open_as_of`].
pub const PARQUET_METADATA_CACHE: &str = "SET parquet_metadata_cache = true";

/// `name` as a DuckDB identifier.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// How DuckDB hands a result over.
#[derive(Clone, Copy)]
enum Handover {
    /// Chunk by chunk as it is computed: memory stays bounded whatever the result's size.
    Streamed,
    /// Computed whole first.
    Whole,
}

/// Runs `fut` to completion on a runtime of its own, on a thread of its own: the engine's
/// callers are synchronous (the shell, DuckDB's statement loop) and may or may not run inside
/// a runtime already.
fn on_side_runtime<T: Send, E: Into<QueryError>, F: std::future::Future<Output = Result<T, E>>>(
    make: impl FnOnce() -> F + Send,
) -> Result<T, QueryError> {
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| QueryError::Usage(format!("cannot start a runtime: {e}")))?
                .block_on(make())
                .map_err(Into::into)
        })
        .join()
        .unwrap_or_else(|_| Err(QueryError::Usage("reading the lake's log failed".into())))
    })
}

/// SQL text cut into code and, between the pieces of code, quoted strings, quoted names and
/// comments, in order (true for code): what splitting at `;`, binding `$name` and completion
/// must not look inside. Concatenated, the pieces are the text.
pub fn sql_segments(sql: &str) -> Vec<(bool, &str)> {
    let mut out = Vec::new();
    let bytes = sql.as_bytes();
    let (mut code_from, mut i) = (0, 0);
    while i < bytes.len() {
        // Where the quoted string or comment starting at i ends (ASCII markers only, so every
        // index is a char boundary); an unclosed one runs to the end.
        let end = match bytes[i] {
            q @ (b'\'' | b'"') => Some(
                sql[i + 1..]
                    .find(q as char)
                    .map_or(sql.len(), |j| i + j + 2),
            ),
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                Some(sql[i..].find('\n').map_or(sql.len(), |j| i + j + 1))
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                Some(sql[i + 2..].find("*/").map_or(sql.len(), |j| i + j + 4))
            }
            _ => None,
        };
        match end {
            Some(end) => {
                if code_from < i {
                    out.push((true, &sql[code_from..i]));
                }
                out.push((false, &sql[i..end]));
                (code_from, i) = (end, end);
            }
            None => i += 1,
        }
    }
    if code_from < sql.len() {
        out.push((true, &sql[code_from..]));
    }
    out
}

/// Splits SQL text into statements at semicolons outside quotes and comments.
pub fn split_statements(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for (code, text) in sql_segments(sql) {
        if !code {
            current.push_str(text);
            continue;
        }
        let mut parts = text.split(';');
        current.push_str(parts.next().unwrap_or_default());
        for part in parts {
            out.push(std::mem::take(&mut current));
            current.push_str(part);
        }
    }
    out.push(current);
    out.into_iter()
        .filter(|s| !is_blank(s))
        .map(|s| s.trim().to_string())
        .collect()
}

/// Whether SQL text holds only whitespace and comments.
fn is_blank(s: &str) -> bool {
    sql_segments(s).iter().all(|(code, text)| {
        if *code {
            text.trim().is_empty()
        } else {
            text.starts_with("--") || text.starts_with("/*")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_split_outside_quotes_and_comments() {
        let sql = "select 'a;b' as x; -- c;d\n select \"e;f\" /* g;h */ ;\n\n -- only a comment;\n";
        assert_eq!(
            split_statements(sql),
            vec!["select 'a;b' as x", "-- c;d\n select \"e;f\" /* g;h */"]
        );
        assert_eq!(split_statements("select 1"), vec!["select 1"]);
        assert!(split_statements(" ; -- nothing\n").is_empty());
        let sql = "a 'b;''c' \"d\" -- e\n/* f */ g /* open";
        let segments = sql_segments(sql);
        assert_eq!(
            segments,
            vec![
                (true, "a "),
                (false, "'b;'"),
                (false, "'c'"),
                (true, " "),
                (false, "\"d\""),
                (true, " "),
                (false, "-- e\n"),
                (false, "/* f */"),
                (true, " g "),
                (false, "/* open"),
            ]
        );
        assert_eq!(segments.iter().map(|(_, t)| *t).collect::<String>(), sql);
    }
}

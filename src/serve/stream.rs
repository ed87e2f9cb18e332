//! A query's result sent as the client reads it, never built whole: the query runs on a
//! connection and a thread of its own, which hands DuckDB's batches to the client's side through
//! a channel a few batches deep, and waits while the client does not read. Ordinary results, an
//! Execute with a row limit (a portal left suspended between Executes) and server-side cursors
//! ([`super::cursor`]) all read one.
//!
//! Its own thread because a portal or cursor may stay open while the client runs other
//! statements on the same connection (pgjdbc's `setFetchSize`, psycopg2's named cursors);
//! spawned by the session's thread, it inherits the session's confinement, and waits for the
//! session's next result once this one is done ([`Pool::run`]). It holds a reader
//! pin on the version it reads, so no sync's clean-up removes a file under it however slowly
//! the client reads (see [`crate::lake::pins`]).
//!
//! `--query-timeout` counts the time DuckDB spends on it, not the time it waits for its client.
//!
//! What a result holds while its client does not read: one batch in the channel, one being
//! encoded, and DuckDB's own streaming buffer, kept small ([`STREAMING_BUFFER`]): DuckDB counts
//! a batch's fixed-width part there, not its strings, and at its default (about 1 MB) buffered
//! some 50,000 rows of any width ahead of the reader (100 KB rows: 5 GB, found by an outside
//! attack). The setting is a connection's own and cannot change once the configuration is
//! locked, so the connections results run on are made beforehand (see [`super::shared`]).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread;
use std::time::{Duration, Instant};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use futures_util::Stream;
use pgwire::api::results::{DataRowEncoder, FieldFormat, FieldInfo};
use pgwire::error::PgWireResult;
use pgwire::messages::data::DataRow;

use super::encode;
use super::session::Failure;
use super::shared::Shared;
use crate::lake::pins::Pin;
use crate::query::QueryError;

/// Batches made ahead of the client's reading (DuckDB's batches hold up to 2,048 rows).
const BATCHES_AHEAD: usize = 1;

/// Results one connection may hold open at once (each a thread and a DuckDB connection).
pub const OPEN_RESULTS: usize = 64;

/// DuckDB's buffer between a streaming result and its reader, per result.
pub const STREAMING_BUFFER: &str = "1KiB";

/// How long opening a result waits for a connection a closed one is still giving back.
const POOL_WAIT: Duration = Duration::from_secs(2);

/// The connections a session's results run on, taken from the stock of the database the
/// sessions share (made before its configuration was locked, see [`super::shared`]) and given
/// back when the session and its last result are gone.
pub struct Pool {
    free: Mutex<Vec<duckdb::Connection>>,
    given_back: std::sync::Condvar,
    home: Arc<Shared>,
    /// Result threads waiting for their next result (see [`Pool::run`]).
    idle: Mutex<Vec<std::sync::mpsc::Sender<Job>>>,
}

/// What a result thread runs.
type Job = Box<dyn FnOnce() + Send>;

/// Result threads a session keeps waiting for its next results. A thread a result had to
/// itself cost more than the result's own work under a dashboard's load: each new thread
/// started with DuckDB's per-thread caches cold (an eighth of the server's time went to the
/// kernel zeroing fresh pages).
const IDLE_THREADS: usize = 4;

impl Pool {
    /// A pool of `conns`, each made to see the session's views by `adopt`.
    pub fn new(
        conns: Vec<duckdb::Connection>,
        home: &Arc<Shared>,
        adopt: impl Fn(&duckdb::Connection) -> Result<(), QueryError>,
    ) -> Result<Arc<Pool>, QueryError> {
        let pool = Arc::new(Pool {
            free: Mutex::new(conns),
            given_back: std::sync::Condvar::new(),
            home: home.clone(),
            idle: Mutex::default(),
        });
        // Failing, the pool is dropped and gives every connection back to the stock.
        for conn in pool.free.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            adopt(conn)?;
        }
        Ok(pool)
    }

    /// Runs `job` on a result thread: one waiting for work, or a new one (started by the
    /// calling thread, the session's, whose confinement it inherits).
    fn run(self: &Arc<Pool>, job: Job) -> std::io::Result<()> {
        let mut job = job;
        while let Some(idle) = self.idle.lock().ok().and_then(|mut idle| idle.pop()) {
            match idle.send(job) {
                Ok(()) => return Ok(()),
                // That thread is gone: the job comes back.
                Err(std::sync::mpsc::SendError(back)) => job = back,
            }
        }
        let pool = Arc::downgrade(self);
        thread::Builder::new()
            .name("hspq-serve-result".into())
            .stack_size(STREAM_STACK)
            .spawn(move || result_thread(job, pool))?;
        Ok(())
    }

    /// A connection, waiting a little for one a closed result is giving back.
    fn lease(self: &Arc<Pool>) -> Option<Lease> {
        let free = self.free.lock().ok()?;
        let (mut free, _) = self
            .given_back
            .wait_timeout_while(free, POOL_WAIT, |free| free.is_empty())
            .ok()?;
        let conn = free.pop()?;
        Some(Lease {
            conn: Some(conn),
            pool: self.clone(),
        })
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let free = std::mem::take(self.free.get_mut().unwrap_or_else(|p| p.into_inner()));
        self.home.give_back(free);
    }
}

/// A result thread: runs its job, then waits for the next while its session's pool lives and
/// keeps fewer than [`IDLE_THREADS`] waiting.
fn result_thread(first: Job, pool: Weak<Pool>) {
    let mut job = first;
    loop {
        job();
        let (next, inbox) = std::sync::mpsc::channel();
        {
            let Some(pool) = pool.upgrade() else { return };
            let Ok(mut idle) = pool.idle.lock() else {
                return;
            };
            if idle.len() >= IDLE_THREADS {
                return;
            }
            idle.push(next);
        }
        // Ends when the pool, and the sender it kept, is dropped.
        match inbox.recv() {
            Ok(next) => job = next,
            Err(_) => return,
        }
    }
}

/// A connection of a [`Pool`], given back when dropped.
struct Lease {
    conn: Option<duckdb::Connection>,
    pool: Arc<Pool>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let (Some(conn), Ok(mut free)) = (self.conn.take(), self.pool.free.lock()) {
            free.push(conn);
            self.pool.given_back.notify_one();
        }
    }
}

/// The stack of a result's thread: DuckDB binds on it (see the session's).
const STREAM_STACK: usize = 64 << 20;

/// What a result's thread and its reader share.
pub struct Control {
    /// DuckDB's time on this result so far, and since when it is working now.
    busy: Mutex<(Duration, Option<Instant>)>,
    interrupt: Arc<duckdb::InterruptHandle>,
    /// Why it was interrupted, if it was: the client's cancel, or its time ran out.
    cancelled: AtomicBool,
    timed_out: AtomicBool,
    /// A client is waiting for its next batch (a cancel request then concerns it).
    read: AtomicBool,
    /// Its reader is gone (the result was read, closed or dropped): it no longer counts as
    /// open, though its thread may still be finishing a batch.
    closed: AtomicBool,
    timeout: Duration,
}

impl Control {
    fn working<T>(&self, f: impl FnOnce() -> T) -> T {
        if let Ok(mut busy) = self.busy.lock() {
            busy.1 = Some(Instant::now());
        }
        let outcome = f();
        if let Ok(mut busy) = self.busy.lock() {
            if let Some(since) = busy.1.take() {
                busy.0 += since.elapsed();
            }
        }
        outcome
    }

    /// DuckDB's time on this result, the batch it works on now included.
    fn busy(&self) -> Duration {
        self.busy
            .lock()
            .map(|b| b.0 + b.1.map_or(Duration::ZERO, |s| s.elapsed()))
            .unwrap_or_default()
    }

    fn is_working(&self) -> bool {
        self.busy.lock().map(|b| b.1.is_some()).unwrap_or(false)
    }

    /// Cancels the result if it is running or being read (a client's cancel request concerns
    /// the statement it waits for, not a cursor left open).
    pub fn cancel(&self) {
        if self.is_working() || self.read.load(Ordering::SeqCst) {
            self.cancelled.store(true, Ordering::SeqCst);
            self.interrupt.interrupt();
        }
    }

    fn time_out(&self) {
        self.timed_out.store(true, Ordering::SeqCst);
        self.interrupt.interrupt();
    }

    /// Why a failure happened: the cancel or the time limit that interrupted it, if one did.
    fn failure(&self, e: QueryError) -> Failure {
        if self.timed_out.load(Ordering::SeqCst) {
            Failure::timed_out(self.timeout)
        } else if self.cancelled.load(Ordering::SeqCst) {
            Failure::from(QueryError::Interrupted)
        } else {
            Failure::from(e)
        }
    }
}

/// The results open in one session, so that a cancel request reaches the one running.
#[derive(Default, Clone)]
pub struct Open(Arc<Mutex<Vec<Weak<Control>>>>);

impl Open {
    fn add(&self, control: &Arc<Control>) {
        if let Ok(mut open) = self.0.lock() {
            open.retain(|c| c.strong_count() > 0);
            open.push(Arc::downgrade(control));
        }
    }

    /// How many are open (their readers not gone).
    pub fn count(&self) -> usize {
        self.0
            .lock()
            .map(|open| {
                open.iter()
                    .filter_map(Weak::upgrade)
                    .filter(|c| !c.closed.load(Ordering::SeqCst))
                    .count()
            })
            .unwrap_or(0)
    }

    /// Cancels those running or being read.
    pub fn cancel(&self) {
        if let Ok(open) = self.0.lock() {
            for control in open.iter().filter_map(Weak::upgrade) {
                control.cancel();
            }
        }
    }
}

/// A result being made: its columns, and its batches as its thread makes them.
pub struct Batches {
    pub schema: SchemaRef,
    batches: tokio::sync::mpsc::Receiver<Result<RecordBatch, Failure>>,
    control: Arc<Control>,
}

impl Batches {
    /// The next batch; `None` after the last. Interrupts DuckDB once its time on this result
    /// passes the limit.
    pub async fn next(&mut self) -> Option<Result<RecordBatch, Failure>> {
        let control = self.control.clone();
        control.read.store(true, Ordering::SeqCst);
        let next = loop {
            if control.cancelled.load(Ordering::SeqCst) {
                break Some(Err(control.failure(QueryError::Interrupted)));
            }
            let left = control.timeout.saturating_sub(control.busy());
            let wait = left.max(Duration::from_millis(50));
            match tokio::time::timeout(wait, self.batches.recv()).await {
                Ok(next) => break next,
                // DuckDB's time, not the wait: only the former counts.
                Err(_) if control.busy() >= control.timeout => control.time_out(),
                Err(_) => {}
            }
        };
        control.read.store(false, Ordering::SeqCst);
        next
    }
}

impl Drop for Batches {
    fn drop(&mut self) {
        self.control.closed.store(true, Ordering::SeqCst);
        // The client went, or closed the portal or cursor: stop DuckDB if it is working on it.
        if self.control.is_working() {
            self.control.interrupt.interrupt();
        }
    }
}

/// Starts `sql` on a connection of `pool` (the session database's, the views already showing
/// the version `pin` holds) on a thread of its own. Returns once DuckDB has started it, or
/// with why it could not, as [`QueryError`] so that the session can retry a statement that met
/// a file a sync deleted; `None` when no connection is free.
pub fn start(
    pool: &Arc<Pool>,
    sql: String,
    params: Vec<Option<String>>,
    pin: Option<Pin>,
    timeout: Duration,
    open: &Open,
) -> Option<Result<Batches, QueryError>> {
    let lease = pool.lease()?;
    Some(start_on(lease, sql, params, pin, timeout, open))
}

fn start_on(
    mut lease: Lease,
    sql: String,
    params: Vec<Option<String>>,
    pin: Option<Pin>,
    timeout: Duration,
    open: &Open,
) -> Result<Batches, QueryError> {
    let conn = lease
        .conn
        .take()
        .ok_or_else(|| QueryError::Usage("a leased connection is gone".into()))?;
    let control = Arc::new(Control {
        busy: Mutex::new((Duration::ZERO, None)),
        interrupt: conn.interrupt_handle(),
        cancelled: AtomicBool::new(false),
        timed_out: AtomicBool::new(false),
        read: AtomicBool::new(false),
        closed: AtomicBool::new(false),
        timeout,
    });
    open.add(&control);
    let (started, start) = std::sync::mpsc::channel();
    let (batches, receiver) = tokio::sync::mpsc::channel(BATCHES_AHEAD);
    let shared = control.clone();
    let pool = lease.pool.clone();
    pool.run(Box::new(move || {
        let control = shared;
        // Held until the last batch is made or the reader is gone, and removed before the
        // reader hears the end: a client that has its whole answer finds no pin of it left.
        // The connection goes back to the pool then.
        let mut lease = lease;
        run(&conn, &sql, &params, &control, started, &batches);
        drop(pin);
        drop(batches);
        lease.conn = Some(conn);
    }))
    .map_err(|e| QueryError::Usage(format!("cannot start a thread for a result: {e}")))?;
    let schema = match start.recv() {
        Ok(Ok(schema)) => schema,
        Ok(Err(e)) => return Err(e),
        Err(_) => return Err(QueryError::Usage("the result's thread ended".into())),
    };
    Ok(Batches {
        schema,
        batches: receiver,
        control,
    })
}

/// A result's thread: prepares and starts `sql`, says so on `started`, then sends its batches.
fn run(
    conn: &duckdb::Connection,
    sql: &str,
    params: &[Option<String>],
    control: &Control,
    started: std::sync::mpsc::Sender<Result<SchemaRef, QueryError>>,
    batches: &tokio::sync::mpsc::Sender<Result<RecordBatch, Failure>>,
) {
    let mut stmt = match conn.prepare(sql) {
        Ok(stmt) => stmt,
        Err(e) => {
            let _ = started.send(Err(QueryError::from(e)));
            return;
        }
    };
    let schema = control.working(|| {
        stmt.stream_arrow(duckdb::params_from_iter(params.iter()))
            .map(|arrow| arrow.get_schema())
    });
    match schema {
        Ok(schema) => {
            if started.send(Ok(schema)).is_err() {
                return;
            }
        }
        Err(e) => {
            let _ = started.send(Err(QueryError::from(e)));
            return;
        }
    }
    loop {
        let item = match control.working(|| stmt.step()) {
            Ok(Some(array)) => Ok(RecordBatch::from(&array)),
            Ok(None) => return,
            Err(e) => Err(control.failure(QueryError::from(e))),
        };
        let last = item.is_err();
        if batches.blocking_send(item).is_err() || last {
            return;
        }
    }
}

/// Rows encoded at a time (a cursor's FETCH may change the formats between them).
const ENCODE_ROWS: usize = 256;

/// A result's rows as PostgreSQL data rows, each column in the format its field says.
pub struct Rows {
    fields: Arc<Vec<FieldInfo>>,
    batches: Batches,
    /// The batch being sent, and how many of its rows are sent or encoded into `ready`.
    batch: Option<RecordBatch>,
    at: usize,
    /// Encoded rows of `batch`, just before `at`.
    ready: VecDeque<DataRow>,
    done: bool,
    /// Why it failed, once it did: a cursor read again says so rather than look finished.
    failed: Option<String>,
}

impl Rows {
    pub fn new(fields: Arc<Vec<FieldInfo>>, batches: Batches) -> Rows {
        Rows {
            fields,
            batches,
            batch: None,
            at: 0,
            ready: VecDeque::new(),
            done: false,
            failed: None,
        }
    }

    /// The error every read after a failure gets.
    fn failed_before(&self) -> Option<PgWireResult<()>> {
        self.failed.as_ref().map(|why| {
            Err(super::user_error(
                "55000",
                format!(
                    "this cursor's query failed earlier ({why}): CLOSE it and DECLARE it again"
                ),
            ))
        })
    }

    /// Sends the rows from here on in these fields' formats (a FETCH's own formats).
    pub fn set_fields(&mut self, fields: Arc<Vec<FieldInfo>>) {
        self.at -= self.ready.len();
        self.ready.clear();
        self.fields = fields;
    }

    /// The next row; `None` after the last (or after an error, which comes once).
    pub async fn next(&mut self) -> Option<PgWireResult<DataRow>> {
        loop {
            if let Some(row) = self.ready.pop_front() {
                return Some(Ok(row));
            }
            if let Err(e) = self.current().await? {
                return Some(Err(e));
            }
            let batch = self.batch.as_ref()?;
            let n = (batch.num_rows() - self.at).min(ENCODE_ROWS);
            let slice = batch.slice(self.at, n);
            self.at += n;
            match data_rows(&self.fields, &slice) {
                Ok(rows) => self.ready.extend(rows),
                Err(e) => {
                    self.done = true;
                    self.failed = Some(e.to_string());
                    return Some(Err(e));
                }
            }
        }
    }

    /// Passes over up to `n` rows (MOVE); how many there were.
    pub async fn skip(&mut self, n: u64) -> PgWireResult<u64> {
        let mut skipped = 0;
        while skipped < n {
            if self.ready.pop_front().is_some() {
                skipped += 1;
                continue;
            }
            match self.current().await {
                None => break,
                Some(Err(e)) => return Err(e),
                Some(Ok(())) => {
                    let left = self.batch.as_ref().map_or(0, |b| b.num_rows() - self.at);
                    let take = left.min(usize::try_from(n - skipped).unwrap_or(usize::MAX));
                    self.at += take;
                    skipped += take as u64;
                }
            }
        }
        Ok(skipped)
    }

    /// Makes sure the batch being sent has rows left; `None` at the end.
    async fn current(&mut self) -> Option<PgWireResult<()>> {
        if let Some(failed) = self.failed_before() {
            return Some(failed);
        }
        loop {
            if self.batch.as_ref().is_some_and(|b| self.at < b.num_rows()) {
                return Some(Ok(()));
            }
            self.batch = None;
            self.at = 0;
            if self.done {
                return None;
            }
            match self.batches.next().await {
                None => {
                    self.done = true;
                    return None;
                }
                Some(Err(failure)) => {
                    self.done = true;
                    self.failed = Some(failure.message.clone());
                    return Some(Err(super::user_error(failure.code, failure.message)));
                }
                Some(Ok(batch)) => self.batch = Some(batch),
            }
        }
    }

    /// The rows as the stream pgwire sends.
    pub fn into_stream(self) -> impl Stream<Item = PgWireResult<DataRow>> + Send + 'static {
        futures_util::stream::unfold(self, |mut rows| async move {
            rows.next().await.map(|row| (row, rows))
        })
    }
}

/// One batch's rows as data rows in the fields' formats.
pub fn data_rows(fields: &Arc<Vec<FieldInfo>>, batch: &RecordBatch) -> PgWireResult<Vec<DataRow>> {
    let encoding = |e: arrow::error::ArrowError| {
        super::user_error("XX000", format!("cannot encode the result: {e}"))
    };
    let columns = batch
        .columns()
        .iter()
        .zip(fields.iter())
        .map(|(column, field)| match field.format() {
            FieldFormat::Binary => encode::binaries(column),
            FieldFormat::Text => encode::texts(column).map(|texts| {
                texts
                    .into_iter()
                    .map(|t| t.map(String::into_bytes))
                    .collect()
            }),
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(encoding)?;
    let mut out = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        let mut encoder = DataRowEncoder::new(fields.clone());
        for (column, field) in columns.iter().zip(fields.iter()) {
            // Bytes already in the field's format: `encode` spells values as PostgreSQL does,
            // which pgwire's own text encoding would not (arrays, say).
            encoder.encode_field_with_type_and_format(
                &encode::Encoded(column[row].as_deref()),
                field.datatype(),
                field.format(),
                field.format_options(),
            )?;
        }
        out.push(encoder.take_row());
    }
    Ok(out)
}

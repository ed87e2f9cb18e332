//! One client's DuckDB: an [`Engine`] over the lake on a thread of its own, so a slow client
//! or a long query holds up nobody else, sandboxed so that SQL reads the lake's files and
//! nothing else.

use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::copy::CopyData;
use tokio::sync::oneshot;

use super::catalog::{Catalog, Identity};
use super::confine::{ConfineError, Confinement, Enforced};
use super::copy::{self, CopyFormat, CopyOut};
use super::guard::{self, Guard, Refusal};
use super::shared::Shared;
use super::stream::{self, Batches, Open, Pool};
use crate::lake::log::AsOf;
use crate::lake::{LakeError, LakeLocation};
use crate::query::raw::ParamType;
use crate::query::{Engine, Interrupter, QueryError, SqlError};

/// Why a client's session could not open.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Landlock refused.
    #[error(transparent)]
    Confine(#[from] ConfineError),
    /// The lake could not be opened.
    #[error(transparent)]
    Lake(#[from] QueryError),
    /// DuckDB refused a step of the set-up (`what`: connect, make the catalog, sandbox).
    #[error("cannot {what}: {detail}")]
    Setup {
        /// The step.
        what: &'static str,
        /// DuckDB's message.
        detail: String,
    },
    /// The operating system refused the session's thread or its runtime.
    #[error("cannot start a session thread: {0}")]
    Thread(#[from] std::io::Error),
    /// The session's thread ended before it was ready.
    #[error("the session thread ended")]
    Ended,
}

/// The connections a session's results run on: as many as it may keep open, and a few that a
/// closed one may still be giving back.
pub const RESULT_CONNECTIONS: usize = stream::OPEN_RESULTS + 8;

/// The stack of a session's thread.
const SESSION_STACK: usize = 256 << 20;

/// Why a statement gave nothing: the SQLSTATE a client is told, and the message.
#[derive(Debug)]
pub struct Failure {
    pub code: &'static str,
    pub message: String,
}

impl Failure {
    fn other(message: impl Into<String>) -> Failure {
        Failure {
            code: "58000",
            message: message.into(),
        }
    }

    /// A statement stopped at --query-timeout.
    pub fn timed_out(timeout: Duration) -> Failure {
        Failure {
            code: "57014",
            message: format!(
                "canceling statement due to statement timeout ({} s, hspq serve \
                 --query-timeout)",
                timeout.as_secs()
            ),
        }
    }
}

impl From<QueryError> for Failure {
    fn from(e: QueryError) -> Self {
        match e {
            QueryError::Interrupted => Failure {
                code: "57014",
                message: "canceling statement due to user request".into(),
            },
            QueryError::Sql(e) => Failure {
                code: e.sqlstate(),
                message: e.message().to_string(),
            },
            other => {
                let message = other.to_string();
                Failure {
                    code: guard::sqlstate(&message),
                    message,
                }
            }
        }
    }
}

impl From<Refusal> for Failure {
    fn from(r: Refusal) -> Self {
        Failure {
            code: r.code(),
            message: r.message().to_string(),
        }
    }
}

/// What a client asks its session for.
enum Job {
    /// Starts `sql` with `params` bound to `$1`, `$2`, ... (NULL for `None`), its result read
    /// as the client reads it (see [`stream`]), DuckDB's time on it limited to the duration.
    Open(
        String,
        Vec<Option<String>>,
        Duration,
        oneshot::Sender<Result<Batches, Failure>>,
    ),
    /// Streams the rows of a `COPY ... TO STDOUT` into the channel, one message a row (a
    /// bounded channel: DuckDB waits for a client that reads slowly); first says how many
    /// columns, or why it cannot run.
    Copy(
        CopyOut,
        oneshot::Sender<Result<usize, Failure>>,
        tokio::sync::mpsc::Sender<PgWireResult<CopyData>>,
        Duration,
    ),
    /// Reads the lake as it was at this version (`None`: the newest, following syncs).
    AsOf(Option<AsOf>, oneshot::Sender<Result<(), Failure>>),
    /// The columns `sql` would give and how many parameters it takes.
    Describe(
        String,
        oneshot::Sender<Result<(SchemaRef, Vec<ParamType>), Failure>>,
    ),
}

/// A client's engine, on its own thread; dropping it ends the thread.
pub struct Session {
    jobs: mpsc::Sender<Job>,
    interrupter: Interrupter,
    /// The results being read.
    open: Open,
}

impl Session {
    /// Opens the lake for one client, with the PostgreSQL catalog it is shown, on a thread
    /// confined before DuckDB starts (see [`super::confine`]).
    pub async fn start(
        lake: LakeLocation,
        who: Identity,
        confinement: Arc<Confinement>,
        shared: Arc<Shared>,
    ) -> Result<Session, SessionError> {
        let (jobs, inbox) = mpsc::channel::<Job>();
        let (ready, opened) = oneshot::channel();
        let open = Open::default();
        let opened_here = open.clone();
        thread::Builder::new()
            .name("hspq-serve-session".into())
            // DuckDB parses and binds on this thread, recursing once per level of nesting: a
            // list nested a few hundred deep overflowed the default 2 MiB (only the pages used
            // are committed).
            .stack_size(SESSION_STACK)
            .spawn(move || {
                // First: DuckDB's worker threads, started when the engine opens, inherit it.
                match confinement.enter() {
                    Ok(Enforced::Fully | Enforced::Partly) => {}
                    // Said once at start; the first guard still holds.
                    Ok(Enforced::No) => {}
                    Err(e) => {
                        let _ = ready.send(Err(e.into()));
                        return;
                    }
                }
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = ready.send(Err(e.into()));
                        return;
                    }
                };
                let catalog = shared.catalog_name();
                let engine =
                    match runtime.block_on(Engine::open_shared(&lake, shared.db(), &catalog)) {
                        Ok(engine) => engine,
                        Err(e) => {
                            let _ = ready.send(Err(e.into()));
                            return;
                        }
                    };
                drop(runtime);
                if let Some(pins) = confinement.pins() {
                    engine.use_pins(pins.clone());
                }
                let pool = match Pool::new(shared.take(RESULT_CONNECTIONS), &shared, |c| {
                    engine.adopt(c)
                }) {
                    Ok(pool) => pool,
                    Err(e) => {
                        let _ = ready.send(Err(SessionError::Setup {
                            what: "connect to DuckDB",
                            detail: e.to_string(),
                        }));
                        return;
                    }
                };
                let catalog = match engine
                    .statement(|conn| Ok(Catalog::install(conn, &who)?))
                    .map_err(|e| SessionError::Setup {
                        what: "make the PostgreSQL catalog",
                        detail: e.to_string(),
                    })
                    .and_then(|catalog| Ok((catalog, Guard::new(engine.inspector()?))))
                {
                    Ok(catalog) => catalog,
                    Err(e) => {
                        let _ = ready.send(Err(e));
                        return;
                    }
                };
                if ready.send(Ok(engine.interrupter())).is_err() {
                    return;
                }
                let (catalog, guard) = catalog;
                for job in inbox {
                    match job {
                        Job::Open(sql, params, timeout, reply) => {
                            let sql = catalog.respell(&sql);
                            let started =
                                start(&engine, &guard, &pool, &sql, &params, timeout, &opened_here);
                            let _ = reply.send(started);
                        }
                        Job::AsOf(as_of, reply) => {
                            let set = engine.set_as_of(as_of.as_ref()).map_err(|e| match e {
                                // A version the lake does not keep: a bad value, the client's.
                                QueryError::Lake(LakeError::Version(message)) => Failure {
                                    code: "22023",
                                    message,
                                },
                                e => Failure::from(e),
                            });
                            let _ = reply.send(set);
                        }
                        Job::Describe(sql, reply) => {
                            let sql = catalog.respell(&sql);
                            let _ = reply.send(describe(&engine, &guard, &sql));
                        }
                        Job::Copy(mut copy, ready, rows, timeout) => {
                            copy.query = catalog.respell(&copy.query).into_owned();
                            copy_out(&engine, &guard, &copy, ready, &rows, timeout);
                        }
                    }
                }
            })?;
        let interrupter = opened.await.map_err(|_| SessionError::Ended)??;
        Ok(Session {
            jobs,
            interrupter,
            open,
        })
    }

    /// Starts one statement, if it is a read; its rows come as the client reads them.
    pub async fn open(
        &self,
        sql: String,
        params: Vec<Option<String>>,
        timeout: Duration,
    ) -> Result<Batches, Failure> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job::Open(sql, params, timeout, reply))
            .map_err(|_| ended())?;
        answer.await.map_err(|_| ended())?
    }

    /// How many results are open (portals and cursors not read to their end).
    pub fn open_results(&self) -> usize {
        self.open.count()
    }

    /// Starts a `COPY ... TO STDOUT` whose rows come through `rows`; the answer says how many
    /// columns once the first rows are made, or why it cannot run.
    pub fn copy(
        &self,
        copy: CopyOut,
        rows: tokio::sync::mpsc::Sender<PgWireResult<CopyData>>,
        timeout: Duration,
    ) -> oneshot::Receiver<Result<usize, Failure>> {
        let (ready, answer) = oneshot::channel();
        // A session that ended drops `ready`, which the caller hears.
        let _ = self.jobs.send(Job::Copy(copy, ready, rows, timeout));
        answer
    }

    /// The columns and parameter count of one statement, if it is a read.
    pub async fn describe(&self, sql: String) -> Result<(SchemaRef, Vec<ParamType>), Failure> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job::Describe(sql, reply))
            .map_err(|_| ended())?;
        answer.await.map_err(|_| ended())?
    }

    /// Makes the session read the lake as it was at `as_of` (`None`: the newest again).
    pub async fn as_of(&self, as_of: Option<AsOf>) -> Result<(), Failure> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job::AsOf(as_of, reply))
            .map_err(|_| ended())?;
        answer.await.map_err(|_| ended())?
    }

    /// Cancels the statement running now (a client's cancel request, or the time limit).
    pub fn interrupt(&self) {
        self.interrupter.interrupt();
        self.open.cancel();
    }
}

/// A session whose thread has ended (it could not open, or it panicked).
fn ended() -> Failure {
    Failure::other("the session ended")
}

/// Checks `sql` with DuckDB's parser (see [`guard`]) and runs it if it is one read. A check
/// that met a lake file a sync deleted is retried with the statement, on the newer commit.
fn checked<T>(
    engine: &Engine,
    guard: &Guard,
    sql: &str,
    f: impl Fn(&duckdb::Connection, guard::Allowed) -> Result<T, QueryError>,
) -> Result<T, Failure> {
    let outcome = engine.statement(|conn| match guard.check(sql) {
        Ok(allowed) => f(conn, allowed).map(Ok),
        Err(Refusal::Sql(message)) => Err(QueryError::Sql(SqlError::new(message))),
        Err(refusal) => Ok(Err(refusal)),
    });
    Ok(outcome??)
}

/// Starts `sql` on a connection and thread of its own (see [`stream`]), pinned to the version
/// the session's views show now.
fn start(
    engine: &Engine,
    guard: &Guard,
    pool: &Arc<Pool>,
    sql: &str,
    params: &[Option<String>],
    timeout: Duration,
    open: &Open,
) -> Result<Batches, Failure> {
    let started = checked(engine, guard, sql, |_, allowed| {
        let sql = allowed.sql.clone();
        stream::start(pool, sql, params.to_vec(), engine.hold(), timeout, open).transpose()
    })?;
    started.ok_or_else(|| Failure {
        code: "53000",
        message: "no DuckDB connection is free for another result: close some portals or \
                  cursors first"
            .into(),
    })
}

/// Streams `copy`'s rows into `rows` (see [`Job::Copy`]). A failure before the first row is
/// told to `ready` (a lake file a sync deleted is retried first); after it, as the stream's
/// last item. DuckDB's time counts against `timeout`; the client's reading does not.
fn copy_out(
    engine: &Engine,
    guard: &Guard,
    copy: &CopyOut,
    ready: oneshot::Sender<Result<usize, Failure>>,
    rows: &tokio::sync::mpsc::Sender<PgWireResult<CopyData>>,
    timeout: Duration,
) {
    let ready = std::cell::RefCell::new(Some(ready));
    let tell = |columns: usize| {
        if let Some(ready) = ready.borrow_mut().take() {
            let _ = ready.send(Ok(columns));
        }
    };
    let outcome = checked(engine, guard, &copy.query, |conn, allowed| {
        let mut stmt = conn.prepare(&allowed.sql)?;
        let schema = stmt
            .stream_arrow([] as [&dyn duckdb::ToSql; 0])?
            .get_schema();
        let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let mut encoder = copy.encoder(copy::fields_of(&schema));
        let mut header = copy.header_line(&names);
        let mut busy = Duration::ZERO;
        let mut sent = false;
        loop {
            let started = Instant::now();
            let step = stmt.step();
            busy += started.elapsed();
            let batch = match step {
                Ok(Some(array)) => RecordBatch::from(&array),
                Ok(None) => break,
                // Before any row: retried on a newer commit if a sync deleted a file.
                Err(e) if ready.borrow().is_some() => return Err(e.into()),
                Err(e) => {
                    let failure = Failure::from(QueryError::from(e));
                    let _ = rows.blocking_send(Err(pg_error(&failure)));
                    return Ok(Ok(()));
                }
            };
            if busy > timeout {
                let failure = Failure::timed_out(timeout);
                if ready.borrow().is_some() {
                    return Ok(Err(failure));
                }
                let _ = rows.blocking_send(Err(pg_error(&failure)));
                return Ok(Ok(()));
            }
            tell(names.len());
            sent |= batch.num_rows() > 0;
            let mut messages = copy.rows(&mut encoder, &batch)?;
            if let (Some(line), Some(first)) = (header.take(), messages.first_mut()) {
                let mut data = line;
                data.extend_from_slice(&first.data);
                *first = CopyData::new(data.into());
            }
            for message in messages {
                if rows.blocking_send(Ok(message)).is_err() {
                    // The client went away.
                    return Ok(Ok(()));
                }
            }
        }
        tell(names.len());
        if !sent {
            // No rows: the format's header alone.
            let alone = match (copy.format, header.take()) {
                (CopyFormat::Binary, _) => Some(copy::binary_header()),
                (_, Some(line)) => Some(CopyData::new(line.into())),
                _ => None,
            };
            if let Some(message) = alone {
                let _ = rows.blocking_send(Ok(message));
            }
        }
        Ok(Ok(()))
    });
    let failure = match outcome {
        Ok(Ok(())) => return,
        Ok(Err(failure)) | Err(failure) => failure,
    };
    let waiting = ready.borrow_mut().take();
    match waiting {
        Some(ready) => {
            let _ = ready.send(Err(failure));
        }
        None => {
            let _ = rows.blocking_send(Err(pg_error(&failure)));
        }
    }
}

fn pg_error(failure: &Failure) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".to_owned(),
        failure.code.to_owned(),
        failure.message.clone(),
    )))
}

fn describe(
    engine: &Engine,
    guard: &Guard,
    sql: &str,
) -> Result<(SchemaRef, Vec<ParamType>), Failure> {
    checked(engine, guard, sql, |conn, allowed| {
        let params = allowed.parameters.clone();
        // A query's columns without running it: none of its rows, its parameters NULL; checked
        // again, as wrapping may change what the text says. Not a query (SHOW, EXPLAIN, ...) or
        // not wrappable: run the read itself to see.
        let limited = format!(
            "SELECT * FROM ({}) LIMIT 0",
            allowed.sql.trim().trim_end_matches(';')
        );
        let sql = guard.check(&limited).map_or(allowed.sql, |l| l.sql);
        let nulls = vec![None::<String>; params.len()];
        let mut stmt = conn.prepare(&sql)?;
        let _ = stmt.query_arrow(duckdb::params_from_iter(nulls.iter()))?;
        Ok((stmt.schema(), params))
    })
}

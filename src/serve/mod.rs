//! `hspq serve`: the lake's views, read-only, over the PostgreSQL wire protocol, for psql, BI
//! tools (Grafana, Metabase, Superset, Power BI) and PostgreSQL drivers.
//!
//! pgwire speaks the protocol (startup, SCRAM-SHA-256, simple and extended queries); DuckDB runs
//! the SQL. Every client gets a [`Session`]: its own engine over the lake on its own thread,
//! which picks up a sync's newer commit before each statement, as the shell does, and reads
//! nothing but the lake's files. Only reads run: DuckDB's own parser decides what a statement
//! is before any of it runs ([`guard`]); what clients ask before any query of theirs (`SET`,
//! `SHOW`, `BEGIN`) is answered here without DuckDB.
//!
//! Where things live: [`run`] (here) accepts connections and gives each its [`handlers`]
//! (startup, cancel requests) and a lazily opened [`Session`] ([`session`]: the engine on its
//! confined thread, [`confine`], in the DuckDB database all sessions share, [`shared`], whose
//! memory is the server's budget, [`budget`]). A statement is sorted by
//! [`classify`], answered by [`statement`] (and the simple protocol) or [`extended`] (Parse,
//! Bind, Describe, Execute); reads are checked by [`guard`], run and streamed by [`stream`],
//! [`cursor`] and [`copy`], their values encoded by [`encode`] and parameters decoded by
//! [`params`]; [`catalog`] is the PostgreSQL catalog clients query; [`login`] and [`tls`] admit
//! them.

mod budget;
mod catalog;
mod classify;
mod confine;
mod copy;
mod cursor;
mod encode;
mod extended;
mod guard;
mod handlers;
mod login;
mod params;
mod session;
mod shared;
mod statement;
mod stream;
mod tls;

pub use budget::{check as memory_check, physical_memory};
pub use tls::Tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pgwire::api::auth::sasl::scram::ScramAuth;
use pgwire::api::portal::Format;
use pgwire::api::results::{FieldFormat, FieldInfo, QueryResponse, Response};
use pgwire::api::Type;
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{info, warn};

use crate::config::ServeSettings;
use crate::lake::LakeLocation;
use classify::identity;
use confine::{Confinement, Enforced};
use extended::Parser;
use handlers::{auth_handler, Cancels, Handlers, SessionKeys};
use login::{Admission, Door, Login, Throttle, Turned};
use session::Session;
use shared::Shared;

/// Rows of a COPY made ahead of the client's reading.
const COPY_ROWS_AHEAD: usize = 1024;

/// How long a connection may take to log in.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(15);

/// How many connections may be logging in at once (beside --max-connections logged in).
const LOGGING_IN: usize = 64;

/// How many of those from one address (as [`login::key`] counts addresses).
const LOGGING_IN_PER_ADDRESS: usize = 8;

/// How many connections may be logging in or waiting to (see [`Admission`]), in all and from
/// one address: a pool of 64 from one host gets in.
const LOGIN_QUEUE: usize = 512;
const LOGIN_QUEUE_PER_ADDRESS: usize = 64;

/// The setting that makes a connection read a past version of the lake (`--as-of`).
const AS_OF_SETTING: &str = "hspq.as_of";

/// The version clients are told they talk to: drivers and BI tools switch features on it.
const SERVER_VERSION: &str = "14.0";

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A setting or the machine does not allow it (no password, the port in use, ...): the
    /// message names the cause and the fix.
    #[error("{0}")]
    Start(String),
    /// The lake could not be opened for a session (a wrong --data, a kernel that refuses).
    #[error(transparent)]
    Session(#[from] session::SessionError),
    /// Bringing an S3 lake's replica up to date failed.
    #[error(transparent)]
    Lake(#[from] crate::lake::LakeError),
    /// The operating system refused a thread, a folder or a signal handler.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Serves until the process is stopped; `listening` hears the address once it listens.
pub async fn run(
    lake: LakeLocation,
    opts: ServeSettings,
    listening: impl FnOnce(SocketAddr),
) -> Result<(), ServeError> {
    let password = opts.password.clone().ok_or_else(|| {
        ServeError::Start(
            "hspq serve needs a password: set HSPQ_SERVE_PASSWORD or pass --password-file FILE"
                .into(),
        )
    })?;
    // Sessions may not write, so an S3 lake's local replica is kept here, for them to read.
    let past_versions = matches!(lake, LakeLocation::Local(_));
    let root = match &lake {
        LakeLocation::S3 { .. } => {
            let (root, notice) = crate::lake::replica::sync(&lake).await?;
            if let Some(notice) = notice {
                warn!("{notice}");
            }
            let data = lake.clone();
            std::thread::Builder::new()
                .name("hspq-serve-replica".into())
                .spawn(move || keep_replica(data))?;
            root
        }
        LakeLocation::Local(root) => root.clone(),
    };
    let lake = LakeLocation::Local(root.clone());
    let confinement = Arc::new(
        Confinement::new()
            .map_err(|e| {
                ServeError::Start(format!("cannot make a scratch folder under $TMPDIR: {e}"))
            })?
            // Never tidying: the server writes nothing into the lake, not even what a sync's
            // clean-up would (files kept for its cursors go with the next sync).
            .with_pins(&root, false)?,
    );
    // However the server ends, even failing to start (a port in use), its scratch folder goes;
    // sessions still running hold the confinement, so not on its drop.
    let _scratch = RemoveOnExit(confinement.clone());
    match confinement.probe() {
        Ok(Enforced::Fully) => info!(
            "client SQL is confined (Landlock): it writes only into {}, and opens no connection",
            confinement.scratch().display()
        ),
        Ok(Enforced::Partly) => warn!(
            "this kernel's Landlock is old: client SQL writes only into {}, but may open \
             network connections",
            confinement.scratch().display()
        ),
        Ok(Enforced::No) | Err(_) => warn!(
            "this kernel has no Landlock (Linux 5.13+): client SQL is not confined below SQL; \
             only reads still run (DuckDB's parser decides), and DuckDB reads only the lake"
        ),
    }
    if guard::unguarded() {
        warn!("HSPQ_SERVE_TEST_UNGUARDED is set: statements are not checked (a test build only)");
    }
    let memory = budget::check(opts.memory_limit)?;
    if budget::physical_memory().is_some_and(|ram| memory > ram) {
        warn!(
            "--memory-limit {} is more than this machine has ({}): the clients' queries could \
             exhaust it",
            budget::bytes(memory),
            budget::bytes(budget::physical_memory().unwrap_or_default())
        );
    }
    info!(
        "the clients' queries use at most {} of memory together (--memory-limit)",
        budget::bytes(memory)
    );
    // Connections for every session admitted, and the one opened below to check the lake.
    let results = (opts.max_connections + 1) * session::RESULT_CONNECTIONS;
    let shared = Shared::open(&confinement, &root.canonicalize()?, memory, results)?;
    // Open the lake once up front, so a wrong --data fails now, not at the first client.
    drop(
        Session::start(
            lake.clone(),
            identity(&opts.user, "hspq"),
            confinement.clone(),
            shared.clone(),
        )
        .await?,
    );
    let listener = TcpListener::bind((opts.bind, opts.port))
        .await
        .map_err(|e| {
            ServeError::Start(format!("cannot listen on {}:{}: {e}", opts.bind, opts.port))
        })?;
    listening(listener.local_addr()?);
    if !opts.bind.is_loopback() && opts.tls.is_none() {
        warn!(
            "serving on {} without TLS: passwords are safe (SCRAM) but results cross the \
             network unencrypted",
            opts.bind
        );
    }
    // The verifier only: the password is dropped here.
    let login = Arc::new(Login::new(&opts.user, password.expose()));
    drop(password);
    let mut opts = opts;
    opts.password = None;
    let throttle = Arc::new(Throttle::default());
    if let Some(tls) = &opts.tls {
        // SCRAM's channel binding hashes the certificate: a certificate it cannot read would
        // fail every login, so fail now.
        ScramAuth::new(login.clone())
            .configure_certificate(&tls.cert_pem)
            .map_err(|e| {
                ServeError::Start(format!("cannot use the TLS certificate for SCRAM: {e}"))
            })?;
    }
    let cancels = Arc::new(Cancels::default());
    let slots = Arc::new(Semaphore::new(opts.max_connections.max(1)));
    let logging_in = Arc::new(Admission::new(
        LOGGING_IN,
        LOGGING_IN_PER_ADDRESS,
        LOGIN_QUEUE,
        LOGIN_QUEUE_PER_ADDRESS,
    ));
    let opts = Arc::new(opts);
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            // Stopping: see below.
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
        };
        let (socket, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                warn!("accepting a connection: {e}");
                continue;
            }
        };
        let (slots, login, throttle, cancels, opts, lake, confinement, shared, logging_in) = (
            slots.clone(),
            login.clone(),
            throttle.clone(),
            cancels.clone(),
            opts.clone(),
            lake.clone(),
            confinement.clone(),
            shared.clone(),
            logging_in.clone(),
        );
        tokio::spawn(async move {
            // A client takes one of --max-connections once logged in; until then one of the
            // places for connections still logging in, which it must do within LOGIN_TIMEOUT: a
            // crowd of silent connections cannot lock clients out.
            let waiting = match logging_in.take(peer.ip()).await {
                Ok(waiting) => waiting,
                Err(turned) => {
                    let why = match turned {
                        Turned::QueueFull => format!(
                            "{LOGIN_QUEUE} connections (or {LOGIN_QUEUE_PER_ADDRESS} from one \
                             address) are logging in or waiting to"
                        ),
                        Turned::NoPlace => format!(
                            "no place to log in came free within {} s ({LOGGING_IN} log in at \
                             once, {LOGGING_IN_PER_ADDRESS} from one address)",
                            Admission::WAIT.as_secs()
                        ),
                    };
                    warn!("refused {peer}: {why}");
                    return refuse(
                        socket,
                        format!("sorry, too many connections: {why}; try again"),
                    )
                    .await;
                }
            };
            // Opened at the first statement: a connection that only carries a cancel request
            // (psql's Ctrl-C) needs no engine.
            let session = Arc::new(Lazy {
                lake,
                past_versions,
                confinement,
                shared,
                user: opts.user.clone(),
                session: tokio::sync::OnceCell::new(),
                opening: Default::default(),
                cancelled_opening: Default::default(),
            });
            info!("client {peer} connected");
            // An address that keeps failing to log in waits before each new attempt.
            let delay = throttle.delay(peer.ip());
            if !delay.is_zero() {
                warn!(
                    "{peer} failed to log in often within a minute: its attempt waits {} s",
                    delay.as_secs()
                );
                tokio::time::sleep(delay).await;
            }
            let keys = Arc::new(SessionKeys {
                session: Arc::downgrade(&session),
                cancels: cancels.clone(),
            });
            let tls = opts.tls.clone();
            let auth = match auth_handler(login, keys, tls.as_ref()) {
                Ok(auth) => auth,
                Err(e) => {
                    warn!("client {peer}: {e}");
                    return;
                }
            };
            let (logged_in, login_done) = tokio::sync::oneshot::channel();
            let handlers = Arc::new(Handlers {
                auth: Arc::new(tls::Gate {
                    inner: Door::new(
                        auth,
                        throttle,
                        opts.user.clone(),
                        slots,
                        opts.max_connections,
                        logged_in,
                    ),
                    required: tls.is_some(),
                }),
                cancels: cancels.clone(),
                queries: Arc::new(Queries {
                    session,
                    block: Default::default(),
                    inferred: Default::default(),
                    timeout: opts.query_timeout,
                    parser: Arc::new(Parser),
                    as_of: Default::default(),
                    as_of_block: Default::default(),
                    cursors: Default::default(),
                    declared: Default::default(),
                }),
            });
            let acceptor = tls.map(|t| t.acceptor);
            let serving = pgwire::tokio::process_socket(socket, acceptor, handlers);
            tokio::pin!(serving);
            // Logged in within the time, the connection leaves the ones logging in; not, it is
            // closed (a cancel request ends by itself well before).
            let ended = tokio::select! {
                ended = &mut serving => Some(ended),
                login = tokio::time::timeout(LOGIN_TIMEOUT, login_done) => match login {
                    Ok(Ok(())) => {
                        drop(waiting);
                        Some(serving.await)
                    }
                    Ok(Err(_)) => Some(serving.await),
                    Err(_) => {
                        warn!(
                            "closed {peer}: no login within {} s",
                            LOGIN_TIMEOUT.as_secs()
                        );
                        None
                    }
                },
            };
            if let Some(Err(e)) = ended {
                info!("client {peer}: {e}");
            }
            cancels.forget_ended();
        });
    }
    Ok(())
}

/// Removes the server's scratch folder when dropped.
struct RemoveOnExit(Arc<Confinement>);

impl Drop for RemoveOnExit {
    fn drop(&mut self) {
        self.0.remove();
    }
}

/// Brings an S3 lake's newer commits into the replica the sessions read, as often as the shell
/// asks S3; on a thread of its own, not confined.
fn keep_replica(lake: LakeLocation) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return warn!("cannot keep the local copy of {lake} fresh: {e}"),
    };
    loop {
        std::thread::sleep(crate::query::S3_CHECK_EVERY);
        if let Err(e) = runtime.block_on(crate::lake::replica::sync(&lake)) {
            warn!("could not refresh the local copy of {lake}: {e}");
        }
    }
}

/// Tells a client it is turned away (PostgreSQL's "too many clients", SQLSTATE 53300) and
/// closes, as PostgreSQL does: after its startup packet, answering a request for TLS (or GSS)
/// before it with "no", so that libpq shows the message rather than a failed TLS exchange.
async fn refuse(mut socket: tokio::net::TcpStream, message: String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const TLS_OR_GSS_REQUEST: [i32; 2] = [80_877_103, 80_877_104];
    let exchange = async {
        for _ in 0..3 {
            let length = socket.read_i32().await?;
            let mut body = vec![
                0;
                usize::try_from(length.saturating_sub(4))
                    .unwrap_or(0)
                    .min(10_000)
            ];
            socket.read_exact(&mut body).await?;
            let code = body
                .get(..4)
                .map(|c| i32::from_be_bytes([c[0], c[1], c[2], c[3]]));
            match code {
                Some(c) if TLS_OR_GSS_REQUEST.contains(&c) => socket.write_all(b"N").await?,
                _ => break,
            }
        }
        let mut fields = Vec::new();
        for (code, value) in [
            (b'S', "FATAL"),
            (b'V', "FATAL"),
            (b'C', "53300"),
            (b'M', &message),
        ] {
            fields.push(code);
            fields.extend(value.as_bytes());
            fields.push(0);
        }
        fields.push(0);
        let mut packet = vec![b'E'];
        packet.extend((fields.len() as i32 + 4).to_be_bytes());
        packet.extend(fields);
        socket.write_all(&packet).await?;
        socket.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(10), exchange).await;
}

/// A connection's session, opened when its first statement comes.
struct Lazy {
    lake: LakeLocation,
    /// The lake is on local disk (an S3 lake's replica holds its newest version only).
    past_versions: bool,
    confinement: Arc<Confinement>,
    /// The DuckDB database the sessions share.
    shared: Arc<Shared>,
    user: String,
    session: tokio::sync::OnceCell<Session>,
    /// The session is being opened, for a statement that waits for it.
    opening: std::sync::atomic::AtomicBool,
    /// A cancel request came while it was: that statement is cancelled once it can be.
    cancelled_opening: std::sync::atomic::AtomicBool,
}

impl Lazy {
    /// The session, opened for a client that asked for `database` at startup.
    async fn get(&self, database: &str) -> PgWireResult<&Session> {
        use std::sync::atomic::Ordering;
        if let Some(session) = self.session.get() {
            return Ok(session);
        }
        self.opening.store(true, Ordering::SeqCst);
        let opened = self.open(database).await;
        self.opening.store(false, Ordering::SeqCst);
        // Opening takes a moment (seconds on a busy server): a cancel meanwhile (psql's
        // Ctrl-C) concerns the statement waiting for it, which must not run.
        if self.cancelled_opening.swap(false, Ordering::SeqCst) {
            return Err(user_error(
                "57014",
                "canceling statement due to user request",
            ));
        }
        opened
    }

    /// Called by a cancel request: interrupts the running statement, or the one waiting for
    /// the session to open.
    fn cancel(&self) {
        use std::sync::atomic::Ordering;
        match self.session.get() {
            Some(session) => session.interrupt(),
            None if self.opening.load(Ordering::SeqCst) => {
                self.cancelled_opening.store(true, Ordering::SeqCst)
            }
            None => {}
        }
    }

    async fn open(&self, database: &str) -> PgWireResult<&Session> {
        self.session
            .get_or_try_init(|| {
                Session::start(
                    self.lake.clone(),
                    identity(&self.user, database),
                    self.confinement.clone(),
                    self.shared.clone(),
                )
            })
            .await
            .map_err(|e| user_error("58000", format!("cannot open the lake: {e}")))
    }
}

/// Runs a connection's statements in its session.
struct Queries {
    session: Arc<Lazy>,
    /// What became of the open block, as far as pgwire's status byte cannot tell: a statement
    /// failed in it (PostgreSQL then takes nothing but its end, or a rollback to a
    /// savepoint), or a rollback to a savepoint took it back ([`BLOCK_OK`], ...).
    block: std::sync::atomic::AtomicU8,
    /// The parameter types described for each statement text on this connection.
    inferred: std::sync::Mutex<std::collections::HashMap<String, Vec<Type>>>,
    timeout: Duration,
    parser: Arc<Parser>,
    /// What `SET hspq.as_of` set on this connection (`None`: the newest version).
    as_of: std::sync::Mutex<Option<String>>,
    /// What it goes back to when the open block ends (and at its savepoints), once a
    /// statement in the block changed it or made a savepoint.
    as_of_block: std::sync::Mutex<Option<BlockAsOf>>,
    /// The connection's open server-side cursors.
    cursors: Arc<cursor::Cursors>,
    /// A cursor just declared, to be made a portal of the protocol too (see
    /// [`Queries::publish_cursor`]).
    declared: std::sync::Mutex<Option<String>>,
}

/// `hspq.as_of` at a block's end: the value before the block (a rollback) or the one its last
/// session-wide SET gave (a commit; SET LOCAL lasts until the end); and the block's savepoints,
/// oldest first (see [`Queries::to_savepoint`]).
struct BlockAsOf {
    before: Option<String>,
    at_commit: Option<String>,
    savepoints: Vec<Savepoint>,
}

/// A savepoint: its name, `hspq.as_of` when it was made, and what a commit would have kept then.
struct Savepoint {
    name: String,
    held: Option<String>,
    at_commit: Option<String>,
}

fn user_error(code: &str, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".to_owned(),
        code.to_owned(),
        message.into(),
    )))
}

/// Rows made here, as pgwire sends them.
fn rows(
    fields: Arc<Vec<FieldInfo>>,
    batches: &[arrow::record_batch::RecordBatch],
) -> PgWireResult<Response> {
    let mut out = Vec::new();
    for batch in batches {
        out.extend(stream::data_rows(&fields, batch)?.into_iter().map(Ok));
    }
    Ok(Response::Query(QueryResponse::new(
        fields,
        futures_util::stream::iter(out),
    )))
}

/// Text columns of these names.
fn text_schema(names: &[&str]) -> arrow::datatypes::Schema {
    arrow::datatypes::Schema::new(
        names
            .iter()
            .map(|n| arrow::datatypes::Field::new(*n, arrow::datatypes::DataType::Utf8, true))
            .collect::<Vec<_>>(),
    )
}

/// A schema's columns as PostgreSQL fields, in the formats the client asked for (text unless
/// it said otherwise).
fn fields(schema: &arrow::datatypes::Schema, formats: &Format) -> Vec<FieldInfo> {
    schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let format = match formats {
                Format::Individual(codes) => codes
                    .get(i)
                    .map_or(FieldFormat::Text, |c| FieldFormat::from(*c)),
                unified => unified.format_for(i),
            };
            FieldInfo::new(
                f.name().clone(),
                None,
                None,
                encode::pg_type(f.data_type()),
                format,
            )
        })
        .collect()
}

fn duckdb_version() -> &'static str {
    static VERSION: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    VERSION.get_or_init(|| {
        duckdb::Connection::open_in_memory()
            .and_then(|c| c.query_row("SELECT version()", [], |r| r.get::<_, String>(0)))
            .unwrap_or_default()
    })
}

//! `hspq serve`: the lake's views, read-only, over the PostgreSQL wire protocol, for psql, BI
//! tools (Grafana, Metabase, Superset, Power BI) and PostgreSQL drivers.
//!
//! pgwire speaks the protocol (startup, SCRAM-SHA-256, simple and extended queries); DuckDB runs
//! the SQL. Every client gets a [`Session`]: its own engine over the lake on its own thread,
//! which picks up a sync's newer commit before each statement, as the shell does, and reads
//! nothing but the lake's files. Only reads run: DuckDB's own parser decides what a statement
//! is before any of it runs ([`guard`]); what clients ask before any query of theirs (`SET`,
//! `SHOW`, `BEGIN`) is answered here without DuckDB.

mod budget;
mod catalog;
mod confine;
mod copy;
mod cursor;
mod encode;
mod guard;
mod login;
mod params;
mod session;
mod stream;
mod tls;

pub use budget::{part as memory_part, physical_memory};
pub use tls::Tls;

use std::fmt::Debug;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::{Sink, SinkExt, StreamExt};
use pgwire::api::auth::sasl::scram::ScramAuth;
use pgwire::api::auth::sasl::SASLAuthStartupHandler;
use pgwire::api::auth::{DefaultServerParameterProvider, StartupHandler};
use pgwire::api::cancel::CancelHandler;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{
    CopyResponse, DescribePortalResponse, DescribeStatementResponse, FieldFormat, FieldInfo,
    QueryResponse, Response, Tag,
};
use pgwire::api::stmt::{QueryParser, StoredStatement};
use pgwire::api::store::PortalStore;
use pgwire::api::{
    ClientInfo, ClientPortalStore, PgWireServerHandlers, PidSecretKeyGenerator,
    RandomPidSecretKeyGenerator, Type,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::cancel::CancelRequest;
use pgwire::messages::response::TransactionStatus;
use pgwire::messages::startup::SecretKey;
use pgwire::messages::PgWireBackendMessage;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

use crate::config::ServeSettings;
use crate::lake::log::AsOf;
use crate::lake::LakeLocation;
use catalog::Identity;
use confine::{Confinement, Enforced};
use login::{Admission, Door, Login, Throttle, SCRAM_ITERATIONS};
use session::Session;
use stream::OPEN_RESULTS;

/// Rows of a COPY made ahead of the client's reading.
const COPY_ROWS_AHEAD: usize = 1024;

/// How long a connection may take to log in.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(15);

/// How many connections may be logging in at once (beside --max-connections logged in).
const LOGGING_IN: usize = 64;

/// How many of those from one address (as [`login::key`] counts addresses).
const LOGGING_IN_PER_ADDRESS: usize = 8;

/// The setting that makes a connection read a past version of the lake (`--as-of`).
const AS_OF_SETTING: &str = "hspq.as_of";

/// The version clients are told they talk to: drivers and BI tools switch features on it.
const SERVER_VERSION: &str = "14.0";

/// Serves until the process is stopped; `listening` hears the address once it listens.
pub async fn run(
    lake: LakeLocation,
    opts: ServeSettings,
    listening: impl FnOnce(SocketAddr),
) -> anyhow::Result<()> {
    let password = opts.password.clone().ok_or_else(|| {
        anyhow::anyhow!(
            "hspq serve needs a password: set HSPQ_SERVE_PASSWORD or pass --password-file FILE"
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
            .map_err(|e| anyhow::anyhow!("cannot make a scratch folder under $TMPDIR: {e}"))?
            .with_pins(&root)?,
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
    let memory =
        budget::part(opts.memory_limit, opts.max_connections).map_err(anyhow::Error::msg)?;
    if budget::physical_memory().is_some_and(|ram| opts.memory_limit > ram) {
        warn!(
            "--memory-limit {} is more than this machine has ({}): the clients' queries could \
             exhaust it",
            budget::bytes(opts.memory_limit),
            budget::bytes(budget::physical_memory().unwrap_or_default())
        );
    }
    info!(
        "the clients' queries use at most {} of memory together ({} each, --memory-limit)",
        budget::bytes(memory * opts.max_connections.max(1) as u64),
        budget::bytes(memory)
    );
    // Open the lake once up front, so a wrong --data fails now, not at the first client.
    drop(
        Session::start(
            lake.clone(),
            identity(&opts.user, "hspq"),
            confinement.clone(),
            memory,
        )
        .await
        .map_err(anyhow::Error::msg)?,
    );
    let listener = TcpListener::bind((opts.bind, opts.port))
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}:{}: {e}", opts.bind, opts.port))?;
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
            .map_err(|e| anyhow::anyhow!("cannot use the TLS certificate for SCRAM: {e}"))?;
    }
    let cancels = Arc::new(Cancels::default());
    let slots = Arc::new(Semaphore::new(opts.max_connections.max(1)));
    let logging_in = Arc::new(Admission::new(LOGGING_IN, LOGGING_IN_PER_ADDRESS));
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
        // A client takes one of --max-connections once logged in; until then one of the
        // places for connections still logging in, which it must do within LOGIN_TIMEOUT: a
        // crowd of silent connections cannot lock clients out.
        let Some(waiting) = logging_in.take(peer.ip()) else {
            warn!(
                "refused {peer}: {LOGGING_IN} connections (or {LOGGING_IN_PER_ADDRESS} from its \
                 address) are logging in already"
            );
            let message = format!(
                "sorry, too many connections logging in at once ({LOGGING_IN}, or \
                 {LOGGING_IN_PER_ADDRESS} from one address): try again"
            );
            tokio::spawn(refuse(socket, message));
            continue;
        };
        let (slots, login, throttle, cancels, opts, lake, confinement) = (
            slots.clone(),
            login.clone(),
            throttle.clone(),
            cancels.clone(),
            opts.clone(),
            lake.clone(),
            confinement.clone(),
        );
        tokio::spawn(async move {
            // Opened at the first statement: a connection that only carries a cancel request
            // (psql's Ctrl-C) needs no engine.
            let session = Arc::new(Lazy {
                lake,
                past_versions,
                confinement,
                memory,
                user: opts.user.clone(),
                session: tokio::sync::OnceCell::new(),
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

type Auth = SASLAuthStartupHandler<DefaultServerParameterProvider>;

/// A connection's startup: SCRAM against the one login (bound to the TLS certificate when
/// there is one), and the key its cancel requests will carry.
fn auth_handler(
    login: Arc<Login>,
    keys: Arc<SessionKeys>,
    tls: Option<&Tls>,
) -> PgWireResult<Auth> {
    let mut scram = ScramAuth::new(login);
    scram.set_iterations(SCRAM_ITERATIONS);
    if let Some(tls) = tls {
        scram.configure_certificate(&tls.cert_pem)?;
    }
    let mut parameters = DefaultServerParameterProvider::default();
    parameters.server_version = SERVER_VERSION.to_string();
    parameters.default_transaction_read_only = true;
    parameters.is_superuser = false;
    Ok(SASLAuthStartupHandler::new(Arc::new(parameters))
        .with_scram(scram)
        .with_pid_secret_key_generator(keys))
}

/// The sessions cancel requests may reach, by the process id and secret key their connection
/// was given at startup (psql's Ctrl-C opens a new connection that sends just those).
#[derive(Default)]
struct Cancels {
    keys: RandomPidSecretKeyGenerator,
    sessions: std::sync::Mutex<std::collections::HashMap<i32, (SecretKey, Weak<Lazy>)>>,
}

impl Cancels {
    fn forget_ended(&self) {
        if let Ok(mut sessions) = self.sessions.lock() {
            sessions.retain(|_, (_, s)| s.strong_count() > 0);
        }
    }
}

#[async_trait]
impl CancelHandler for Cancels {
    async fn on_cancel_request(&self, request: CancelRequest) {
        let session = self.sessions.lock().ok().and_then(|sessions| {
            sessions
                .get(&request.pid)
                .filter(|(key, _)| key_bytes(key) == key_bytes(&request.secret_key))
                .and_then(|(_, s)| s.upgrade())
        });
        match session {
            Some(session) => {
                info!("cancel request for process {}", request.pid);
                if let Some(session) = session.session.get() {
                    session.interrupt();
                }
            }
            None => warn!(
                "a cancel request for process {} matched no running session",
                request.pid
            ),
        }
    }
}

/// A secret key as the bytes on the wire (a cancel request may carry either spelling).
fn key_bytes(key: &SecretKey) -> Vec<u8> {
    match key {
        SecretKey::I32(v) => v.to_be_bytes().to_vec(),
        SecretKey::Bytes(b) => b.to_vec(),
    }
}

/// Gives one connection its process id and secret key, and files its session under them.
struct SessionKeys {
    session: Weak<Lazy>,
    cancels: Arc<Cancels>,
}

impl PidSecretKeyGenerator for SessionKeys {
    fn generate(&self, client: &dyn ClientInfo) -> (i32, SecretKey) {
        let (pid, key) = self.cancels.keys.generate(client);
        if let Ok(mut sessions) = self.cancels.sessions.lock() {
            sessions.insert(pid, (key.clone(), self.session.clone()));
        }
        (pid, key)
    }
}

/// One connection's handlers.
struct Handlers {
    auth: Arc<tls::Gate<Door<Auth>>>,
    cancels: Arc<Cancels>,
    queries: Arc<Queries>,
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.queries.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.queries.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.auth.clone()
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        self.cancels.clone()
    }
}

/// A connection's session, opened when its first statement comes.
struct Lazy {
    lake: LakeLocation,
    /// The lake is on local disk (an S3 lake's replica holds its newest version only).
    past_versions: bool,
    confinement: Arc<Confinement>,
    /// The DuckDB memory limit of the session (its part of `--memory-limit`).
    memory: u64,
    user: String,
    session: tokio::sync::OnceCell<Session>,
}

impl Lazy {
    /// The session, opened for a client that asked for `database` at startup.
    async fn get(&self, database: &str) -> PgWireResult<&Session> {
        self.session
            .get_or_try_init(|| {
                Session::start(
                    self.lake.clone(),
                    identity(&self.user, database),
                    self.confinement.clone(),
                    self.memory,
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
    /// The connection's open server-side cursors.
    cursors: Arc<cursor::Cursors>,
    /// A cursor just declared, to be made a portal of the protocol too (see
    /// [`Queries::publish_cursor`]).
    declared: std::sync::Mutex<Option<String>>,
}

/// What a statement is: answered here, or SQL for DuckDB (which [`guard`] checks).
#[derive(Debug, PartialEq)]
enum Kind {
    /// SQL for DuckDB, run if its parser finds it a read.
    Query,
    /// Answered here with this command tag and no rows (SET, BEGIN, ...): nothing runs.
    Noop(&'static str),
    /// `SHOW <name>` of a PostgreSQL setting, answered here.
    Setting(String, String),
    /// `SET hspq.as_of = 'v42'` (a version, time or date) or back to the newest (`None`): the
    /// past version of the lake this connection reads.
    AsOf(Option<String>),
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
const BLOCK_OK: u8 = 0;
const BLOCK_FAILED: u8 = 1;
const BLOCK_RECOVERED: u8 = 2;

/// What a statement does to a transaction block.
#[derive(Debug, PartialEq)]
enum Block {
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
fn kind(sql: &str) -> Kind {
    let text = strip_comments(sql);
    let mut words = text
        .trim_start_matches(|c: char| c == '(' || c.is_whitespace())
        .split(|c: char| c.is_whitespace() || c == ';' || c == '(' || c == '=')
        .filter(|w| !w.is_empty());
    let first = words.next().unwrap_or_default().to_ascii_uppercase();
    match first.as_str() {
        "SET" | "RESET" => {
            let mut name = words.next().unwrap_or_default().to_ascii_lowercase();
            if matches!(name.as_str(), "session" | "local" | "global") {
                name = words.next().unwrap_or_default().to_ascii_lowercase();
            }
            if name.trim_matches('"') == AS_OF_SETTING {
                let value = words
                    .find(|w| !w.eq_ignore_ascii_case("to"))
                    .map(|w| w.trim_end_matches(';').trim_matches('\'').to_string())
                    .filter(|w| first == "SET" && !w.eq_ignore_ascii_case("default"));
                return Kind::AsOf(value);
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
        "DISCARD" => Kind::Noop("DISCARD ALL"),
        "DEALLOCATE" => Kind::Noop("DEALLOCATE"),
        "COPY" => match copy::CopyOut::parse(sql) {
            Some(Ok(copy)) => Kind::Copy(copy),
            Some(Err(why)) => Kind::Invalid(why),
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
fn setting(name: &str) -> Option<&'static str> {
    let name = match name {
        "time zone" => "timezone",
        "transaction isolation level" => "transaction_isolation",
        other => other,
    };
    SETTINGS.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

/// What the catalog tells a client about itself and the server.
fn identity(user: &str, database: &str) -> Identity {
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

impl Queries {
    /// Runs one statement with its parameters, within the time limit.
    async fn answer(
        &self,
        sql: &str,
        params: Vec<Option<String>>,
        database: &str,
        formats: &Format,
        status: TransactionStatus,
    ) -> PgWireResult<Response> {
        use std::sync::atomic::Ordering::SeqCst;
        // COMMIT of a failed block rolls it back.
        let rollback = status == TransactionStatus::Error
            || matches!(kind(sql), Kind::Transaction(Block::Rollback));
        let answer = self
            .answer_in_block(sql, params, database, formats, status)
            .await;
        match &answer {
            Err(_) if status != TransactionStatus::Idle => self.block.store(BLOCK_FAILED, SeqCst),
            Ok(Response::TransactionStart(_)) => self.block.store(BLOCK_OK, SeqCst),
            Ok(Response::TransactionEnd(_)) => {
                self.block.store(BLOCK_OK, SeqCst);
                self.cursors.end_block(!rollback);
            }
            _ => {}
        }
        answer
    }

    /// Starts a read whose rows come as the client reads them, within the time limit (a
    /// session has at most [`OPEN_RESULTS`] open).
    async fn open(
        &self,
        sql: &str,
        params: Vec<Option<String>>,
        database: &str,
    ) -> PgWireResult<stream::Batches> {
        let session = self.session.get(database).await?;
        if session.open_results() >= OPEN_RESULTS {
            return Err(user_error(
                "53000",
                format!(
                    "this connection has {OPEN_RESULTS} results open (portals or cursors not \
                     read to their end): close some (CLOSE, or the driver's close) first"
                ),
            ));
        }
        let starting = session.open(sql.to_string(), params, self.timeout);
        match tokio::time::timeout(self.timeout, starting).await {
            Ok(started) => started.map_err(|f| user_error(f.code, f.message)),
            Err(_) => {
                session.interrupt();
                Err(self.timed_out())
            }
        }
    }

    /// A cursor statement (see [`cursor`]).
    async fn cursor(
        &self,
        command: cursor::Command,
        params: Vec<Option<String>>,
        database: &str,
        formats: &Format,
        status: TransactionStatus,
    ) -> PgWireResult<Response> {
        let refused = |(code, why): cursor::Refusal| user_error(code, why);
        match command {
            cursor::Command::Declare {
                hold: false, name, ..
            } if status == TransactionStatus::Idle => Err(user_error(
                "25P01",
                format!(
                    "DECLARE CURSOR can only be used in transaction blocks: BEGIN first, or \
                     declare \"{name}\" WITH HOLD"
                ),
            )),
            cursor::Command::Declare {
                name,
                query,
                hold,
                binary,
            } => {
                let batches = self.open(&query, params, database).await?;
                let schema = batches.schema.clone();
                let formats = match binary {
                    true => Format::UnifiedBinary,
                    false => Format::UnifiedText,
                };
                let rows = stream::Rows::new(Arc::new(fields(&schema, &formats)), batches);
                let id = self
                    .cursors
                    .declare(&name, schema, rows, binary, hold)
                    .map_err(refused)?;
                if let Ok(mut declared) = self.declared.lock() {
                    *declared = Some(name.clone());
                }
                if hold {
                    // Left unread for --query-timeout, it closes.
                    let (cursors, idle) = (Arc::downgrade(&self.cursors), self.timeout);
                    let every = idle.clamp(Duration::from_millis(100), Duration::from_secs(10));
                    tokio::spawn(async move {
                        loop {
                            tokio::time::sleep(every).await;
                            match cursors.upgrade() {
                                Some(cursors) if !cursors.expire(idle, id) => {}
                                _ => break,
                            }
                        }
                    });
                }
                Ok(Response::Execution(Tag::new("DECLARE CURSOR")))
            }
            cursor::Command::Fetch {
                name,
                count,
                moving,
            } => {
                let cursor = self.cursors.get(&name).map_err(refused)?;
                // Held by a portal left suspended in the middle of a FETCH of it.
                let mut rows = cursor.rows.clone().try_lock_owned().map_err(|_| {
                    user_error(
                        "55006",
                        format!(
                            "cursor \"{name}\" is in use by a FETCH not read to its end \
                             (a suspended portal): read or close that first"
                        ),
                    )
                })?;
                let wanted = match count {
                    cursor::Count::Rows(n) => n,
                    cursor::Count::All => u64::MAX,
                };
                if moving {
                    let skipped = rows.skip(wanted).await?;
                    return Ok(Response::Execution(
                        Tag::new("MOVE").with_rows(skipped as usize),
                    ));
                }
                let formats = match cursor.binary {
                    true => &Format::UnifiedBinary,
                    false => formats,
                };
                let fields = Arc::new(fields(&cursor.schema, formats));
                rows.set_fields(fields.clone());
                // The rows go as the client reads them, the cursor held until the last.
                let sent =
                    futures_util::stream::unfold((rows, wanted), |(mut rows, left)| async move {
                        if left == 0 {
                            return None;
                        }
                        let row = rows.next().await?;
                        Some((row, (rows, left - 1)))
                    });
                let mut response = QueryResponse::new(fields, sent);
                response.set_command_tag("FETCH");
                Ok(Response::Query(response))
            }
            cursor::Command::Close(name) => {
                self.cursors.close(name.as_deref()).map_err(refused)?;
                Ok(Response::Execution(Tag::new(match name {
                    Some(_) => "CLOSE CURSOR",
                    None => "CLOSE CURSOR ALL",
                })))
            }
        }
    }

    /// Makes the cursor just declared a portal of the protocol as well, as in PostgreSQL:
    /// psycopg 3 describes a cursor it declared as a portal of its name. The portal reads the
    /// cursor (`FETCH ALL FROM` it); once the cursor is closed, it says so.
    fn publish_cursor(&self, store: &dyn std::any::Any) {
        let Some(name) = self.declared.lock().ok().and_then(|mut d| d.take()) else {
            return;
        };
        let Some(store) = store.downcast_ref::<pgwire::api::store::MemPortalStore<String>>() else {
            return;
        };
        let mut portal = Portal::default();
        portal.statement = Arc::new(StoredStatement::new(
            name.clone(),
            format!("FETCH ALL FROM \"{}\"", name.replace('"', "\"\"")),
            Vec::new(),
        ));
        portal.name = name;
        store.put_portal(Arc::new(portal));
    }

    /// A statement stopped at --query-timeout.
    fn timed_out(&self) -> PgWireError {
        let failure = session::Failure::timed_out(self.timeout);
        user_error(failure.code, failure.message)
    }

    /// [`Self::answer`], given whether a transaction block is open or failed.
    async fn answer_in_block(
        &self,
        sql: &str,
        params: Vec<Option<String>>,
        database: &str,
        formats: &Format,
        status: TransactionStatus,
    ) -> PgWireResult<Response> {
        debug!("statement: {sql}");
        let kind = self.with_as_of(kind(sql));
        let block = self.block.load(std::sync::atomic::Ordering::SeqCst);
        let aborted = status != TransactionStatus::Idle
            && (block == BLOCK_FAILED
                || (status == TransactionStatus::Error && block != BLOCK_RECOVERED));
        if aborted
            && !matches!(
                kind,
                Kind::Transaction(Block::Commit | Block::Rollback | Block::RollbackToSavepoint)
            )
        {
            // As PostgreSQL: a failed block takes nothing but its end.
            return Err(user_error(
                "25P02",
                "current transaction is aborted, commands ignored until end of transaction block",
            ));
        }
        match kind {
            Kind::Transaction(Block::Begin) => Ok(Response::TransactionStart(Tag::new("BEGIN"))),
            // COMMIT of a failed block rolls it back, and says so.
            Kind::Transaction(Block::Commit) if status == TransactionStatus::Error => {
                Ok(Response::TransactionEnd(Tag::new("ROLLBACK")))
            }
            Kind::Transaction(Block::Commit) => Ok(Response::TransactionEnd(Tag::new("COMMIT"))),
            Kind::Transaction(Block::Rollback) => {
                Ok(Response::TransactionEnd(Tag::new("ROLLBACK")))
            }
            Kind::Transaction(Block::RollbackToSavepoint) if status == TransactionStatus::Idle => {
                Err(user_error(
                    "25P01",
                    "ROLLBACK TO SAVEPOINT can only be used in transaction blocks",
                ))
            }
            Kind::Transaction(Block::RollbackToSavepoint) => {
                self.block
                    .store(BLOCK_RECOVERED, std::sync::atomic::Ordering::SeqCst);
                Ok(Response::Execution(Tag::new("ROLLBACK")))
            }
            Kind::Noop("EMPTY") => Ok(Response::EmptyQuery),
            Kind::Noop(tag) => Ok(Response::Execution(Tag::new(tag))),
            Kind::Refused(why) => Err(user_error("25006", why)),
            Kind::Invalid(why) => Err(user_error("42601", why)),
            Kind::Failed(code, why) => Err(user_error(code, why)),
            Kind::Cursor(command) => {
                self.cursor(command, params, database, formats, status)
                    .await
            }
            Kind::AsOf(text) => {
                let as_of = match text.as_deref().map(str::parse::<AsOf>) {
                    None => None,
                    Some(Ok(as_of)) => Some(as_of),
                    Some(Err(why)) => return Err(user_error("22023", why)),
                };
                if as_of.is_some() && !self.session.past_versions {
                    return Err(user_error(
                        "0A000",
                        "hspq serve reads past versions of a lake on local disk only: serve a \
                         copy of the S3 lake (aws s3 sync) to read them",
                    ));
                }
                let session = self.session.get(database).await?;
                session
                    .as_of(as_of)
                    .await
                    .map_err(|f| user_error(f.code, f.message))?;
                if let Ok(mut held) = self.as_of.lock() {
                    *held = text;
                }
                Ok(Response::Execution(Tag::new("SET")))
            }
            Kind::Copy(copy) => {
                let session = self.session.get(database).await?;
                let (rows, stream) = tokio::sync::mpsc::channel(COPY_ROWS_AHEAD);
                let format = copy.format_code();
                let ready = session.copy(copy, rows, self.timeout);
                let columns = match tokio::time::timeout(self.timeout, ready).await {
                    Err(_) => {
                        session.interrupt();
                        return Err(self.timed_out());
                    }
                    Ok(Err(_)) => return Err(user_error("58000", "the session ended")),
                    Ok(Ok(Err(f))) => return Err(user_error(f.code, f.message)),
                    Ok(Ok(Ok(columns))) => columns,
                };
                let stream = futures_util::stream::unfold(stream, |mut rows| async move {
                    rows.recv().await.map(|row| (row, rows))
                });
                Ok(Response::CopyOut(CopyResponse::new(
                    format, columns, stream,
                )))
            }
            Kind::Setting(name, value) => {
                let schema = text_schema(&[name.as_str()]);
                let batch = arrow::record_batch::RecordBatch::try_new(
                    Arc::new(schema.clone()),
                    vec![Arc::new(arrow::array::StringArray::from(vec![value]))],
                )
                .map_err(|e| user_error("XX000", e.to_string()))?;
                rows(Arc::new(fields(&schema, formats)), &[batch])
            }
            Kind::Query => {
                let batches = self.open(sql, params, database).await?;
                let fields = Arc::new(fields(&batches.schema, formats));
                let rows = stream::Rows::new(fields.clone(), batches);
                Ok(Response::Query(QueryResponse::new(
                    fields,
                    rows.into_stream(),
                )))
            }
        }
    }
}

#[async_trait]
impl SimpleQueryHandler for Queries {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let statements = guard::split(query);
        if statements.is_empty() {
            // `-- ping` (Grafana's health check through pgx), `;` (lib/pq's).
            return Ok(vec![Response::EmptyQuery]);
        }
        let mut responses = Vec::new();
        let mut status = client.transaction_status();
        let last = statements.len() - 1;
        for (i, statement) in statements.into_iter().enumerate() {
            let text = Format::UnifiedText;
            match self
                .answer(statement, Vec::new(), database(client), &text, status)
                .await
            {
                // pgwire sends the responses once all are made, and a FETCH holds its cursor
                // until its rows are sent: one before the last is read here (`FETCH 10 c;
                // FETCH 10 c` would wait for itself).
                Ok(Response::Query(mut fetch)) if i < last && fetch.command_tag() == "FETCH" => {
                    let mut rows = Vec::new();
                    while let Some(row) = fetch.data_rows.next().await {
                        rows.push(row);
                    }
                    let mut read =
                        QueryResponse::new(fetch.row_schema(), futures_util::stream::iter(rows));
                    read.set_command_tag("FETCH");
                    responses.push(Response::Query(read));
                }
                Ok(r) => {
                    status = match &r {
                        Response::TransactionStart(_) => status.to_in_transaction_state(),
                        Response::TransactionEnd(_) => status.to_idle_state(),
                        _ => status,
                    };
                    responses.push(r)
                }
                Err(PgWireError::UserError(e)) => {
                    responses.push(Response::Error(e));
                    break;
                }
                Err(e) => return Err(e),
            }
            self.publish_cursor(client.portal_store().as_any());
        }
        // Outside a block the message was its own transaction: what it declared stays only if
        // all of it went through.
        if status == TransactionStatus::Idle {
            let failed = responses.iter().any(|r| matches!(r, Response::Error(_)));
            self.cursors.end_block(!failed);
        }
        Ok(responses)
    }
}

/// Statements are kept as their SQL; DuckDB prepares them when they run.
struct Parser;

#[async_trait]
impl QueryParser for Parser {
    type Statement = String;

    async fn parse_sql<C>(
        &self,
        _client: &C,
        sql: &str,
        _types: &[Option<Type>],
    ) -> PgWireResult<Option<String>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        // As in PostgreSQL: a prepared statement is one statement.
        if guard::split(sql).len() > 1 {
            return Err(user_error(
                "42601",
                "cannot insert multiple commands into a prepared statement",
            ));
        }
        Ok(Some(sql.to_string()))
    }

    fn get_parameter_types(&self, _stmt: &String) -> PgWireResult<Vec<Type>> {
        Ok(Vec::new())
    }

    fn get_result_schema(
        &self,
        _stmt: &String,
        _column_format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        Ok(Vec::new())
    }
}

/// The type the client declared for parameter `i`, or unknown (DuckDB then infers it).
fn declared_type(statement: &StoredStatement<String>, i: usize) -> Type {
    statement
        .parameter_types
        .get(i)
        .cloned()
        .flatten()
        .unwrap_or(Type::UNKNOWN)
}

/// The database a client asked for at startup (`current_database()` answers it).
fn database(client: &impl ClientInfo) -> &str {
    client
        .metadata()
        .get(pgwire::api::METADATA_DATABASE)
        .map_or("hspq", String::as_str)
}

/// Whether parameter `i` came in binary: one code for all, or one per parameter (a client that
/// sent fewer codes than parameters gets text for the rest rather than a dropped connection).
fn binary_parameter(portal: &Portal<String>, i: usize) -> bool {
    match &portal.parameter_format {
        Format::Individual(codes) => codes.get(i) == Some(&1),
        unified => unified.is_binary(i),
    }
}

/// A portal's parameters as text for DuckDB to cast, whatever format the client sent; each
/// decoded by the type the client declared, else the one the server described (`inferred`).
fn parameters(portal: &Portal<String>, inferred: &[Type]) -> PgWireResult<Vec<Option<String>>> {
    portal
        .parameters
        .iter()
        .enumerate()
        .map(|(i, bytes)| {
            let Some(bytes) = bytes else {
                return Ok(None);
            };
            let t = match declared_type(&portal.statement, i) {
                Type::UNKNOWN => inferred.get(i).cloned().unwrap_or(Type::TEXT),
                declared => declared,
            };
            params::value(bytes, binary_parameter(portal, i), &t)
                .map(Some)
                .map_err(|e| user_error("22P03", format!("parameter ${}: {e}", i + 1)))
        })
        .collect()
}

#[async_trait]
impl ExtendedQueryHandler for Queries {
    type Statement = String;
    type QueryParser = Parser;

    fn query_parser(&self) -> Arc<Parser> {
        self.parser.clone()
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<String>,
        max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = String>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let sql = &portal.statement.statement;
        // Binary values are decoded by their type: the one described, for a client that sent
        // no type of its own.
        let undeclared_binary = (0..portal.parameter_len()).any(|i| {
            binary_parameter(portal, i) && declared_type(&portal.statement, i) == Type::UNKNOWN
        });
        let inferred = if undeclared_binary {
            self.parameter_types(sql, database(client)).await?
        } else {
            Vec::new()
        };
        let status = client.transaction_status();
        let response = self
            .answer(
                sql,
                parameters(portal, &inferred)?,
                database(client),
                &portal.result_column_format,
                status,
            )
            .await;
        if status == TransactionStatus::Idle {
            // Outside a block a statement is its own transaction (see the simple handler).
            self.cursors.end_block(response.is_ok());
        }
        let response = response?;
        self.publish_cursor(client.portal_store().as_any());
        match (response, max_rows) {
            // pgwire gathers an Execute's rows before sending them; with no row limit, that is
            // the whole result: send them here as they come.
            (Response::Query(mut result), 0) => {
                let mut sent = 0;
                while let Some(row) = result.data_rows.next().await {
                    client.feed(PgWireBackendMessage::DataRow(row?)).await?;
                    sent += 1;
                }
                Ok(Response::Execution(
                    Tag::new(result.command_tag()).with_rows(sent),
                ))
            }
            (response, _) => Ok(response),
        }
    }

    async fn do_describe_statement<C>(
        &self,
        client: &mut C,
        target: &StoredStatement<String>,
    ) -> PgWireResult<DescribeStatementResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = String>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        // The formats are not known before Bind: text.
        let (columns, inferred) = self
            .describe(&target.statement, database(client), &Format::UnifiedText)
            .await?;
        let types = inferred
            .into_iter()
            .enumerate()
            .map(|(i, inferred)| match declared_type(target, i) {
                Type::UNKNOWN => inferred,
                declared => declared,
            })
            .collect();
        Ok(DescribeStatementResponse::new(types, columns))
    }

    async fn do_describe_portal<C>(
        &self,
        client: &mut C,
        portal: &Portal<String>,
    ) -> PgWireResult<DescribePortalResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = String>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let (columns, _) = self
            .describe(
                &portal.statement.statement,
                database(client),
                &portal.result_column_format,
            )
            .await?;
        Ok(DescribePortalResponse::new(columns))
    }
}

impl Queries {
    /// The fields a statement returns and its parameters' types as DuckDB infers them.
    async fn describe(
        &self,
        sql: &str,
        database: &str,
        formats: &Format,
    ) -> PgWireResult<(Vec<FieldInfo>, Vec<Type>)> {
        debug!("describe: {sql}");
        match self.with_as_of(kind(sql)) {
            Kind::Query => {
                let (schema, params) = self
                    .session
                    .get(database)
                    .await?
                    .describe(sql.to_string())
                    .await
                    .map_err(|f| user_error(f.code, f.message))?;
                let types: Vec<Type> = params.iter().map(params::pg_type).collect();
                if let Ok(mut inferred) = self.inferred.lock() {
                    inferred.insert(sql.to_string(), types.clone());
                }
                Ok((fields(&schema, formats), types))
            }
            Kind::Setting(name, _) => {
                Ok((fields(&text_schema(&[name.as_str()]), formats), Vec::new()))
            }
            Kind::Cursor(cursor::Command::Fetch {
                name,
                moving: false,
                ..
            }) => {
                let cursor = self
                    .cursors
                    .get(&name)
                    .map_err(|(code, why)| user_error(code, why))?;
                let formats = match cursor.binary {
                    true => &Format::UnifiedBinary,
                    false => formats,
                };
                Ok((fields(&cursor.schema, formats), Vec::new()))
            }
            Kind::Refused(why) => Err(user_error("25006", why)),
            Kind::Invalid(why) => Err(user_error("42601", why)),
            Kind::Failed(code, why) => Err(user_error(code, why)),
            Kind::Noop(_)
            | Kind::Transaction(_)
            | Kind::Copy(_)
            | Kind::AsOf(_)
            | Kind::Cursor(_) => Ok((Vec::new(), Vec::new())),
        }
    }

    /// `SHOW hspq.as_of` as the setting's value on this connection.
    fn with_as_of(&self, kind: Kind) -> Kind {
        match kind {
            Kind::Setting(name, _) if name == AS_OF_SETTING => Kind::Setting(
                name,
                self.as_of
                    .lock()
                    .ok()
                    .and_then(|held| held.clone())
                    .unwrap_or_else(|| "newest".into()),
            ),
            other => other,
        }
    }

    /// The parameter types the server describes for `sql` (asked of DuckDB if it was not
    /// described on this connection yet).
    async fn parameter_types(&self, sql: &str, database: &str) -> PgWireResult<Vec<Type>> {
        let known = self
            .inferred
            .lock()
            .ok()
            .and_then(|inferred| inferred.get(sql).cloned());
        match known {
            Some(types) => Ok(types),
            None => Ok(self.describe(sql, database, &Format::UnifiedText).await?.1),
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
}

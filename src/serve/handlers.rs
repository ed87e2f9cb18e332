//! One connection's handlers: its startup (SCRAM against the one login, the parameters the
//! server announces, the key its cancel requests will carry) and the cancel requests that reach
//! its session.

use std::sync::{Arc, Weak};

use async_trait::async_trait;
use pgwire::api::auth::sasl::scram::ScramAuth;
use pgwire::api::auth::sasl::SASLAuthStartupHandler;
use pgwire::api::auth::{DefaultServerParameterProvider, StartupHandler};
use pgwire::api::cancel::CancelHandler;
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::{
    ClientInfo, PgWireServerHandlers, PidSecretKeyGenerator, RandomPidSecretKeyGenerator,
};
use pgwire::error::PgWireResult;
use pgwire::messages::cancel::CancelRequest;
use pgwire::messages::startup::SecretKey;
use tracing::{info, warn};

use super::login::{Door, Login, SCRAM_ITERATIONS};
use super::tls::{self, Tls};
use super::{Lazy, Queries, SERVER_VERSION};

type Auth = SASLAuthStartupHandler<DefaultServerParameterProvider>;

/// A connection's startup: SCRAM against the one login (bound to the TLS certificate when
/// there is one), and the key its cancel requests will carry.
pub(super) fn auth_handler(
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
pub(super) struct Cancels {
    keys: RandomPidSecretKeyGenerator,
    sessions: std::sync::Mutex<std::collections::HashMap<i32, (SecretKey, Weak<Lazy>)>>,
}

impl Cancels {
    pub(super) fn forget_ended(&self) {
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
                session.cancel();
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
pub(super) struct SessionKeys {
    pub(super) session: Weak<Lazy>,
    pub(super) cancels: Arc<Cancels>,
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
pub(super) struct Handlers {
    pub(super) auth: Arc<tls::Gate<Door<Auth>>>,
    pub(super) cancels: Arc<Cancels>,
    pub(super) queries: Arc<Queries>,
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

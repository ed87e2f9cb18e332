//! Logins: the one user's SCRAM verifier, never the password; the same exchange for an unknown
//! user as for a wrong password; a slower door for an address that keeps failing; and a line on
//! stderr for every login and refusal (address, user, outcome; never a password).

use std::collections::{HashMap, VecDeque};
use std::fmt::Debug;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures_util::Sink;
use pgwire::api::auth::sasl::scram::{gen_salted_password, ScramSecret};
use pgwire::api::auth::{AuthSource, LoginInfo, Password, StartupHandler};
use pgwire::api::{ClientInfo, PgWireConnectionState, METADATA_USER};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use sha2::{Digest, Sha256};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};
use tracing::{info, warn};

/// SCRAM's hash iterations (RFC 7677's minimum, PostgreSQL's default).
pub const SCRAM_ITERATIONS: usize = 4096;

/// Failures from one address within this window count towards its delay.
const WINDOW: Duration = Duration::from_secs(60);
/// Failures within the window before attempts wait.
const FREE_FAILURES: usize = 5;
/// The longest an attempt waits.
const MAX_DELAY: Duration = Duration::from_secs(30);

/// The one user, as a SCRAM verifier (salt, StoredKey, ServerKey as PostgreSQL keeps them):
/// neither the password nor anything a client could log in with.
pub struct Login {
    user: String,
    salt: Vec<u8>,
    stored_key: Vec<u8>,
    server_key: Vec<u8>,
    /// Makes unknown users' salts, fixed for the server's life: the same user name always gets
    /// the same salt, as a real one does.
    secret: [u8; 32],
}

impl Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login").field("user", &self.user).finish()
    }
}

impl Login {
    /// The verifier of `user`'s `password`; the password itself is not kept.
    pub fn new(user: &str, password: &str) -> Login {
        let salt: [u8; 16] = rand::random();
        let salted = gen_salted_password(password, &salt, SCRAM_ITERATIONS);
        let ScramSecret::Verifier {
            stored_key,
            server_key,
            ..
        } = ScramSecret::verifier_from_salted_password(salt.to_vec(), salted, SCRAM_ITERATIONS)
        else {
            unreachable!("verifier_from_salted_password makes a verifier")
        };
        Login {
            user: user.to_string(),
            salt: salt.to_vec(),
            stored_key,
            server_key,
            secret: rand::random(),
        }
    }

    /// A salt for a user that does not exist, the same for the same name.
    fn fake_salt(&self, user: &str) -> Vec<u8> {
        let mut hash = Sha256::new();
        hash.update(self.secret);
        hash.update(user.as_bytes());
        hash.finalize()[..16].to_vec()
    }
}

#[async_trait]
impl AuthSource for Login {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        // Only SCRAM is offered, which asks for the verifier below.
        Err(PgWireError::InvalidPassword(
            login.user().unwrap_or_default().to_string(),
        ))
    }

    async fn get_scram_secret(&self, login: &LoginInfo) -> PgWireResult<(ScramSecret, Option<()>)> {
        let user = login.user().unwrap_or_default();
        let secret = if user == self.user {
            ScramSecret::Verifier {
                salt: self.salt.clone(),
                iterations: SCRAM_ITERATIONS,
                stored_key: self.stored_key.clone(),
                server_key: self.server_key.clone(),
            }
        } else {
            // An exchange like a real user's that no proof passes: a client cannot tell an
            // unknown user from a wrong password.
            ScramSecret::Verifier {
                salt: self.fake_salt(user),
                iterations: SCRAM_ITERATIONS,
                stored_key: rand::random::<[u8; 32]>().to_vec(),
                server_key: rand::random::<[u8; 32]>().to_vec(),
            }
        };
        Ok((secret, None))
    }
}

/// Failed logins by address, for the delay of the next attempt.
#[derive(Default)]
pub struct Throttle {
    failures: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

impl Throttle {
    /// How long an attempt from `ip` waits: after 5 failures within a minute, a second more
    /// for each further one, up to 30 s.
    pub fn delay(&self, ip: IpAddr) -> Duration {
        let Ok(mut failures) = self.failures.lock() else {
            return MAX_DELAY;
        };
        let Some(times) = failures.get_mut(&key(ip)) else {
            return Duration::ZERO;
        };
        while times.front().is_some_and(|t| t.elapsed() > WINDOW) {
            times.pop_front();
        }
        let over = times.len().saturating_sub(FREE_FAILURES - 1) as u64;
        Duration::from_secs(over).min(MAX_DELAY)
    }

    /// Counts a failure from `ip`; how long its refusal waits (the failures counted as they
    /// happen, so attempts made in parallel wait one after another).
    fn failed(&self, ip: IpAddr) -> Duration {
        if let Ok(mut failures) = self.failures.lock() {
            // Addresses seen once a minute ago are forgotten.
            failures.retain(|_, times| times.back().is_some_and(|t| t.elapsed() <= WINDOW));
            failures
                .entry(key(ip))
                .or_default()
                .push_back(Instant::now());
        }
        self.delay(ip).saturating_sub(Duration::from_secs(1))
    }
}

/// The places of connections still logging in: so many in all, and so many per address. A
/// connection beyond them waits for one, up to [`Admission::WAIT`] (a pool opening its 32
/// connections at once from one host gets them all); the queue is bounded too, in all and per
/// address, so that a crowd of silent connections from one address locks out neither the
/// others nor, for longer than the login time, its own.
pub struct Admission {
    places: Arc<Semaphore>,
    queue: Arc<Semaphore>,
    per_address: usize,
    queue_per_address: usize,
    by_address: Arc<Mutex<HashMap<IpAddr, Address>>>,
}

/// One address's places, and how many of its connections hold or wait for one.
struct Address {
    places: Arc<Semaphore>,
    here: usize,
}

/// Why a connection was turned away before logging in.
#[derive(Debug, PartialEq, Eq)]
pub enum Turned {
    /// The queue (in all, or its address's share) is full.
    QueueFull,
    /// No place came free within [`Admission::WAIT`].
    NoPlace,
}

/// A connection's place among those logging in, given back when dropped.
pub struct Waiting {
    _place: OwnedSemaphorePermit,
    _address_place: OwnedSemaphorePermit,
    _queued: Queued,
}

/// A connection's place in the queue (holding a place or waiting for one).
struct Queued {
    _ticket: OwnedSemaphorePermit,
    address: IpAddr,
    by_address: Arc<Mutex<HashMap<IpAddr, Address>>>,
}

impl Admission {
    /// How long a connection waits for a place to log in.
    pub const WAIT: Duration = Duration::from_secs(15);

    /// `places` logging in at once, `per_address` of them from one address; `queue` may hold
    /// or wait for one, `queue_per_address` of them from one address.
    pub fn new(
        places: usize,
        per_address: usize,
        queue: usize,
        queue_per_address: usize,
    ) -> Admission {
        Admission {
            places: Arc::new(Semaphore::new(places)),
            queue: Arc::new(Semaphore::new(queue)),
            per_address,
            queue_per_address,
            by_address: Arc::default(),
        }
    }

    /// A place for a connection from `ip`, once one is free in all and for its address.
    pub async fn take(&self, ip: IpAddr) -> Result<Waiting, Turned> {
        let address = key(ip);
        let (queued, address_places) = {
            let mut counts = self.by_address.lock().map_err(|_| Turned::QueueFull)?;
            let entry = counts.entry(address).or_insert_with(|| Address {
                places: Arc::new(Semaphore::new(self.per_address)),
                here: 0,
            });
            if entry.here >= self.queue_per_address {
                return Err(Turned::QueueFull);
            }
            let ticket = self
                .queue
                .clone()
                .try_acquire_owned()
                .map_err(|_| Turned::QueueFull)?;
            entry.here += 1;
            let queued = Queued {
                _ticket: ticket,
                address,
                by_address: self.by_address.clone(),
            };
            (queued, entry.places.clone())
        };
        let places = self.places.clone();
        let wait = async move {
            let address_place = address_places.acquire_owned().await.ok()?;
            let place = places.acquire_owned().await.ok()?;
            Some((place, address_place))
        };
        match tokio::time::timeout(Self::WAIT, wait).await {
            Ok(Some((place, address_place))) => Ok(Waiting {
                _place: place,
                _address_place: address_place,
                _queued: queued,
            }),
            _ => Err(Turned::NoPlace),
        }
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        if let Ok(mut counts) = self.by_address.lock() {
            if let Some(entry) = counts.get_mut(&self.address) {
                entry.here -= 1;
                if entry.here == 0 {
                    counts.remove(&self.address);
                }
            }
        }
    }
}

/// The address failures are counted against: every loopback address is one (a local client
/// could pick any of 127.0.0.0/8), an IPv6 address its /64 (what one host is given).
pub fn key(ip: IpAddr) -> IpAddr {
    let ip = match ip {
        // An IPv4 client of a server bound to `::`.
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(v4) if v4.is_loopback() => IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_loopback() => IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// A startup handler that lets `inner` log a client in, then says how it went; a failure
/// counts against the client's address (and waits), a success takes one of the server's
/// client slots (or is turned away: too many clients) and is told to `logged_in`.
pub struct Door<H> {
    inner: H,
    throttle: Arc<Throttle>,
    user: String,
    slots: Arc<Semaphore>,
    max: usize,
    slot: Mutex<Option<OwnedSemaphorePermit>>,
    logged_in: Mutex<Option<oneshot::Sender<()>>>,
    password_messages: std::sync::atomic::AtomicUsize,
}

impl<H> Door<H> {
    pub fn new(
        inner: H,
        throttle: Arc<Throttle>,
        user: String,
        slots: Arc<Semaphore>,
        max: usize,
        logged_in: oneshot::Sender<()>,
    ) -> Door<H> {
        Door {
            inner,
            throttle,
            user,
            slots,
            max,
            slot: Mutex::new(None),
            logged_in: Mutex::new(Some(logged_in)),
            password_messages: Default::default(),
        }
    }
}

#[async_trait]
impl<H: StartupHandler> StartupHandler for Door<H> {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match self.startup(client, message).await {
            // Said here, then closed: pgwire follows an error with ReadyForQuery, which
            // PostgreSQL never sends after a FATAL one (asyncpg reports a protocol violation).
            Err(e) if e.is_fatal() => {
                use futures_util::SinkExt;
                let info: ErrorInfo = e.into();
                client
                    .send(PgWireBackendMessage::ErrorResponse(info.into()))
                    .await?;
                let _ = client.close().await;
                Err(PgWireError::IoError(std::io::Error::new(
                    std::io::ErrorKind::ConnectionAborted,
                    "closed after refusing the login",
                )))
            }
            outcome => outcome,
        }
    }
}

impl<H: StartupHandler> Door<H> {
    async fn startup<C>(&self, client: &mut C, message: PgWireFrontendMessage) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let ready = |c: &C| matches!(c.state(), PgWireConnectionState::ReadyForQuery);
        let was_ready = ready(client);
        let peer: SocketAddr = client.socket_addr();
        // A client's place is taken before its password is checked (after, the login is
        // complete and cannot be turned away cleanly), and given back if the check fails.
        let mut taken = None;
        let holds = self.slot.lock().map(|s| s.is_some()).unwrap_or(true);
        // SCRAM's second message from the client is its proof: a client that stops after the
        // first takes no place.
        let final_message = matches!(message, PgWireFrontendMessage::PasswordMessageFamily(_))
            && self
                .password_messages
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
                >= 1;
        if final_message && !holds {
            let Ok(slot) = self.slots.clone().try_acquire_owned() else {
                warn!(
                    "refused {peer}: {} clients are connected already (--max-connections)",
                    self.max
                );
                return Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                    "FATAL".to_owned(),
                    "53300".to_owned(),
                    format!(
                        "sorry, too many clients already: hspq serve takes {} at once \
                         (--max-connections)",
                        self.max
                    ),
                ))));
            };
            taken = Some(slot);
        }
        let outcome = self.inner.on_startup(client, message).await;
        if let Some(slot) = taken {
            if outcome.is_ok() {
                if let Ok(mut held) = self.slot.lock() {
                    *held = Some(slot);
                }
            }
        }
        let user = client
            .metadata()
            .get(METADATA_USER)
            .cloned()
            .unwrap_or_default();
        match &outcome {
            Err(PgWireError::InvalidPassword(_)) => {
                let wait = self.throttle.failed(peer.ip());
                let why = if user == self.user {
                    "wrong password"
                } else {
                    "unknown user"
                };
                warn!("login refused: {peer}, user {user:?}: {why}");
                // Failures in parallel wait too, each longer than the one before.
                tokio::time::sleep(wait).await;
                // PostgreSQL's words and code, naming the user the client asked for (SCRAM's
                // own user name is empty with libpq): the same for both causes.
                return Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                    "FATAL".to_owned(),
                    "28P01".to_owned(),
                    format!("password authentication failed for user \"{user}\""),
                ))));
            }
            Err(e) => {
                if matches!(e, PgWireError::InvalidScramMessage(_)) {
                    self.throttle.failed(peer.ip());
                }
                warn!("login refused: {peer}, user {user:?}: {e}");
            }
            Ok(()) if !was_ready && ready(client) => {
                if let Some(tell) = self.logged_in.lock().ok().and_then(|mut t| t.take()) {
                    let _ = tell.send(());
                }
                info!("login: {peer}, user {user:?}");
            }
            Ok(()) => {}
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_connection_beyond_its_addresses_places_waits_for_one_and_the_queue_is_bounded() {
        let admission = Admission::new(64, 2, 512, 4);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let first = admission.take(ip).await.unwrap();
        let _second = admission.take(ip).await.unwrap();
        // The third waits, and gets the place the first gives back.
        let third = admission.take(ip);
        tokio::pin!(third);
        assert!(
            tokio::time::timeout(Duration::from_millis(100), &mut third)
                .await
                .is_err(),
            "got a place beyond its address's two"
        );
        let other = admission.take("192.0.2.2".parse().unwrap()).await;
        assert!(other.is_ok(), "another address waits for this one's");
        drop(first);
        let _third = tokio::time::timeout(Duration::from_secs(5), third)
            .await
            .expect("still waiting after a place came free")
            .unwrap();
        // Two hold a place and two wait: the address's queue (4) is full.
        let (a, b) = (admission.take(ip), admission.take(ip));
        tokio::pin!(a, b);
        let short = Duration::from_millis(50);
        assert!(tokio::time::timeout(short, a.as_mut()).await.is_err());
        assert!(tokio::time::timeout(short, b.as_mut()).await.is_err());
        assert!(matches!(admission.take(ip).await, Err(Turned::QueueFull)));
    }

    #[test]
    fn attempts_wait_a_second_more_for_each_failure_after_the_fifth() {
        let throttle = Throttle::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let delays: Vec<u64> = (0..40)
            .map(|_| {
                let d = throttle.delay(ip).as_secs();
                let waited = throttle.failed(ip).as_secs();
                assert_eq!(waited, throttle.delay(ip).as_secs().saturating_sub(1));
                d
            })
            .collect();
        assert_eq!(&delays[..8], &[0, 0, 0, 0, 0, 1, 2, 3]);
        assert_eq!(delays[39], 30);
        assert_eq!(throttle.delay("192.0.2.2".parse().unwrap()), Duration::ZERO);
        // Every loopback address counts as one, an IPv6 host by its /64.
        for _ in 0..6 {
            throttle.failed("127.0.0.1".parse().unwrap());
        }
        assert_eq!(throttle.delay("127.9.8.7".parse().unwrap()).as_secs(), 2);
        for _ in 0..6 {
            throttle.failed("2001:db8::1".parse().unwrap());
        }
        assert_eq!(
            throttle.delay("2001:db8::ffff".parse().unwrap()).as_secs(),
            2
        );
    }

    #[test]
    fn an_unknown_users_salt_is_stable_and_unlike_the_real_ones() {
        let login = Login::new("hspq", "pw");
        assert_eq!(login.fake_salt("mallory"), login.fake_salt("mallory"));
        assert_ne!(login.fake_salt("mallory"), login.fake_salt("eve"));
        assert_eq!(login.fake_salt("mallory").len(), login.salt.len());
        assert!(!format!("{login:?}").contains("pw"));
    }
}

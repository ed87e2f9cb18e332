//! The Partner Portal API simulator: a faithful stand-in for the vendor's API, served on
//! loopback by `hspq simulate` and started in-process by tests and benchmarks.
//!
//! It is written from the vendor docs (`shared/api-docs/`) alone and shares no code with the
//! client in `src/api/`, so each checks the other. Where the docs allow two readings the
//! simulator picks one, listed here so tests and users know:
//! - An unknown or future period is a 404; a malformed one (`2026/2`, `2026/13`) is a 400.
//! - The reseller `companies` list carries no `next`/`previous` links (as the doc example
//!   shows); every other list carries relative `next`/`previous` links.
//! - Without a `product` filter, a company's billing array lists its enabled products only;
//!   with one, a company without that product gets `billing_value: null` and `null_reason`.
//! - Rate limit: a session's *accepted* requests are at least 1/R seconds apart, whatever the
//!   endpoint (`validate` and `DELETE` included); a refused (429) request does not move the
//!   window. `POST /v1/auth/session` has no session and is not limited.
//! - Customer date ranges: `from` may be as early as `to` minus 12 calendar months (inclusive);
//!   earlier is a 400. Data stops at T−1 and starts 24 months before today.
//! - Session origin: the first `X-Forwarded-For` address if present, else the peer address.
//! - `DELETE` of an unknown or expired session is a 404; `validate` of one is a 200 with
//!   `valid: false`.
//!
//! The world's data lives in [`world`]; the HTTP surface in `server`.

mod entities;
mod server;
pub mod world;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

pub use world::{Mechanics, Partnership, World};

/// One API key the simulated organisation accepts.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SimKey {
    /// Shown in `/v1/me` as `api_key_name`.
    pub name: String,
    /// The secret key, `hsp_...`.
    pub api_key: String,
    /// `mssp` or `reseller`: the partnership the key reads.
    pub report: String,
    /// Whether the key has the optional `customers:read` scope.
    #[serde(default)]
    pub customers: bool,
    /// IPs allowed to create sessions; empty = any.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
}

/// The keys the simulated organisation accepts (the `--keys-file` JSON).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SimKeys {
    /// `hsp_org_...`.
    pub organization_key: String,
    /// `/v1/me`'s `partner_name`.
    pub partner_name: String,
    /// The API keys.
    pub api_keys: Vec<SimKey>,
}

impl SimKeys {
    /// The simulator's own dummy keys: an MSSP and a reseller key with `customers:read`, and one
    /// of each without. They are not secrets and may be printed.
    pub fn dummy() -> SimKeys {
        let key = |name: &str, api_key: &str, report: &str, customers: bool| SimKey {
            name: name.into(),
            api_key: api_key.into(),
            report: report.into(),
            customers,
            allowed_origins: Vec::new(),
        };
        SimKeys {
            organization_key: "hsp_org_simulator_dummy_0000".into(),
            partner_name: "Slate Rock and Gravel Co.".into(),
            api_keys: vec![
                key(
                    "MSSP with customers",
                    "hsp_simmssp0_dummy_full",
                    "mssp",
                    true,
                ),
                key(
                    "Reseller with customers",
                    "hsp_simresl0_dummy_full",
                    "reseller",
                    true,
                ),
                key(
                    "MSSP report only",
                    "hsp_simmssp1_dummy_report",
                    "mssp",
                    false,
                ),
                key(
                    "Reseller report only",
                    "hsp_simresl1_dummy_report",
                    "reseller",
                    false,
                ),
            ],
        }
    }

    /// Reads a keys file.
    pub fn load(path: &Path) -> Result<SimKeys, KeysFileError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| KeysFileError(format!("cannot read keys file {}: {e}", path.display())))?;
        let keys: SimKeys = serde_json::from_str(&text).map_err(|e| {
            KeysFileError(format!(
                "keys file {} is not valid: {e} (expected {{\"organization_key\", \"partner_name\", \"api_keys\": [{{\"name\", \"api_key\", \"report\": \"mssp\"|\"reseller\", \"customers\"}}]}})",
                path.display()
            ))
        })?;
        for k in &keys.api_keys {
            if k.report != "mssp" && k.report != "reseller" {
                return Err(KeysFileError(format!(
                    "keys file {}: key {:?} has report {:?}; use \"mssp\" or \"reseller\"",
                    path.display(),
                    k.name,
                    k.report
                )));
            }
        }
        Ok(keys)
    }
}

/// Why `hspq simulate --keys FILE` cannot use the file: the message names the file and the fix.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct KeysFileError(String);

/// Random faults, each drawn per request with its own probability.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FaultRates {
    /// A 500, 502 or 503 (the 502/503 with an HTML body).
    pub server_error: f64,
    /// The connection is dropped after the headers.
    pub drop: f64,
    /// A 429 although the session kept its pace.
    pub rate_limited: f64,
    /// The answer comes after [`FaultRates::slow_by`].
    pub slow: f64,
    /// How long a slow answer waits.
    pub slow_by: Duration,
    /// Unknown fields are added to the body and its records.
    pub extra_fields: f64,
    /// The session is revoked server-side before the request (so it gets a 401).
    pub revoke: f64,
}

impl FaultRates {
    /// `--faults P`: a share `p` of requests fail, spread evenly over every fault kind.
    pub fn uniform(p: f64) -> FaultRates {
        let each = p.clamp(0.0, 1.0) / 6.0;
        FaultRates {
            server_error: each,
            drop: each,
            rate_limited: each,
            slow: each,
            slow_by: Duration::from_millis(300),
            extra_fields: each,
            revoke: each,
        }
    }
}

/// A fault queued for the next session-bound requests, so tests can script exact sequences.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// Answer with this status (5xx bodies as the gateway would send them).
    Status(u16),
    /// Drop the connection after the headers.
    Drop,
    /// A 429 with this `retry_after_ms`.
    RateLimited(u64),
    /// Wait this long before answering.
    Slow(Duration),
    /// Add unknown fields.
    ExtraFields,
    /// Revoke the session, so the request gets a 401.
    Revoke,
    /// Empty every list in the answer, as if nothing had happened in the range.
    EmptyLists,
    /// Send the first number inside the first record as a string (a type the docs do not
    /// allow), to test that clients refuse it.
    WrongType,
}

/// Everything that shapes a simulator.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Seed of the synthetic data.
    pub seed: u64,
    /// Companies per partnership.
    pub companies: u32,
    /// Periods each report lists (at most 24).
    pub periods: u32,
    /// Requests per second per session; 0 turns the limit off.
    pub rate: f64,
    /// How long a session lives.
    pub session_ttl: Duration,
    /// Active sessions per organisation.
    pub max_sessions: usize,
    /// "Today" in Europe/Stockholm.
    pub today: NaiveDate,
    /// Random faults.
    pub faults: FaultRates,
    /// Seed for fault draws and tokens.
    pub fault_seed: u64,
    /// Keys accepted.
    pub keys: SimKeys,
    /// Share of the companies that pause once and come back (see `World::with_pauses`).
    pub pauses: f64,
    /// How usage moves over time and how leavers show it (see [`Mechanics`]).
    pub mechanics: Mechanics,
}

impl SimConfig {
    /// A small world with the documented limits, dated `today`.
    pub fn new(today: NaiveDate) -> SimConfig {
        SimConfig {
            seed: 42,
            companies: 40,
            periods: 24,
            rate: 1.0,
            session_ttl: Duration::from_secs(3600),
            max_sessions: 5,
            today,
            faults: FaultRates::default(),
            fault_seed: 1,
            keys: SimKeys::dummy(),
            pauses: 0.0,
            mechanics: Mechanics::Fading,
        }
    }
}

/// One request as the simulator saw it.
#[derive(Clone, Debug)]
pub struct RequestRecord {
    /// When it arrived (tokio clock).
    pub at: tokio::time::Instant,
    /// The session's serial number (1 = first session created), if the request had one.
    pub session: Option<u64>,
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// Status answered.
    pub status: u16,
}

/// A running simulator. Dropping it stops the server.
pub struct Simulator {
    addr: SocketAddr,
    state: Arc<server::State>,
    shutdown: Option<oneshot::Sender<()>>,
}

impl Simulator {
    /// Serves on `addr` (use port 0 for a free port) until dropped.
    pub async fn start(config: SimConfig, addr: SocketAddr) -> std::io::Result<Simulator> {
        let state = Arc::new(server::State::new(config));
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = oneshot::channel::<()>();
        let app = server::router(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await;
        });
        Ok(Simulator {
            addr,
            state,
            shutdown: Some(tx),
        })
    }

    /// Serves on a free loopback port.
    pub async fn start_local(config: SimConfig) -> std::io::Result<Simulator> {
        Simulator::start(config, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// The address served.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The API base URL, `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The data served.
    pub fn world(&self) -> &World {
        &self.state.world
    }

    /// The keys accepted.
    pub fn keys(&self) -> &SimKeys {
        &self.state.config.keys
    }

    /// Sessions alive now (not expired, not invalidated).
    pub fn active_sessions(&self) -> usize {
        self.state.active_sessions()
    }

    /// How many sessions were ever created.
    pub fn sessions_created(&self) -> u64 {
        self.state.sessions_created()
    }

    /// Makes every session expire now, as if an hour had passed.
    pub fn expire_sessions(&self) {
        self.state.expire_sessions();
    }

    /// Queues `fault` for each of the next `n` session-bound requests.
    pub fn inject(&self, fault: Fault, n: usize) {
        let mut q = self.state.scripted.lock().expect("fault queue");
        q.extend(std::iter::repeat_n((None, fault), n));
    }

    /// Queues `fault` for each of the next `n` session-bound requests to `path` (e.g. `/v1/me`).
    pub fn inject_at(&self, path: &str, fault: Fault, n: usize) {
        let mut q = self.state.scripted.lock().expect("fault queue");
        q.extend(std::iter::repeat_n((Some(path.to_string()), fault), n));
    }

    /// When each request arrived, and its path, answered or not (one a `Fault::Slow` holds,
    /// say): [`Simulator::requests`] has a request once it is answered.
    pub fn arrivals(&self) -> Vec<(std::time::Instant, String)> {
        let arrivals = self.state.arrivals.lock().expect("arrivals");
        arrivals
            .iter()
            .map(|(at, path)| (at.into_std(), path.clone()))
            .collect()
    }

    /// Every request seen so far.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.state.log.lock().expect("request log").clone()
    }

    /// Forgets the request log and the arrivals.
    pub fn clear_requests(&self) {
        self.state.log.lock().expect("request log").clear();
        self.state.arrivals.lock().expect("arrivals").clear();
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Scripted faults, each for any path (`None`) or one path.
pub(crate) type FaultQueue = Mutex<VecDeque<(Option<String>, Fault)>>;

//! The API client: a pool of up to five sessions, each paced, with retries, renewal and
//! pagination. Everything that talks to the API goes through [`Client::get`] or [`Pages`], so
//! pacing, retry, session renewal and pagination live here and nowhere else.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::time::Instant;
use tracing::{debug, warn};
use url::Url;

use super::error::ApiError;
use super::models::{Page, SessionCreated};
use super::pacer::Pacer;
use super::retry::{rate_limit_wait, Backoff, RetryConfig};
use super::secret::{Credentials, Secret};
use super::token_cache::TokenCache;

/// The API's cap on active sessions per organisation.
pub const MAX_SESSIONS: usize = 5;

/// The documented page size limit.
pub const MAX_PAGE: usize = 1000;

/// How the client behaves.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// API base, e.g. `https://portal-api.holmsecurity.com/v1`.
    pub base_url: Url,
    /// Sessions to open (1 to 5).
    pub sessions: usize,
    /// Requests per second per session; 0 = unpaced (only for simulators without a limit).
    pub rate: f64,
    /// Added to each pacing interval so jitter on the way cannot bring two arrivals too close.
    pub pace_margin: Duration,
    /// Per-request timeout; `None` for none (tests on paused time need that).
    pub request_timeout: Option<Duration>,
    /// Renew a session this long before it expires.
    pub renew_before: Duration,
    /// Retry policy.
    pub retry: RetryConfig,
    /// Where live session tokens are recorded so the next run can invalidate those of a killed
    /// run (see `token_cache`); `None` keeps no record.
    pub token_cache: Option<std::path::PathBuf>,
}

impl ClientConfig {
    /// The documented defaults for `base_url`: one session at 1 request per second.
    pub fn new(base_url: Url) -> ClientConfig {
        ClientConfig {
            base_url,
            sessions: 1,
            rate: 1.0,
            pace_margin: Duration::from_millis(20),
            request_timeout: Some(Duration::from_secs(60)),
            renew_before: Duration::from_secs(120),
            retry: RetryConfig::default(),
            token_cache: None,
        }
    }
}

/// Counters of a client's work, for `sync_runs` and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Requests sent to session-bound endpoints (retries included).
    pub requests: u64,
    /// Retries made.
    pub retries: u64,
    /// 429 answers seen.
    pub rate_limited: u64,
    /// Sessions created.
    pub sessions_created: u64,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    retries: AtomicU64,
    rate_limited: AtomicU64,
    sessions_created: AtomicU64,
}

struct SessionState {
    token: Option<Secret>,
    expires: Instant,
}

struct Inner {
    http: reqwest::Client,
    config: ClientConfig,
    creds: Credentials,
    pacer: Pacer,
    // tokio Mutexes: renewal awaits the API while holding one, so other requests for that
    // session wait for the new token instead of racing to create a second one.
    sessions: Vec<tokio::sync::Mutex<SessionState>>,
    counters: Counters,
    closed: AtomicBool,
    cache: Option<TokenCache>,
}

/// A connected client. Cheap to clone; the sessions are invalidated by [`Client::close`], or
/// on a best-effort basis when the last clone is dropped inside a tokio runtime.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

enum Outcome {
    Done(bytes::Bytes),
    RateLimited(Duration),
    Unauthorized,
    Transient(String),
    Failed(ApiError),
}

impl Client {
    /// Opens the configured number of sessions. A 409 on the first one is an error; on a later
    /// one the client goes on with fewer sessions and says so.
    pub async fn connect(config: ClientConfig, creds: Credentials) -> Result<Client, ApiError> {
        if config.sessions == 0 || config.sessions > MAX_SESSIONS {
            return Err(ApiError::Config(format!(
                "--sessions must be from 1 to {MAX_SESSIONS} (the API's cap per organisation), not {}",
                config.sessions
            )));
        }
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("hspq/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10));
        if let Some(t) = config.request_timeout {
            builder = builder.timeout(t);
        }
        let http = builder
            .build()
            .map_err(|e| ApiError::Config(format!("cannot set up HTTP: {e}")))?;
        let n = config.sessions;
        let cache = config
            .token_cache
            .clone()
            .map(|path| TokenCache::new(path, config.base_url.as_str()));
        let inner = Arc::new(Inner {
            pacer: Pacer::new(n, config.rate, config.pace_margin),
            sessions: (0..n)
                .map(|_| {
                    tokio::sync::Mutex::new(SessionState {
                        token: None,
                        expires: Instant::now(),
                    })
                })
                .collect(),
            http,
            config,
            creds,
            counters: Counters::default(),
            closed: AtomicBool::new(false),
            cache,
        });
        let client = Client { inner };
        client.inner.invalidate_orphans().await;
        for i in 0..n {
            match client.inner.create_session().await {
                Ok((token, expires)) => {
                    *client.inner.sessions[i].lock().await = SessionState {
                        token: Some(token),
                        expires,
                    }
                }
                Err(ApiError::SessionLimit { .. }) if i > 0 => {
                    warn!(
                        "the organisation's 5 API sessions are in use by others: continuing with {i} of {n} sessions"
                    );
                    for rest in i..n {
                        client.inner.pacer.retire(rest);
                    }
                    break;
                }
                Err(e) => {
                    client.close().await;
                    return Err(e);
                }
            }
        }
        Ok(client)
    }

    /// Sessions in use.
    pub fn sessions(&self) -> usize {
        self.inner.pacer.alive()
    }

    /// What the client did so far.
    pub fn stats(&self) -> ClientStats {
        let c = &self.inner.counters;
        ClientStats {
            requests: c.requests.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            rate_limited: c.rate_limited.load(Ordering::Relaxed),
            sessions_created: c.sessions_created.load(Ordering::Relaxed),
        }
    }

    /// GETs `path` (relative to the base URL, or absolute, or `/v1/...` from the origin) and
    /// decodes the body.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        let url = self.inner.resolve(path)?;
        let body = self.inner.execute(Method::GET, &url).await?;
        if body.len() < 256 * 1024 {
            return decode(&url, &body);
        }
        // A large page takes a while to decode: see `crate::cpu::heavy` for why.
        crate::cpu::heavy(|| decode(&url, &body))
    }

    /// Walks a paged list from `path`, `limit` records per page.
    pub fn pages<T: DeserializeOwned>(&self, path: &str, limit: usize) -> Pages<T> {
        Pages {
            client: self.clone(),
            path: path.to_string(),
            limit: limit.clamp(1, MAX_PAGE),
            offset: 0,
            next: Some(None),
            _records: std::marker::PhantomData,
        }
    }

    /// Every record of a paged list.
    pub async fn get_all<T: DeserializeOwned>(
        &self,
        path: &str,
        limit: usize,
    ) -> Result<Vec<T>, ApiError> {
        let mut pages = self.pages::<T>(path, limit);
        let mut all = Vec::new();
        while let Some(page) = pages.next_page().await? {
            all.extend(page.results);
        }
        Ok(all)
    }

    /// Invalidates every session this client created (`DELETE /v1/auth/session`), paced.
    pub async fn close(&self) {
        let inner = &self.inner;
        inner.closed.store(true, Ordering::SeqCst);
        for (i, slot) in inner.sessions.iter().enumerate() {
            let mut s = slot.lock().await;
            if let Some(token) = s.token.take() {
                if s.expires > Instant::now() {
                    inner.delete_paced(i, &token).await;
                }
            }
        }
    }
}

impl Inner {
    fn resolve(&self, path: &str) -> Result<Url, ApiError> {
        let base = &self.config.base_url;
        let joined = if path.starts_with("http://") || path.starts_with("https://") {
            Url::parse(path)
        } else if path.starts_with('/') {
            // A relative link such as `next` resolves against the origin.
            base.join(path)
        } else {
            let mut with_slash = base.clone();
            if !with_slash.path().ends_with('/') {
                with_slash.set_path(&format!("{}/", base.path()));
            }
            with_slash.join(path)
        };
        joined.map_err(|e| ApiError::Config(format!("bad API path {path:?}: {e}")))
    }

    async fn create_session(&self) -> Result<(Secret, Instant), ApiError> {
        let url = self.resolve("auth/session")?;
        let body = serde_json::json!({
            "organization_key": self.creds.organization_key.expose(),
            "api_key": self.creds.api_key.expose(),
        });
        let started = Instant::now();
        let mut backoff = Backoff::new(&self.config.retry.backoff);
        let mut attempts = 0;
        loop {
            attempts += 1;
            let sent = self.http.post(url.clone()).json(&body).send().await;
            let failure = match sent {
                Ok(resp) => {
                    let status = resp.status();
                    match resp.bytes().await {
                        Ok(bytes) if status == StatusCode::CREATED || status == StatusCode::OK => {
                            let created: SessionCreated = decode(&url, &bytes)?;
                            self.counters
                                .sessions_created
                                .fetch_add(1, Ordering::Relaxed);
                            let ttl =
                                Duration::from_secs(created.valid_for_seconds.unwrap_or(3600));
                            if let Some(cache) = &self.cache {
                                cache.add(&created.session_token, ttl);
                            }
                            return Ok((created.session_token, started + ttl));
                        }
                        Ok(bytes) => match status.as_u16() {
                            401 => return Err(ApiError::BadCredentials),
                            403 => {
                                return Err(ApiError::OriginNotAllowed {
                                    detail: describe(&bytes),
                                })
                            }
                            409 => {
                                let v: Value = serde_json::from_slice(&bytes).unwrap_or_default();
                                return Err(ApiError::SessionLimit {
                                    active: v["active_sessions"].as_u64().unwrap_or(5),
                                    max: v["max_sessions"].as_u64().unwrap_or(5),
                                });
                            }
                            s if s == 429 || s >= 500 => format!("status {s}"),
                            s => return Err(status_error(&url, s, &bytes)),
                        },
                        Err(e) => format!("reading the answer: {}", transport(&e)),
                    }
                }
                Err(e) => transport(&e),
            };
            if attempts > self.config.retry.max_retries
                || started.elapsed() > self.config.retry.retry_timeout
            {
                return Err(ApiError::GaveUp {
                    path: path_of(&url),
                    attempts,
                    elapsed: started.elapsed(),
                    last: failure,
                });
            }
            let delay = backoff.next_delay();
            debug!(
                "creating a session: retry {attempts} of {}, backing off for {delay:?}: {failure}",
                self.config.retry.max_retries
            );
            self.counters.retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(delay).await;
        }
    }

    /// `DELETE /v1/auth/session`; a 404 (already gone) counts as done. Returns the wait a 429
    /// asked for, if any.
    async fn delete_session(&self, token: &Secret) -> Option<Duration> {
        let url = self.resolve("auth/session").ok()?;
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let sent = self
            .http
            .delete(url)
            .header("authorization", session_header(token))
            .send()
            .await;
        match sent {
            Ok(r) if r.status() == StatusCode::TOO_MANY_REQUESTS => {
                self.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
                let header = |name: &str| r.headers().get(name)?.to_str().ok()?.parse().ok();
                let (ms, secs) = (header("x-retry-after-ms"), header("retry-after"));
                let body_ms = r
                    .json::<Value>()
                    .await
                    .ok()
                    .and_then(|v| v["retry_after_ms"].as_u64());
                return Some(rate_limit_wait(
                    body_ms,
                    ms,
                    secs,
                    self.config.retry.rate_limit_floor,
                ));
            }
            Ok(r) if r.status().is_success() || r.status() == StatusCode::NOT_FOUND => {}
            Ok(r) => debug!("invalidating a session answered {}", r.status()),
            Err(e) => debug!("invalidating a session failed: {}", transport(&e)),
        }
        if let Some(cache) = &self.cache {
            cache.remove(token);
        }
        None
    }

    /// Invalidates session `i`'s token at that session's pace, waiting out a 429 or two.
    async fn delete_paced(&self, i: usize, token: &Secret) {
        for _ in 0..3 {
            self.pacer.acquire_on(i).await;
            self.pacer.start_when_allowed(i).await;
            match self.delete_session(token).await {
                Some(wait) => self.pacer.hold(i, Instant::now() + wait),
                None => return,
            }
        }
    }

    /// Invalidates the sessions that killed runs left behind (their owner process is gone), so
    /// they do not hold the organisation's five slots until they expire.
    async fn invalidate_orphans(&self) {
        let Some(cache) = &self.cache else { return };
        let orphans = cache.take_orphans();
        if orphans.is_empty() {
            return;
        }
        for token in &orphans {
            // The killed run may have used the session a moment ago: honour a 429 and retry.
            for _ in 0..3 {
                match self.delete_session(token).await {
                    Some(wait) => tokio::time::sleep(wait).await,
                    None => break,
                }
            }
        }
        tracing::info!(
            "invalidated {} API session(s) left by an earlier hspq run that did not finish",
            orphans.len()
        );
    }

    /// A token for session `i`, renewing it when it is about to expire or was refused.
    async fn token(&self, i: usize) -> Result<Secret, ApiError> {
        let mut s = self.sessions[i].lock().await;
        let now = Instant::now();
        if let Some(token) = &s.token {
            if s.expires.saturating_duration_since(now) > self.config.renew_before {
                return Ok(token.clone());
            }
        }
        if let Some(old) = s.token.take() {
            if s.expires > now {
                // Free the slot first: with five sessions in use a new one would get a 409.
                self.delete_paced(i, &old).await;
            }
        }
        debug!("renewing session {i}");
        match self.create_session().await {
            Ok((token, expires)) => {
                *s = SessionState {
                    token: Some(token.clone()),
                    expires,
                };
                Ok(token)
            }
            Err(e) => {
                self.pacer.retire(i);
                if self.pacer.alive() > 0 && matches!(e, ApiError::SessionLimit { .. }) {
                    warn!(
                        "session {i} could not be renewed (409): continuing with {} sessions",
                        self.pacer.alive()
                    );
                }
                Err(e)
            }
        }
    }

    async fn execute(&self, method: Method, url: &Url) -> Result<bytes::Bytes, ApiError> {
        let retry = &self.config.retry;
        let started = Instant::now();
        let mut backoff = Backoff::new(&retry.backoff);
        let (mut failures, mut limited, mut unauthorized) = (0usize, 0usize, 0usize);
        let path = path_of(url);
        loop {
            let Some(i) = self.pacer.acquire().await else {
                return Err(ApiError::SessionLimit { active: 5, max: 5 });
            };
            let token = match self.token(i).await {
                Ok(t) => t,
                Err(ApiError::SessionLimit { .. }) if self.pacer.alive() > 0 => continue,
                Err(e) => return Err(e),
            };
            self.pacer.start_when_allowed(i).await;
            self.counters.requests.fetch_add(1, Ordering::Relaxed);
            let outcome = self.send(method.clone(), url, &token).await;
            let reason = match outcome {
                Outcome::Done(bytes) => return Ok(bytes),
                Outcome::Failed(e) => return Err(e),
                Outcome::RateLimited(wait) => {
                    limited += 1;
                    self.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
                    self.pacer.hold(i, Instant::now() + wait);
                    if limited > retry.max_rate_limited {
                        return Err(ApiError::GaveUp {
                            path,
                            attempts: failures + limited + unauthorized + 1,
                            elapsed: started.elapsed(),
                            last: "429 Too Many Requests".into(),
                        });
                    }
                    debug!(
                        "{path}: 429 on session {i}, retry {limited} of {} after {wait:?}",
                        retry.max_rate_limited
                    );
                    self.counters.retries.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                Outcome::Unauthorized => {
                    unauthorized += 1;
                    if unauthorized > 2 {
                        return Err(ApiError::SessionRejected { path });
                    }
                    debug!(
                        "{path}: 401 on session {i}: the session expired or was revoked, renewing"
                    );
                    let mut s = self.sessions[i].lock().await;
                    if s.token.as_ref().is_some_and(|t| t == &token) {
                        s.token = None;
                        if let Some(cache) = &self.cache {
                            cache.remove(&token);
                        }
                    }
                    self.counters.retries.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                Outcome::Transient(reason) => reason,
            };
            failures += 1;
            if failures > retry.max_retries || started.elapsed() > retry.retry_timeout {
                return Err(ApiError::GaveUp {
                    path,
                    attempts: failures + limited + unauthorized,
                    elapsed: started.elapsed(),
                    last: reason,
                });
            }
            let delay = backoff.next_delay();
            debug!(
                "{path}: retry {failures} of {}, backing off for {delay:?}: {reason}",
                retry.max_retries
            );
            self.counters.retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(delay).await;
        }
    }

    async fn send(&self, method: Method, url: &Url, token: &Secret) -> Outcome {
        let resp = match self
            .http
            .request(method, url.clone())
            .header("authorization", session_header(token))
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => return Outcome::Transient(transport(&e)),
        };
        let status = resp.status();
        let header_u64 = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        let (header_ms, header_secs) = (header_u64("x-retry-after-ms"), header_u64("retry-after"));
        let bytes = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => return Outcome::Transient(format!("reading the answer: {}", transport(&e))),
        };
        match status.as_u16() {
            200..=299 => Outcome::Done(bytes),
            429 => {
                let body_ms = serde_json::from_slice::<Value>(&bytes)
                    .ok()
                    .and_then(|v| v["retry_after_ms"].as_u64());
                Outcome::RateLimited(rate_limit_wait(
                    body_ms,
                    header_ms,
                    header_secs,
                    self.config.retry.rate_limit_floor,
                ))
            }
            401 => Outcome::Unauthorized,
            s if s >= 500 => Outcome::Transient(format!("status {s}")),
            s => Outcome::Failed(status_error(url, s, &bytes)),
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if self.closed.load(Ordering::SeqCst) {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let Ok(url) = self.resolve("auth/session") else {
            return;
        };
        // Best effort: the tasks run if the runtime lives on. A run that cannot finish them
        // leaves sessions that expire within the hour.
        for (i, slot) in self.sessions.iter_mut().enumerate() {
            let s = slot.get_mut();
            let Some(token) = s.token.take() else {
                continue;
            };
            if s.expires <= Instant::now() {
                continue;
            }
            let at = self.pacer.reserve_on(i).at;
            let http = self.http.clone();
            let url = url.clone();
            let cache = self.cache.clone();
            handle.spawn(async move {
                tokio::time::sleep_until(at).await;
                let sent = http
                    .delete(url)
                    .header("authorization", session_header(&token))
                    .send()
                    .await;
                if let (Ok(r), Some(cache)) = (sent, cache) {
                    if r.status().is_success() || r.status() == StatusCode::NOT_FOUND {
                        cache.remove(&token);
                    }
                }
            });
        }
    }
}

/// Pages of a list endpoint, following `next` links, or `offset` when a response has none.
pub struct Pages<T> {
    client: Client,
    path: String,
    limit: usize,
    offset: usize,
    // None: done. Some(None): fetch by offset. Some(Some(link)): follow the link.
    next: Option<Option<String>>,
    _records: std::marker::PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> Pages<T> {
    /// The next page, or `None` after the last.
    pub async fn next_page(&mut self) -> Result<Option<Page<T>>, ApiError> {
        let Some(next) = self.next.take() else {
            return Ok(None);
        };
        let target = match next {
            Some(link) => link,
            None => {
                let sep = if self.path.contains('?') { '&' } else { '?' };
                format!(
                    "{}{sep}limit={}&offset={}",
                    self.path, self.limit, self.offset
                )
            }
        };
        let page: Page<T> = self.client.get(&target).await?;
        self.offset += page.results.len();
        self.next = match &page.next {
            _ if page.results.is_empty() => None,
            Some(Some(link)) => Some(Some(link.clone())),
            Some(None) => None,
            // No `next` field at all: page on by offset while records remain.
            None if (self.offset as u64) < page.count => Some(None),
            None => None,
        };
        Ok(Some(page))
    }
}

/// `Authorization: Session <token>`, marked sensitive so no debug output shows it.
fn session_header(token: &Secret) -> reqwest::header::HeaderValue {
    let mut value = reqwest::header::HeaderValue::from_str(&format!("Session {}", token.expose()))
        .unwrap_or_else(|_| reqwest::header::HeaderValue::from_static("Session invalid"));
    value.set_sensitive(true);
    value
}

fn decode<T: DeserializeOwned>(url: &Url, bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| ApiError::Decode {
        path: path_of(url),
        field: e.path().to_string(),
        detail: e.inner().to_string(),
    })
}

/// The path and query of a URL: what errors and logs may show.
fn path_of(url: &Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    }
}

fn transport(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "connection failed"
    };
    // reqwest's own message names the URL; strip it to the path to keep hosts' user info out.
    let mut source = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {detail}")
    }
}

/// The API's `description` plus its per-field messages, in one line.
fn describe(bytes: &[u8]) -> String {
    let Ok(v) = serde_json::from_slice::<Value>(bytes) else {
        return String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
            .trim()
            .to_string();
    };
    let mut text = v["description"]
        .as_str()
        .unwrap_or("no description")
        .to_string();
    if let Some(errors) = v["errors"].as_object() {
        for (field, messages) in errors {
            let msgs: Vec<&str> = messages
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            text.push_str(&format!("; {field}: {}", msgs.join(" ")));
        }
    }
    text
}

fn status_error(url: &Url, status: u16, bytes: &[u8]) -> ApiError {
    let path = path_of(url);
    let description = describe(bytes);
    match status {
        400 => ApiError::BadRequest { path, description },
        403 => {
            let scope = serde_json::from_slice::<Value>(bytes).ok().and_then(|v| {
                v["errors"]["scope"][0]
                    .as_str()
                    .map(|m| m.rsplit(": ").next().unwrap_or(m).to_string())
            });
            match scope {
                Some(scope) => ApiError::ScopeMissing { scope, path },
                None => ApiError::Forbidden { path, description },
            }
        }
        404 => ApiError::NotFound { path, description },
        409 => ApiError::SessionLimit { active: 5, max: 5 },
        _ => ApiError::Status {
            path,
            status,
            description,
        },
    }
}

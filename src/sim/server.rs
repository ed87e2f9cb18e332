//! The simulator's HTTP surface: every endpoint of the vendor's "Scope requirements summary",
//! with the documented bodies, status codes, rate limit, session rules and injected faults.
//!
//! Each session-bound handler first passes [`State::gate`], which authenticates, checks the
//! origin lock, draws faults, applies the rate limit and checks the scope, in that order, so
//! that every accepted request (whatever its outcome) counts against the session's pace.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Query, Request, State as AxState};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Months, NaiveDate, Utc};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{json, Map, Value};
use tokio::time::Instant;

use super::world::{Company, Partnership, Period, World, PRODUCTS};
use super::{Fault, FaultQueue, RequestRecord, SimConfig, SimKey};
use crate::cpu::heavy;

type Shared = std::sync::Arc<State>;
type Params = Query<HashMap<String, String>>;

pub(crate) struct State {
    pub(crate) config: SimConfig,
    pub(crate) world: World,
    sessions: Mutex<Sessions>,
    pub(crate) scripted: FaultQueue,
    pub(crate) log: Mutex<Vec<RequestRecord>>,
    rng: Mutex<StdRng>,
}

#[derive(Default)]
struct Sessions {
    by_token: HashMap<String, SessionEntry>,
    created: u64,
}

struct SessionEntry {
    serial: u64,
    key: usize,
    origin: IpAddr,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    expires: Instant,
    last_accepted: Option<Instant>,
}

impl SessionEntry {
    fn expired(&self, now: Instant) -> bool {
        now >= self.expires
    }
}

/// The session serial a handler answered for; read by the request log.
#[derive(Clone, Copy)]
struct Serial(u64);

/// An error answer in the documented format.
pub(crate) struct ApiError {
    status: StatusCode,
    body: Value,
    headers: Vec<(&'static str, String)>,
    serial: Option<u64>,
}

impl ApiError {
    fn new(status: u16, description: &str) -> ApiError {
        ApiError {
            status: StatusCode::from_u16(status).expect("valid status"),
            body: json!({ "description": description }),
            headers: Vec::new(),
            serial: None,
        }
    }

    fn field(mut self, field: &str, message: impl Into<String>) -> ApiError {
        let errors = self.body.as_object_mut().expect("object").entry("errors");
        let errors = errors.or_insert_with(|| json!({}));
        errors[field] = json!([message.into()]);
        self
    }

    fn bad_request(field: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(400, "Invalid request parameters").field(field, message)
    }

    fn not_found(field: &str, description: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(404, description).field(field, message)
    }

    fn rate_limited(retry_after_ms: u64, rate: f64) -> ApiError {
        let mut e = ApiError::new(429, "Rate limit exceeded");
        e.body["retry_after_ms"] = json!(retry_after_ms);
        e.headers = vec![
            (
                "Retry-After",
                retry_after_ms.div_ceil(1000).max(1).to_string(),
            ),
            ("X-Retry-After-Ms", retry_after_ms.to_string()),
            (
                "X-RateLimit-Limit",
                format!("{}", rate.max(1.0).floor() as u64),
            ),
            ("X-RateLimit-Remaining", "0".into()),
        ];
        e
    }

    fn with_serial(mut self, serial: u64) -> ApiError {
        self.serial = Some(serial);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let html = matches!(self.status.as_u16(), 502 | 503);
        let mut resp = if html {
            // Gateways in front of the real API answer with HTML, not the JSON error format.
            let body = format!(
                "<html><head><title>{0}</title></head><body><h1>{0}</h1></body></html>",
                self.status
            );
            let mut r = (self.status, body).into_response();
            r.headers_mut()
                .insert("content-type", HeaderValue::from_static("text/html"));
            r
        } else {
            (self.status, axum::Json(self.body)).into_response()
        };
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                resp.headers_mut().insert(name, v);
            }
        }
        if let Some(s) = self.serial {
            resp.extensions_mut().insert(Serial(s));
        }
        resp
    }
}

/// What the gate found out about a request that may proceed.
struct Ctx {
    serial: u64,
    key: SimKey,
    partnership: Partnership,
    extra_fields: bool,
    wrong_type: bool,
    empty_lists: bool,
    drop: bool,
}

enum Need {
    Session,
    Me,
    Report(Partnership),
    Customers,
}

impl State {
    pub(crate) fn new(config: SimConfig) -> State {
        let world = World::new(config.seed, config.companies, config.periods, config.today)
            .with_pauses(config.pauses);
        let rng = StdRng::seed_from_u64(config.fault_seed);
        State {
            config,
            world,
            sessions: Mutex::new(Sessions::default()),
            scripted: Mutex::new(Default::default()),
            log: Mutex::new(Vec::new()),
            rng: Mutex::new(rng),
        }
    }

    pub(crate) fn active_sessions(&self) -> usize {
        let now = Instant::now();
        let s = self.sessions.lock().expect("sessions");
        s.by_token.values().filter(|e| !e.expired(now)).count()
    }

    pub(crate) fn sessions_created(&self) -> u64 {
        self.sessions.lock().expect("sessions").created
    }

    pub(crate) fn expire_sessions(&self) {
        let now = Instant::now();
        let mut s = self.sessions.lock().expect("sessions");
        for e in s.by_token.values_mut() {
            e.expires = now;
            e.expires_at = Utc::now();
        }
    }

    fn chance(&self, p: f64) -> bool {
        p > 0.0 && self.rng.lock().expect("rng").random::<f64>() < p
    }

    fn draw_fault(&self) -> Option<Fault> {
        let path = REQUEST_PATH.try_with(|p| p.clone()).unwrap_or_default();
        {
            let mut queue = self.scripted.lock().expect("fault queue");
            let hit = queue
                .iter()
                .position(|(only, _)| only.as_ref().is_none_or(|p| *p == path));
            if let Some(i) = hit {
                return queue.remove(i).map(|(_, f)| f);
            }
        }
        let f = &self.config.faults;
        if self.chance(f.revoke) {
            Some(Fault::Revoke)
        } else if self.chance(f.rate_limited) {
            Some(Fault::RateLimited(
                200 + self.rng.lock().expect("rng").random_range(0..800),
            ))
        } else if self.chance(f.server_error) {
            let codes = [500, 502, 503];
            let i = self.rng.lock().expect("rng").random_range(0..codes.len());
            Some(Fault::Status(codes[i]))
        } else if self.chance(f.drop) {
            Some(Fault::Drop)
        } else if self.chance(f.slow) {
            Some(Fault::Slow(f.slow_by))
        } else if self.chance(f.extra_fields) {
            Some(Fault::ExtraFields)
        } else {
            None
        }
    }

    async fn gate(
        &self,
        headers: &HeaderMap,
        peer: SocketAddr,
        need: Need,
    ) -> Result<Ctx, ApiError> {
        let token = session_token(headers).ok_or_else(|| {
            ApiError::new(
                401,
                "Authentication credentials were not provided. Use Authorization: Session <token>",
            )
        })?;
        let fault = self.draw_fault();
        let now = REQUEST_ARRIVAL
            .try_with(|t| *t)
            .unwrap_or_else(|_| Instant::now());
        let (serial, key) = {
            let mut sessions = self.sessions.lock().expect("sessions");
            let entry = match sessions.by_token.get_mut(&token) {
                None => return Err(ApiError::new(401, "Invalid session token.")),
                Some(e) if e.expired(now) => {
                    return Err(ApiError::new(
                        401,
                        "Session has expired. Create a new session with POST /v1/auth/session.",
                    ))
                }
                Some(e) => e,
            };
            let serial = entry.serial;
            if entry.origin != origin(headers, peer) {
                return Err(ApiError::new(403, "Permission denied")
                    .field("origin", "Session is locked to a different origin.")
                    .with_serial(serial));
            }
            if fault == Some(Fault::Revoke) {
                sessions.by_token.remove(&token);
                return Err(ApiError::new(401, "Invalid session token.").with_serial(serial));
            }
            if self.config.rate > 0.0 {
                let interval = Duration::from_secs_f64(1.0 / self.config.rate);
                if let Some(last) = entry.last_accepted {
                    let since = now.saturating_duration_since(last);
                    if since < interval {
                        let wait = interval - since;
                        let ms = wait.as_micros().div_ceil(1000) as u64;
                        return Err(
                            ApiError::rate_limited(ms, self.config.rate).with_serial(serial)
                        );
                    }
                }
                entry.last_accepted = Some(now);
            }
            (serial, entry.key)
        };
        let key = self.config.keys.api_keys[key].clone();
        let mut ctx = Ctx {
            serial,
            partnership: partnership_of(&key),
            key,
            extra_fields: false,
            wrong_type: false,
            empty_lists: false,
            drop: false,
        };
        match fault {
            Some(Fault::Status(code)) => {
                return Err(ApiError::new(code, "Internal server error").with_serial(serial))
            }
            Some(Fault::RateLimited(ms)) => {
                return Err(ApiError::rate_limited(ms, self.config.rate).with_serial(serial))
            }
            Some(Fault::Slow(d)) => tokio::time::sleep(d).await,
            Some(Fault::ExtraFields) => ctx.extra_fields = true,
            Some(Fault::WrongType) => ctx.wrong_type = true,
            Some(Fault::EmptyLists) => ctx.empty_lists = true,
            Some(Fault::Drop) => ctx.drop = true,
            Some(Fault::Revoke) | None => {}
        }
        let missing = match need {
            Need::Session => None,
            Need::Me => Some("me:read"),
            Need::Report(p) => Some(p.scope()),
            Need::Customers => Some("customers:read"),
        }
        .filter(|scope| !scopes(&ctx.key).iter().any(|s| s == scope));
        if let Some(scope) = missing {
            return Err(ApiError::new(403, "Permission denied")
                .field("scope", format!("Missing required scope: {scope}"))
                .with_serial(serial));
        }
        Ok(ctx)
    }

    fn respond(&self, ctx: &Ctx, status: StatusCode, mut body: Value) -> Response {
        if ctx.extra_fields {
            add_unknown_fields(&mut body, 0);
        }
        if ctx.empty_lists {
            empty_lists(&mut body);
        }
        if ctx.wrong_type {
            if let Some(first) = body.get_mut("results").and_then(|r| r.get_mut(0)) {
                stringify_first_number(first);
            }
        }
        let mut resp = heavy(|| {
            if ctx.drop {
                let stream = futures_util::stream::once(async {
                    Err::<axum::body::Bytes, std::io::Error>(std::io::Error::other(
                        "connection dropped",
                    ))
                });
                let mut r = Response::new(Body::from_stream(stream));
                *r.status_mut() = status;
                r
            } else {
                (status, axum::Json(body)).into_response()
            }
        });
        resp.extensions_mut().insert(Serial(ctx.serial));
        resp
    }
}

fn partnership_of(key: &SimKey) -> Partnership {
    if key.report == "reseller" {
        Partnership::Reseller
    } else {
        Partnership::Mssp
    }
}

fn scopes(key: &SimKey) -> Vec<String> {
    let mut s = vec![
        "me:read".to_string(),
        partnership_of(key).scope().to_string(),
    ];
    if key.customers {
        s.push("customers:read".into());
    }
    s
}

fn session_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let token = value.strip_prefix("Session ")?.trim();
    (!token.is_empty()).then(|| token.to_string())
}

fn origin(headers: &HeaderMap, peer: SocketAddr) -> IpAddr {
    headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| peer.ip())
}

fn empty_lists(v: &mut Value) {
    match v {
        Value::Array(items) => items.clear(),
        Value::Object(map) => map.values_mut().for_each(empty_lists),
        _ => {}
    }
}

/// Turns the first number found (depth first) into a string; true when one was found.
fn stringify_first_number(v: &mut Value) -> bool {
    match v {
        Value::Number(n) => {
            *v = Value::String(format!("{n} units"));
            true
        }
        Value::Object(map) => map.values_mut().any(stringify_first_number),
        Value::Array(items) => items.iter_mut().any(stringify_first_number),
        _ => false,
    }
}

/// Adds fields the contract does not know to an object and every record below it.
fn add_unknown_fields(v: &mut Value, depth: usize) {
    match v {
        Value::Object(map) => {
            if depth <= 1 || !map.contains_key("errors") {
                map.insert("sim_note".into(), json!("an unknown field ✓, \"quoted\""));
                map.insert("sim_score".into(), json!(0.5));
            }
            for (_, child) in map.iter_mut() {
                if child.is_array() {
                    add_unknown_fields(child, depth + 1);
                }
            }
        }
        Value::Array(items) => {
            for item in items.iter_mut().filter(|i| i.is_object()) {
                add_unknown_fields(item, depth + 1);
            }
        }
        _ => {}
    }
}

pub(crate) fn router(state: Shared) -> Router {
    Router::new()
        .route(
            "/v1/auth/session",
            post(create_session).delete(delete_session),
        )
        .route("/v1/auth/session/validate", post(validate_session))
        .route("/v1/me", get(me))
        .nest("/v1/mssp-report", report_routes(Partnership::Mssp))
        .nest("/v1/reseller-report", report_routes(Partnership::Reseller))
        .route("/v1/customers", get(customers))
        .route("/v1/customers/{scid}", get(customer))
        .route("/v1/customers/{scid}/engagement", get(engagement))
        .route("/v1/customers/{scid}/churn-risk", get(churn_risk))
        .fallback(|| async { ApiError::new(404, "Not found.") })
        .layer(middleware::from_fn_with_state(state.clone(), record))
        .with_state(state)
}

fn report_routes(p: Partnership) -> Router<Shared> {
    let mut r = Router::new()
        .route("/", get(move |s, c, h| periods(s, c, h, p)))
        .route(
            "/{year}/{period}",
            get(move |s, c, h, path| period_detail(s, c, h, path, p)),
        )
        .route(
            "/{year}/{period}/companies",
            get(move |s, c, h, path, q| companies(s, c, h, path, q, p)),
        )
        .route(
            "/{year}/{period}/companies/{id}/usage",
            get(move |s, c, h, path, q| company_usage(s, c, h, path, q, p)),
        )
        .route(
            "/{year}/{period}/usage",
            get(move |s, c, h, path, q| usage(s, c, h, path, q, p)),
        );
    if p == Partnership::Mssp {
        r = r.route(
            "/{year}/{period}/usage/billing",
            get(move |s, c, h, path, q| billing(s, c, h, path, q, p)),
        );
    }
    r
}

tokio::task_local! {
    /// The path being answered, for path-targeted scripted faults.
    static REQUEST_PATH: String;
    /// When the request arrived: the rate limit counts arrivals, not the moment a busy
    /// handler gets to look at them.
    static REQUEST_ARRIVAL: Instant;
}

async fn record(AxState(state): AxState<Shared>, req: Request, next: Next) -> Response {
    let at = Instant::now();
    let method = req.method().to_string();
    let uri = req.uri().to_string();
    let path = req.uri().path().to_string();
    let resp = REQUEST_ARRIVAL
        .scope(at, REQUEST_PATH.scope(path, next.run(req)))
        .await;
    let session = resp.extensions().get::<Serial>().map(|s| s.0);
    state.log.lock().expect("request log").push(RequestRecord {
        at,
        session,
        method,
        uri,
        status: resp.status().as_u16(),
    });
    resp
}

// ---- sessions -----------------------------------------------------------------------------

async fn create_session(
    AxState(state): AxState<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let body: Value = serde_json::from_slice(&body).map_err(|_| {
        ApiError::new(400, "Invalid request body").field("body", "Send a JSON object.")
    })?;
    let field = |name: &str| -> Result<String, ApiError> {
        body.get(name)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| {
                ApiError::new(400, "Invalid request body").field(name, "This field is required.")
            })
    };
    let org = field("organization_key")?;
    let api_key = field("api_key")?;
    let keys = &state.config.keys;
    let key_index = keys
        .api_keys
        .iter()
        .position(|k| k.api_key == api_key)
        .filter(|_| org == keys.organization_key)
        .ok_or_else(|| ApiError::new(401, "Invalid organization key or API key."))?;
    let key = &keys.api_keys[key_index];
    let origin = origin(&headers, peer);
    if !key.allowed_origins.is_empty()
        && !key.allowed_origins.iter().any(|o| o == &origin.to_string())
    {
        return Err(ApiError::new(403, "Permission denied").field(
            "origin",
            format!("Request origin {origin} is not in the allowed origins of this API key."),
        ));
    }
    let now = Instant::now();
    let mut sessions = state.sessions.lock().expect("sessions");
    sessions.by_token.retain(|_, e| !e.expired(now));
    let max = state.config.max_sessions;
    if sessions.by_token.len() >= max {
        let mut e = ApiError::new(
            409,
            &format!(
                "Maximum of {max} active sessions per organization. Please invalidate an existing session (DELETE /v1/auth/session) or wait for one to expire."
            ),
        );
        e.body["active_sessions"] = json!(sessions.by_token.len());
        e.body["max_sessions"] = json!(max);
        return Err(e);
    }
    let token: String = {
        let mut rng = state.rng.lock().expect("rng");
        (0..40)
            .map(|_| format!("{:x}", rng.random_range(0..16u8)))
            .collect()
    };
    let token = format!("pps_{token}");
    sessions.created += 1;
    let serial = sessions.created;
    let ttl = state.config.session_ttl;
    let created_at = Utc::now();
    let expires_at = created_at + chrono::Duration::from_std(ttl).unwrap_or_default();
    sessions.by_token.insert(
        token.clone(),
        SessionEntry {
            serial,
            key: key_index,
            origin,
            created_at,
            expires_at,
            expires: now + ttl,
            last_accepted: None,
        },
    );
    let body = json!({
        "session_token": token,
        "expires_at": rfc3339(expires_at),
        "valid_for_seconds": ttl.as_secs(),
        "scopes": scopes(key),
        "locked_to_origin": origin.to_string(),
        "message": format!("Use this session token in the Authorization header: Session <token>. This session is locked to origin {origin}."),
    });
    let mut resp = (StatusCode::CREATED, axum::Json(body)).into_response();
    resp.extensions_mut().insert(Serial(serial));
    Ok(resp)
}

async fn validate_session(
    AxState(state): AxState<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let token = session_token(&headers).or_else(|| {
        serde_json::from_slice::<Value>(&body)
            .ok()?
            .get("session_token")?
            .as_str()
            .map(str::to_string)
    });
    let Some(token) = token else {
        return Err(ApiError::new(400, "No session token provided.").field(
            "session_token",
            "Send Authorization: Session <token> or a session_token field.",
        ));
    };
    let now = Instant::now();
    let status = {
        let s = state.sessions.lock().expect("sessions");
        match s.by_token.get(&token) {
            None => Err(json!({ "valid": false, "reason": "Session token not found." })),
            Some(e) if e.expired(now) => Err(json!({
                "valid": false, "reason": "Session has expired.", "expired_at": rfc3339(e.expires_at)
            })),
            Some(_) => Ok(()),
        }
    };
    if let Err(body) = status {
        return Ok((StatusCode::OK, axum::Json(body)).into_response());
    }
    let mut auth = HeaderMap::new();
    auth.insert(
        "authorization",
        HeaderValue::from_str(&format!("Session {token}"))
            .map_err(|_| ApiError::new(400, "Bad token"))?,
    );
    if let Some(xff) = headers.get("x-forwarded-for") {
        auth.insert("x-forwarded-for", xff.clone());
    }
    let ctx = state.gate(&auth, peer, Need::Session).await?;
    let body = {
        let s = state.sessions.lock().expect("sessions");
        let e = s
            .by_token
            .get(&token)
            .ok_or_else(|| ApiError::new(401, "Invalid session token."))?;
        json!({
            "valid": true,
            "expires_at": rfc3339(e.expires_at),
            "remaining_seconds": e.expires.saturating_duration_since(Instant::now()).as_secs(),
            "scopes": scopes(&ctx.key),
            "locked_to_origin": e.origin.to_string(),
            "created_at": rfc3339(e.created_at),
        })
    };
    Ok(state.respond(&ctx, StatusCode::OK, body))
}

async fn delete_session(
    AxState(state): AxState<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Some(token) = session_token(&headers) else {
        return Err(ApiError::new(
            401,
            "Authentication credentials were not provided. Use Authorization: Session <token>",
        ));
    };
    {
        let s = state.sessions.lock().expect("sessions");
        match s.by_token.get(&token) {
            Some(e) if !e.expired(Instant::now()) => {}
            _ => return Err(ApiError::new(404, "Session not found or already expired.")),
        }
    }
    let ctx = state.gate(&headers, peer, Need::Session).await?;
    state
        .sessions
        .lock()
        .expect("sessions")
        .by_token
        .remove(&token);
    Ok(state.respond(
        &ctx,
        StatusCode::OK,
        json!({ "success": true, "message": "Session invalidated successfully." }),
    ))
}

async fn me(
    AxState(state): AxState<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let ctx = state.gate(&headers, peer, Need::Me).await?;
    let k = &ctx.key;
    let body = json!({
        "partner_name": state.config.keys.partner_name,
        "organization_key": state.config.keys.organization_key,
        "api_key_name": k.name,
        "api_key_prefix": k.api_key.chars().take(12).collect::<String>(),
        "scopes": scopes(k),
        "allowed_origins": k.allowed_origins,
        "timezone": "Europe/Stockholm",
    });
    Ok(state.respond(&ctx, StatusCode::OK, body))
}

// ---- reports -------------------------------------------------------------------------------

fn report_base(p: Partnership) -> String {
    format!("/v1/{}-report", p.report_type())
}

fn resolve_period(w: &World, p: Partnership, year: &str, period: &str) -> Result<Period, ApiError> {
    let y: i32 = (year.len() == 4)
        .then(|| year.parse().ok())
        .flatten()
        .ok_or_else(|| ApiError::bad_request("year", "Use a four-digit year, e.g. 2026."))?;
    let m: u32 = (period.len() == 2)
        .then(|| period.parse().ok())
        .flatten()
        .filter(|m| (1..=12).contains(m))
        .ok_or_else(|| ApiError::bad_request("period", "Use a two-digit period, 01 to 12."))?;
    w.period(p, y, m).ok_or_else(|| {
        ApiError::not_found(
            "period",
            "Reporting period not found.",
            format!(
                "No report for {year}/{period}. List periods with GET {}.",
                report_base(p)
            ),
        )
    })
}

fn reporting_period(p: &Period) -> Value {
    json!({
        "year": p.year, "period": p.label(),
        "from": p.from, "to": p.to, "is_partial": p.is_partial,
    })
}

fn header(p: Partnership, period: &Period) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("reporting_period".into(), reporting_period(period));
    if p == Partnership::Reseller {
        m.insert("report_type".into(), json!("reseller"));
    }
    m
}

async fn periods(
    AxState(state): AxState<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    p: Partnership,
) -> Result<Response, ApiError> {
    let ctx = state.gate(&headers, peer, Need::Report(p)).await?;
    let results: Vec<Value> = state
        .world
        .periods(p)
        .iter()
        .map(|x| {
            json!({
                "year": x.year, "period": x.label(), "from": x.from, "to": x.to,
                "is_current": x.is_current, "is_partial": x.is_partial,
                "url": format!("{}/{}/{}", report_base(p), x.year, x.label()),
            })
        })
        .collect();
    let mut body = json!({ "timezone": "Europe/Stockholm" });
    if p == Partnership::Reseller {
        body["report_type"] = json!("reseller");
    }
    body["results"] = json!(results);
    Ok(state.respond(&ctx, StatusCode::OK, body))
}

async fn period_detail(
    AxState(state): AxState<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((year, period)): Path<(String, String)>,
    p: Partnership,
) -> Result<Response, ApiError> {
    let ctx = state.gate(&headers, peer, Need::Report(p)).await?;
    let w = &state.world;
    let x = resolve_period(w, p, &year, &period)?;
    let base = format!("{}/{}/{}", report_base(p), x.year, x.label());
    let mut links = json!({ "companies": format!("{base}/companies") });
    if p == Partnership::Mssp {
        links["billing"] = json!(format!("{base}/usage/billing"));
    }
    links["usage"] = json!(format!("{base}/usage"));
    let mut body = json!({ "timezone": "Europe/Stockholm" });
    if p == Partnership::Reseller {
        body["report_type"] = json!("reseller");
    }
    let extra = json!({
        "year": x.year, "period": x.label(), "from": x.from, "to": x.to,
        "is_current": x.is_current, "is_partial": x.is_partial,
        "eligible_company_count": w.eligible(p, &x).len(),
        "products": w.period_products(p, &x),
        "links": links,
    });
    merge(&mut body, extra);
    Ok(state.respond(&ctx, StatusCode::OK, body))
}

/// `limit` and `offset`, validated as documented.
fn page_params(q: &HashMap<String, String>) -> Result<(usize, usize), ApiError> {
    let limit = match q.get("limit") {
        None => 100,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=1000).contains(l))
            .ok_or_else(|| {
                ApiError::bad_request("limit", "Ensure this value is an integer from 1 to 1000.")
            })?,
    };
    let offset = match q.get("offset") {
        None => 0,
        Some(v) => v.parse::<usize>().map_err(|_| {
            ApiError::bad_request("offset", "Ensure this value is an integer of 0 or more.")
        })?,
    };
    Ok((limit, offset))
}

/// Appends `count`, `next`, `previous` (relative links that keep the other parameters).
fn envelope(
    body: &mut Map<String, Value>,
    path: &str,
    q: &HashMap<String, String>,
    (limit, offset): (usize, usize),
    count: usize,
    links: bool,
) {
    body.insert("count".into(), json!(count));
    if !links {
        return;
    }
    let link = |off: usize| {
        let mut keys: Vec<_> = q
            .keys()
            .filter(|k| *k != "limit" && *k != "offset")
            .collect();
        keys.sort();
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for k in keys {
            s.append_pair(k, &q[k]);
        }
        s.append_pair("limit", &limit.to_string());
        s.append_pair("offset", &off.to_string());
        json!(format!("{path}?{}", s.finish()))
    };
    let next = if offset + limit < count {
        link(offset + limit)
    } else {
        Value::Null
    };
    let previous = if offset > 0 {
        link(offset.saturating_sub(limit))
    } else {
        Value::Null
    };
    body.insert("next".into(), next);
    body.insert("previous".into(), previous);
}

fn product_param(q: &HashMap<String, String>) -> Result<Option<&'static str>, ApiError> {
    match q.get("product") {
        None => Ok(None),
        Some(v) => PRODUCTS
            .iter()
            .find(|p| **p == v.as_str())
            .map(|p| Some(*p))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "product",
                    format!("Unknown product {v:?}; use one of CS, DA, PAT, SNS, WAS."),
                )
            }),
    }
}

fn matches_search(c: &Company, q: &HashMap<String, String>) -> bool {
    q.get("search").is_none_or(|s| {
        let s = s.to_lowercase();
        c.name.to_lowercase().contains(&s) || c.id.to_lowercase().contains(&s)
    })
}

async fn companies(
    AxState(state): AxState<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((year, period)): Path<(String, String)>,
    Query(q): Params,
    p: Partnership,
) -> Result<Response, ApiError> {
    let ctx = state.gate(&headers, peer, Need::Report(p)).await?;
    let w = &state.world;
    let x = resolve_period(w, p, &year, &period)?;
    let paging = page_params(&q)?;
    let list: Vec<&Company> = w
        .eligible(p, &x)
        .into_iter()
        .filter(|c| matches_search(c, &q))
        .collect();
    let results: Vec<Value> = list
        .iter()
        .skip(paging.1)
        .take(paging.0)
        .map(|c| match p {
            Partnership::Mssp => json!({
                "security_center_id": c.id, "company_name": c.name,
                "status": if c.active_on(w.today) { "active" } else { "archived" },
                "products": c.products,
            }),
            Partnership::Reseller => json!({
                "security_center_id": c.id, "company_name": c.name,
                "order_status": "active", "products": c.products,
            }),
        })
        .collect();
    let mut body = header(p, &x);
    let path = format!("{}/{}/{}/companies", report_base(p), x.year, x.label());
    envelope(
        &mut body,
        &path,
        &q,
        paging,
        list.len(),
        p == Partnership::Mssp,
    );
    body.insert("results".into(), json!(results));
    Ok(state.respond(&ctx, StatusCode::OK, Value::Object(body)))
}

async fn company_usage(
    AxState(state): AxState<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((year, period, id)): Path<(String, String, String)>,
    Query(q): Params,
    p: Partnership,
) -> Result<Response, ApiError> {
    let ctx = state.gate(&headers, peer, Need::Report(p)).await?;
    let w = &state.world;
    let x = resolve_period(w, p, &year, &period)?;
    let view = q.get("view").map(String::as_str).unwrap_or("billing");
    if !["billing", "daily", "all"].contains(&view) {
        return Err(ApiError::bad_request("view", "Use billing, daily or all."));
    }
    let product = product_param(&q)?;
    let paging = page_params(&q)?;
    let c = w
        .eligible(p, &x)
        .into_iter()
        .find(|c| c.id == id)
        .ok_or_else(|| {
            ApiError::not_found(
                "security_center_id",
                "Company not found in this period.",
                format!("{id} is not in the {}/{} report.", x.year, x.label()),
            )
        })?;
    let mut body = header(p, &x);
    body.insert(
        "company".into(),
        json!({ "security_center_id": c.id, "company_name": c.name }),
    );
    body.insert("view".into(), json!(view));
    let path = format!(
        "{}/{}/{}/companies/{}/usage",
        report_base(p),
        x.year,
        x.label(),
        c.id
    );
    let daily_page = || {
        let rows = w.daily(c, &x, product);
        let mut page = Map::new();
        envelope(&mut page, &path, &q, paging, rows.len(), true);
        let results: Vec<_> = rows.into_iter().skip(paging.1).take(paging.0).collect();
        page.insert("results".into(), json!(results));
        page
    };
    match view {
        "billing" => {
            body.insert("usage".into(), json!(w.billing(c, &x, product)));
        }
        "daily" => body.extend(daily_page()),
        _ => {
            body.insert("billing".into(), json!(w.billing(c, &x, product)));
            body.insert("daily".into(), Value::Object(daily_page()));
        }
    }
    Ok(state.respond(&ctx, StatusCode::OK, Value::Object(body)))
}

async fn billing(
    AxState(state): AxState<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((year, period)): Path<(String, String)>,
    Query(q): Params,
    p: Partnership,
) -> Result<Response, ApiError> {
    let ctx = state.gate(&headers, peer, Need::Report(p)).await?;
    let w = &state.world;
    heavy(|| {
        let x = resolve_period(w, p, &year, &period)?;
        let group_by = q.get("group_by").map(String::as_str).unwrap_or("product");
        let (totals, per_company) = match group_by {
            "product" => (true, false),
            "company" => (false, true),
            "company,product" | "product,company" => (true, true),
            _ => {
                return Err(ApiError::bad_request(
                    "group_by",
                    "Use product, company or company,product.",
                ))
            }
        };
        let product = product_param(&q)?;
        let paging = page_params(&q)?;
        let eligible = w.eligible(p, &x);
        let mut body = header(p, &x);
        body.insert("group_by".into(), json!(group_by));
        body.insert("eligible_company_count".into(), json!(eligible.len()));
        if totals {
            let products: Vec<&str> = match product {
                Some(one) => vec![one],
                None => w.period_products(p, &x),
            };
            let totals: Vec<Value> = products
                .into_iter()
                .map(|prod| {
                    let values: Vec<Option<u64>> = eligible
                        .iter()
                        .map(|c| w.billing(c, &x, Some(prod))[0].billing_value)
                        .collect();
                    let billed: Vec<u64> = values.iter().flatten().copied().collect();
                    json!({
                        "product": prod,
                        "billing_total": billed.iter().sum::<u64>(),
                        "company_count": billed.len(),
                        "null_company_count": values.len() - billed.len(),
                    })
                })
                .collect();
            body.insert("totals".into(), json!(totals));
        }
        if per_company {
            let path = format!("{}/{}/{}/usage/billing", report_base(p), x.year, x.label());
            envelope(&mut body, &path, &q, paging, eligible.len(), true);
            let results: Vec<Value> = eligible
                .iter()
                .skip(paging.1)
                .take(paging.0)
                .map(|c| {
                    json!({
                        "security_center_id": c.id, "company_name": c.name,
                        "billing": w.billing(c, &x, product),
                    })
                })
                .collect();
            body.insert("results".into(), json!(results));
        }
        Ok(state.respond(&ctx, StatusCode::OK, Value::Object(body)))
    })
}

async fn usage(
    AxState(state): AxState<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((year, period)): Path<(String, String)>,
    Query(q): Params,
    p: Partnership,
) -> Result<Response, ApiError> {
    let ctx = state.gate(&headers, peer, Need::Report(p)).await?;
    let w = &state.world;
    let x = resolve_period(w, p, &year, &period)?;
    let product = product_param(&q)?;
    let paging = page_params(&q)?;
    let eligible = w.eligible(p, &x);
    let mut body = header(p, &x);
    body.insert("eligible_company_count".into(), json!(eligible.len()));
    let path = format!("{}/{}/{}/usage", report_base(p), x.year, x.label());
    envelope(&mut body, &path, &q, paging, eligible.len(), true);
    let results: Vec<Value> = heavy(|| {
        eligible
            .iter()
            .skip(paging.1)
            .take(paging.0)
            .map(|c| {
                json!({
                    "security_center_id": c.id, "company_name": c.name,
                    "billing": w.billing(c, &x, product),
                    "daily": w.daily(c, &x, product),
                })
            })
            .collect()
    });
    body.insert("results".into(), json!(results));
    Ok(state.respond(&ctx, StatusCode::OK, Value::Object(body)))
}

// ---- customers -----------------------------------------------------------------------------

async fn customers(
    AxState(state): AxState<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Params,
) -> Result<Response, ApiError> {
    let ctx = state.gate(&headers, peer, Need::Customers).await?;
    let paging = page_params(&q)?;
    let list: Vec<&Company> = state
        .world
        .customers(ctx.partnership)
        .into_iter()
        .filter(|c| matches_search(c, &q))
        .collect();
    let mut body = Map::new();
    envelope(&mut body, "/v1/customers", &q, paging, list.len(), true);
    let results: Vec<Value> = list
        .iter()
        .skip(paging.1)
        .take(paging.0)
        .map(|c| {
            json!({
                "security_center_id": c.id, "company_name": c.name, "products": c.products,
                "url": format!("/v1/customers/{}", c.id),
            })
        })
        .collect();
    body.insert("results".into(), json!(results));
    Ok(state.respond(&ctx, StatusCode::OK, Value::Object(body)))
}

/// The active customer `scid` of the session's partnership, or the documented 403/404.
fn customer_of<'a>(state: &'a State, ctx: &Ctx, scid: &str) -> Result<&'a Company, ApiError> {
    match state.world.company(scid) {
        Some((p, _)) if p != ctx.partnership => Err(ApiError::new(403, "Permission denied").field(
            "security_center_id",
            "Company not accessible with this session",
        )),
        Some((_, c)) if c.active_on(state.world.today) => Ok(c),
        _ => Err(ApiError::not_found(
            "security_center_id",
            "Company not found or not active.",
            "Company is not currently active",
        )),
    }
}

async fn customer(
    AxState(state): AxState<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(scid): Path<String>,
) -> Result<Response, ApiError> {
    let ctx = state.gate(&headers, peer, Need::Customers).await?;
    let c = customer_of(&state, &ctx, &scid)?;
    let body = json!({
        "security_center_id": c.id, "company_name": c.name, "products": c.products,
        "links": {
            "engagement": format!("/v1/customers/{}/engagement", c.id),
            "churn_risk": format!("/v1/customers/{}/churn-risk", c.id),
        },
    });
    Ok(state.respond(&ctx, StatusCode::OK, body))
}

/// `from`/`to` as documented: `to` defaults to today, `from` to 30 days before `to`, at most
/// 12 months apart.
fn date_range(w: &World, q: &HashMap<String, String>) -> Result<(NaiveDate, NaiveDate), ApiError> {
    let parse = |name: &str| -> Result<Option<NaiveDate>, ApiError> {
        q.get(name)
            .map(|v| {
                NaiveDate::parse_from_str(v, "%Y-%m-%d")
                    .map_err(|_| ApiError::bad_request(name, "Use a date in YYYY-MM-DD format."))
            })
            .transpose()
    };
    let to = parse("to")?.unwrap_or(w.today);
    let from = parse("from")?.unwrap_or(to - chrono::Days::new(30));
    if from > to {
        return Err(ApiError::bad_request("from", "from must not be after to."));
    }
    if to
        .checked_sub_months(Months::new(12))
        .is_some_and(|limit| from < limit)
    {
        return Err(ApiError::bad_request(
            "from",
            "The date range must not exceed 12 months.",
        ));
    }
    Ok((from, to))
}

/// The `type` filter: the requested kinds, in the documented order.
fn kinds(q: &HashMap<String, String>, all: &[&'static str]) -> Result<Vec<&'static str>, ApiError> {
    let Some(list) = q.get("type") else {
        return Ok(all.to_vec());
    };
    let wanted: Vec<&str> = list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if let Some(bad) = wanted.iter().find(|w| !all.contains(w)) {
        return Err(ApiError::bad_request(
            "type",
            format!("Unknown type {bad:?}; use {}.", all.join(", ")),
        ));
    }
    Ok(all.iter().copied().filter(|k| wanted.contains(k)).collect())
}

/// Days the customer has data for inside `[from, to]`.
fn data_days(w: &World, c: &Company, from: NaiveDate, to: NaiveDate) -> Vec<NaiveDate> {
    let first = from.max(w.history_start());
    let last = to.min(w.last_customer_day());
    first
        .iter_days()
        .take_while(|d| *d <= last)
        .filter(|d| c.active_on(*d))
        .collect()
}

async fn engagement(
    AxState(state): AxState<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(scid): Path<String>,
    Query(q): Params,
) -> Result<Response, ApiError> {
    let ctx = state.gate(&headers, peer, Need::Customers).await?;
    let w = &state.world;
    let c = customer_of(&state, &ctx, &scid)?;
    let (from, to) = date_range(w, &q)?;
    let kinds = kinds(&q, &["scan_activity", "scanner_health", "api_usage"])?;
    let days: Vec<_> = heavy(|| {
        data_days(w, c, from, to)
            .into_iter()
            .map(|d| (d, w.engagement(c, d)))
            .collect()
    });
    let mut metrics = Map::new();
    for kind in kinds {
        let rows: Vec<Value> = match kind {
            "scan_activity" => days
                .iter()
                .filter(|(_, e)| e.has_scan_activity())
                .map(|(d, e)| {
                    json!({
                        "date": d,
                        "sns_scans_succeeded": e.sns_scans_succeeded, "sns_scans_failed": e.sns_scans_failed,
                        "was_scans_succeeded": e.was_scans_succeeded, "was_scans_failed": e.was_scans_failed,
                        "cs_scans_succeeded": e.cs_scans_succeeded, "cs_scans_failed": e.cs_scans_failed,
                    })
                })
                .collect(),
            "scanner_health" => days
                .iter()
                .filter(|(_, e)| e.has_scanner_health())
                .map(|(d, e)| json!({ "date": d, "probes_active": e.probes_active, "probes_inactive": e.probes_inactive }))
                .collect(),
            _ => days
                .iter()
                .filter(|(_, e)| e.api_calls > 0)
                .map(|(d, e)| json!({ "date": d, "api_calls": e.api_calls }))
                .collect(),
        };
        metrics.insert(kind.into(), json!(rows));
    }
    let body = json!({
        "company": { "security_center_id": c.id, "company_name": c.name },
        "from": from, "to": to, "metrics": metrics,
    });
    Ok(state.respond(&ctx, StatusCode::OK, body))
}

async fn churn_risk(
    AxState(state): AxState<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(scid): Path<String>,
    Query(q): Params,
) -> Result<Response, ApiError> {
    let ctx = state.gate(&headers, peer, Need::Customers).await?;
    let w = &state.world;
    let c = customer_of(&state, &ctx, &scid)?;
    let (from, to) = date_range(w, &q)?;
    let kinds = kinds(
        &q,
        &[
            "usage_trend",
            "scan_failures",
            "inactive_scanners",
            "zero_activity",
        ],
    )?;
    let days: Vec<_> = heavy(|| {
        data_days(w, c, from, to)
            .into_iter()
            .map(|d| (d, w.engagement(c, d)))
            .collect()
    });
    let mut indicators = Map::new();
    for kind in kinds {
        let rows: Vec<Value> = match kind {
            "usage_trend" => days
                .iter()
                .flat_map(|(d, _)| {
                    c.products.iter().filter_map(move |prod| {
                        w.usage(c, prod, *d)
                            .filter(|v| *v > 0)
                            .map(|v| json!({ "product": prod, "date": d, "usage_value": v }))
                    })
                })
                .collect(),
            "scan_failures" => days
                .iter()
                .filter(|(_, e)| e.has_scan_activity())
                .map(|(d, e)| {
                    json!({
                        "date": d, "total_succeeded": e.succeeded(), "total_failed": e.failed(),
                        "failure_ratio": World::failure_ratio(e),
                    })
                })
                .collect(),
            "inactive_scanners" => days
                .iter()
                .filter(|(_, e)| e.probes_inactive > 0)
                .map(|(d, e)| json!({ "date": d, "probes_active": e.probes_active, "probes_inactive": e.probes_inactive }))
                .collect(),
            _ => days
                .iter()
                .filter(|(_, e)| !e.has_scan_activity() || e.api_calls == 0)
                .map(|(d, e)| json!({ "date": d, "has_scans": e.has_scan_activity(), "has_api_calls": e.api_calls > 0 }))
                .collect(),
        };
        indicators.insert(kind.into(), json!(rows));
    }
    let body = json!({
        "company": { "security_center_id": c.id, "company_name": c.name },
        "from": from, "to": to, "indicators": indicators,
    });
    Ok(state.respond(&ctx, StatusCode::OK, body))
}

fn merge(target: &mut Value, extra: Value) {
    if let (Value::Object(t), Value::Object(e)) = (target, extra) {
        t.extend(e);
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

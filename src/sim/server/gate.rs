//! The gate every session-bound request passes first ([`State::gate`]): it authenticates,
//! checks the origin lock, draws faults, applies the rate limit and checks the scope, in that
//! order; handlers take it as the [`Gated`] extractor. And the documented error format
//! ([`ApiError`]).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rand::RngExt;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::super::world::Partnership;
use super::super::{Fault, SimKey};
use super::{Serial, Shared, State, REQUEST_ARRIVAL, REQUEST_PATH};
use crate::cpu::heavy;

/// An error answer in the documented format.
pub(crate) struct ApiError {
    status: StatusCode,
    pub(super) body: Value,
    headers: Vec<(&'static str, String)>,
    serial: Option<u64>,
}

impl ApiError {
    pub(super) fn new(status: u16, description: &str) -> ApiError {
        ApiError {
            status: StatusCode::from_u16(status).expect("valid status"),
            body: json!({ "description": description }),
            headers: Vec::new(),
            serial: None,
        }
    }

    pub(super) fn field(mut self, field: &str, message: impl Into<String>) -> ApiError {
        let errors = self.body.as_object_mut().expect("object").entry("errors");
        let errors = errors.or_insert_with(|| json!({}));
        errors[field] = json!([message.into()]);
        self
    }

    pub(super) fn bad_request(field: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(400, "Invalid request parameters").field(field, message)
    }

    pub(super) fn not_found(
        field: &str,
        description: &str,
        message: impl Into<String>,
    ) -> ApiError {
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
pub(super) struct Ctx {
    pub(super) serial: u64,
    pub(super) key: SimKey,
    pub(super) partnership: Partnership,
    pub(super) extra_fields: bool,
    pub(super) wrong_type: bool,
    pub(super) empty_lists: bool,
    pub(super) drop: bool,
}

#[derive(Clone, Copy)]
pub(super) enum Need {
    Session,
    Me,
    Report(Partnership),
    Customers,
}

impl State {
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

    pub(super) async fn gate(
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

    pub(super) fn respond(&self, ctx: &Ctx, status: StatusCode, mut body: Value) -> Response {
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

pub(super) fn scopes(key: &SimKey) -> Vec<String> {
    let mut s = vec![
        "me:read".to_string(),
        partnership_of(key).scope().to_string(),
    ];
    if key.customers {
        s.push("customers:read".into());
    }
    s
}

pub(super) fn session_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let token = value.strip_prefix("Session ")?.trim();
    (!token.is_empty()).then(|| token.to_string())
}

pub(super) fn origin(headers: &HeaderMap, peer: SocketAddr) -> IpAddr {
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

/// A request that passed [`State::gate`] for what its route needs (the route's [`Need`], set
/// on it as an extension): the state and what the gate found. Every session-bound handler
/// takes one first, so the gate's order lives in one place.
pub(super) struct Gated {
    pub(super) state: Shared,
    pub(super) ctx: Ctx,
}

impl FromRequestParts<Shared> for Gated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Gated, ApiError> {
        let need = parts.extensions.get::<Need>().copied();
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        let (Some(need), Some(peer)) = (need, peer) else {
            return Err(ApiError::new(500, "the simulator's route has no gate"));
        };
        let ctx = state.gate(&parts.headers, peer, need).await?;
        Ok(Gated {
            state: state.clone(),
            ctx,
        })
    }
}

//! `/v1/auth/session` (create, validate, delete) and `/v1/me`.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State as AxState};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use rand::RngExt;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::gate::{origin, scopes, session_token, ApiError, Gated, Need};
use super::SessionEntry;
use super::{rfc3339, Serial, Shared};

pub(super) async fn create_session(
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

pub(super) async fn validate_session(
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

pub(super) async fn delete_session(
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

pub(super) async fn me(Gated { state, ctx }: Gated) -> Result<Response, ApiError> {
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

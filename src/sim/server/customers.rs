//! `/v1/customers`: the customer list, one customer, its engagement and churn risk.

use std::collections::HashMap;

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{Months, NaiveDate};
use serde_json::{json, Map, Value};

use super::super::world::{Company, World};
use super::gate::{ApiError, Ctx, Gated};
use super::reports::{envelope, matches_search, page_params};
use super::{Params, State};
use crate::cpu::heavy;

pub(super) async fn customers(
    Gated { state, ctx }: Gated,
    Query(q): Params,
) -> Result<Response, ApiError> {
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

pub(super) async fn customer(
    Gated { state, ctx }: Gated,
    Path(scid): Path<String>,
) -> Result<Response, ApiError> {
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

pub(super) async fn engagement(
    Gated { state, ctx }: Gated,
    Path(scid): Path<String>,
    Query(q): Params,
) -> Result<Response, ApiError> {
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

pub(super) async fn churn_risk(
    Gated { state, ctx }: Gated,
    Path(scid): Path<String>,
    Query(q): Params,
) -> Result<Response, ApiError> {
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

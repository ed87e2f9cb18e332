//! The MSSP and reseller reports: periods, companies, usage and billing, paged as documented.

use std::collections::HashMap;

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use serde_json::{json, Map, Value};

use super::super::world::{Company, Partnership, Period, World, PRODUCTS};
use super::gate::{ApiError, Gated};
use super::{merge, Params};
use crate::cpu::heavy;

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

pub(super) fn header(p: Partnership, period: &Period) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("reporting_period".into(), reporting_period(period));
    if p == Partnership::Reseller {
        m.insert("report_type".into(), json!("reseller"));
    }
    m
}

pub(super) async fn periods(
    Gated { state, ctx }: Gated,
    Extension(p): Extension<Partnership>,
) -> Result<Response, ApiError> {
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

pub(super) async fn period_detail(
    Gated { state, ctx }: Gated,
    Path((year, period)): Path<(String, String)>,
    Extension(p): Extension<Partnership>,
) -> Result<Response, ApiError> {
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
pub(super) fn page_params(q: &HashMap<String, String>) -> Result<(usize, usize), ApiError> {
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
pub(super) fn envelope(
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

pub(super) fn matches_search(c: &Company, q: &HashMap<String, String>) -> bool {
    q.get("search").is_none_or(|s| {
        let s = s.to_lowercase();
        c.name.to_lowercase().contains(&s) || c.id.to_lowercase().contains(&s)
    })
}

pub(super) async fn companies(
    Gated { state, ctx }: Gated,
    Path((year, period)): Path<(String, String)>,
    Query(q): Params,
    Extension(p): Extension<Partnership>,
) -> Result<Response, ApiError> {
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

pub(super) async fn company_usage(
    Gated { state, ctx }: Gated,
    Path((year, period, id)): Path<(String, String, String)>,
    Query(q): Params,
    Extension(p): Extension<Partnership>,
) -> Result<Response, ApiError> {
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

pub(super) async fn billing(
    Gated { state, ctx }: Gated,
    Path((year, period)): Path<(String, String)>,
    Query(q): Params,
    Extension(p): Extension<Partnership>,
) -> Result<Response, ApiError> {
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

pub(super) async fn usage(
    Gated { state, ctx }: Gated,
    Path((year, period)): Path<(String, String)>,
    Query(q): Params,
    Extension(p): Extension<Partnership>,
) -> Result<Response, ApiError> {
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

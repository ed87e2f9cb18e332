//! The simulator's contract, checked with plain HTTP (not the hspq client, so the two stay
//! independent): sessions, status codes, error bodies, 429 headers, pagination, date rules,
//! data consistency and fault injection.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{Days, NaiveDate};
use common::*;
use hspq::sim::{Fault, Partnership, Simulator};
use reqwest::StatusCode;
use serde_json::{json, Value};

struct Raw {
    http: reqwest::Client,
    base: String,
    origin: String,
    token: String,
}

async fn create(sim: &Simulator, api_key: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/auth/session", sim.base_url()))
        .json(&json!({ "organization_key": ORG_KEY, "api_key": api_key }))
        .send()
        .await
        .unwrap()
}

async fn session(sim: &Simulator, api_key: &str) -> Raw {
    let resp = create(sim, api_key).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let body: Value = resp.json().await.unwrap();
    Raw {
        http: reqwest::Client::new(),
        base: sim.base_url(),
        origin: format!("http://{}", sim.addr()),
        token: body["session_token"].as_str().unwrap().to_string(),
    }
}

impl Raw {
    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let url = if path.starts_with("/v1") {
            format!("{}{path}", self.origin)
        } else {
            format!("{}/{path}", self.base)
        };
        let resp = self
            .http
            .get(url)
            .header("authorization", format!("Session {}", self.token))
            .send()
            .await
            .unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn ok(&self, path: &str) -> Value {
        let (status, body) = self.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        body
    }

    async fn delete(&self) -> StatusCode {
        self.http
            .delete(format!("{}/auth/session", self.base))
            .header("authorization", format!("Session {}", self.token))
            .send()
            .await
            .unwrap()
            .status()
    }
}

fn date(v: &Value) -> NaiveDate {
    v.as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn sessions_are_created_validated_capped_at_five_and_invalidated() {
    let sim = sim(|_| {}).await;
    let resp = create(&sim, MSSP_KEY).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let body: Value = resp.json().await.unwrap();
    assert!(body["session_token"].as_str().unwrap().starts_with("pps_"));
    assert_eq!(body["valid_for_seconds"], 3600);
    assert_eq!(body["locked_to_origin"], "127.0.0.1");
    assert_eq!(
        body["scopes"],
        json!(["me:read", "mssp-report:read", "customers:read"])
    );

    let bad = reqwest::Client::new()
        .post(format!("{}/auth/session", sim.base_url()))
        .json(&json!({ "organization_key": ORG_KEY, "api_key": "hsp_wrong" }))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    assert!(bad.json::<Value>().await.unwrap()["description"].is_string());
    let missing = reqwest::Client::new()
        .post(format!("{}/auth/session", sim.base_url()))
        .json(&json!({ "organization_key": ORG_KEY }))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::BAD_REQUEST);
    assert!(missing.json::<Value>().await.unwrap()["errors"]["api_key"].is_array());

    // The cap is per organisation, across keys.
    let mut raws = Vec::new();
    for key in [MSSP_KEY, RESELLER_KEY, MSSP_REPORT_ONLY_KEY, MSSP_KEY] {
        raws.push(session(&sim, key).await);
    }
    assert_eq!(sim.active_sessions(), 5);
    let refused = create(&sim, RESELLER_KEY).await;
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(
        (
            body["active_sessions"].as_u64(),
            body["max_sessions"].as_u64()
        ),
        (Some(5), Some(5))
    );
    assert!(body["description"]
        .as_str()
        .unwrap()
        .contains("Maximum of 5"));

    let raw = &raws[0];
    let valid: Value = raw
        .http
        .post(format!("{}/auth/session/validate", raw.base))
        .json(&json!({ "session_token": raw.token }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(valid["valid"], true);
    assert!(valid["remaining_seconds"].as_u64().unwrap() > 3500);

    assert_eq!(raw.delete().await, StatusCode::OK);
    assert_eq!(raw.delete().await, StatusCode::NOT_FOUND);
    assert_eq!(raw.get("me").await.0, StatusCode::UNAUTHORIZED);
    let gone: Value = raw
        .http
        .post(format!("{}/auth/session/validate", raw.base))
        .header("authorization", format!("Session {}", raw.token))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        gone,
        json!({ "valid": false, "reason": "Session token not found." })
    );
    let no_token = raw
        .http
        .post(format!("{}/auth/session/validate", raw.base))
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), StatusCode::BAD_REQUEST);
    assert_eq!(create(&sim, MSSP_KEY).await.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn expired_sessions_get_401_and_free_their_slot() {
    let sim = sim(|c| c.session_ttl = Duration::from_secs(3600)).await;
    let raw = session(&sim, MSSP_KEY).await;
    assert_eq!(raw.get("me").await.0, StatusCode::OK);
    sim.expire_sessions();
    let (status, body) = raw.get("me").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body["description"].as_str().unwrap().contains("expired"));
    assert_eq!(sim.active_sessions(), 0);
    assert_eq!(raw.delete().await, StatusCode::NOT_FOUND);
    let missing_header = reqwest::get(format!("{}/me", sim.base_url()))
        .await
        .unwrap();
    assert_eq!(missing_header.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_rate_limit_answers_429_with_the_documented_body_and_headers() {
    let sim = sim(|c| c.rate = 2.0).await;
    let raw = session(&sim, MSSP_KEY).await;
    assert_eq!(raw.get("me").await.0, StatusCode::OK);
    let resp = raw
        .http
        .get(format!("{}/me", raw.base))
        .header("authorization", format!("Session {}", raw.token))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let h = resp.headers().clone();
    let ms: u64 = h["x-retry-after-ms"].to_str().unwrap().parse().unwrap();
    assert!(ms > 0 && ms <= 500, "{ms}");
    assert_eq!(h["retry-after"], "1");
    assert_eq!(h["x-ratelimit-limit"], "2");
    assert_eq!(h["x-ratelimit-remaining"], "0");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["retry_after_ms"].as_u64(), Some(ms));
    assert_eq!(body["description"], "Rate limit exceeded");
    tokio::time::sleep(Duration::from_millis(ms)).await;
    assert_eq!(raw.get("me").await.0, StatusCode::OK);
    // Every accepted request of the session was at least 1/R apart.
    let accepted: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.session.is_some() && r.status == 200)
        .collect();
    assert_eq!(accepted.len(), 2);
    assert!(accepted[1].at - accepted[0].at >= Duration::from_millis(500));
}

#[tokio::test]
async fn scopes_are_enforced_per_key() {
    let sim = sim(|_| {}).await;
    let mssp = session(&sim, MSSP_KEY).await;
    let (status, body) = mssp.get("reseller-report").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body["errors"]["scope"][0],
        "Missing required scope: reseller-report:read"
    );
    let report_only = session(&sim, MSSP_REPORT_ONLY_KEY).await;
    assert_eq!(report_only.get("customers").await.0, StatusCode::FORBIDDEN);
    assert_eq!(report_only.get("mssp-report").await.0, StatusCode::OK);
    let me = report_only.ok("me").await;
    assert_eq!(me["scopes"], json!(["me:read", "mssp-report:read"]));
    assert_eq!(me["api_key_prefix"], "hsp_simmssp1");
    let reseller = session(&sim, RESELLER_KEY).await;
    assert_eq!(reseller.get("mssp-report").await.0, StatusCode::FORBIDDEN);
    // The reseller API has no totals endpoint.
    assert_eq!(
        reseller
            .get("reseller-report/2026/02/usage/billing")
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    // A company of the other partnership is not accessible; an unknown one is not found.
    assert_eq!(
        reseller.get("customers/SE-ARN1001").await.0,
        StatusCode::FORBIDDEN
    );
    let (status, body) = reseller.get("customers/SE-NOPE1").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body["errors"]["security_center_id"][0],
        "Company is not currently active"
    );
}

#[tokio::test]
async fn pages_follow_next_links_and_limits_are_checked() {
    let sim = sim(|c| c.companies = 57).await;
    let raw = session(&sim, MSSP_KEY).await;
    let (status, body) = raw.get("mssp-report/2026/02/companies?limit=1001").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["errors"]["limit"].is_array());
    assert_eq!(
        raw.get("mssp-report/2026/02/companies?limit=0").await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        raw.get("mssp-report/2026/02/companies?offset=-1").await.0,
        StatusCode::BAD_REQUEST
    );

    let mut ids = Vec::new();
    let mut next = Some("mssp-report/2026/02/companies?limit=10".to_string());
    let mut pages = 0;
    while let Some(path) = next {
        let page = raw.ok(&path).await;
        pages += 1;
        for c in page["results"].as_array().unwrap() {
            ids.push(c["security_center_id"].as_str().unwrap().to_string());
        }
        if pages > 1 {
            assert!(page["previous"].is_string());
        }
        next = page["next"].as_str().map(str::to_string);
    }
    let world = sim.world();
    let period = world.period(Partnership::Mssp, 2026, 2).unwrap();
    let want: Vec<String> = world
        .eligible(Partnership::Mssp, &period)
        .iter()
        .map(|c| c.id.clone())
        .collect();
    assert_eq!(ids, want);
    assert_eq!(pages, want.len().div_ceil(10));

    let past = raw.ok("mssp-report/2026/02/companies?offset=100000").await;
    assert_eq!(past["results"], json!([]));
    assert_eq!(past["next"], Value::Null);

    // The reseller list carries no links (as in the vendor's example): page by offset.
    let reseller = session(&sim, RESELLER_KEY).await;
    let page = reseller
        .ok("reseller-report/2026/02/companies?limit=5")
        .await;
    assert!(page.get("next").is_none() && page.get("previous").is_none());
    assert_eq!(page["report_type"], "reseller");
    assert!(page["count"].as_u64().unwrap() > 5);

    // Other parameters survive in the links.
    let page = raw
        .ok("mssp-report/2026/02/usage?product=SNS&limit=3")
        .await;
    assert_eq!(
        page["next"],
        "/v1/mssp-report/2026/02/usage?product=SNS&limit=3&offset=3"
    );
    let second = raw.ok(page["next"].as_str().unwrap()).await;
    assert_eq!(
        second["previous"],
        "/v1/mssp-report/2026/02/usage?product=SNS&limit=3&offset=0"
    );
}

#[tokio::test]
async fn periods_follow_the_documented_calendars_up_to_t_minus_2() {
    let sim = sim(|c| c.periods = 24).await;
    let mssp = session(&sim, MSSP_KEY).await;
    let list = mssp.ok("mssp-report").await;
    assert_eq!(list["timezone"], "Europe/Stockholm");
    let results = list["results"].as_array().unwrap();
    assert_eq!(results.len(), 24);
    let current: Vec<_> = results.iter().filter(|p| p["is_current"] == true).collect();
    assert_eq!(current.len(), 1);
    let t2 = today() - Days::new(2);
    assert_eq!(date(&current[0]["to"]), t2);
    assert_eq!(current[0]["is_partial"], true);
    for p in results {
        let (from, to) = (date(&p["from"]), date(&p["to"]));
        assert_eq!(chrono::Datelike::day(&from), 26, "{p}");
        if p["is_partial"] == false {
            assert_eq!(chrono::Datelike::day(&to), 25, "{p}");
        }
        assert!(to <= t2);
    }
    let detail = mssp.ok("mssp-report/2026/02").await;
    assert_eq!(
        (detail["from"].as_str(), detail["to"].as_str()),
        (Some("2026-01-26"), Some("2026-02-25"))
    );
    assert!(detail["links"]["billing"].is_string());
    assert_eq!(
        mssp.get("mssp-report/2030/01").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        mssp.get("mssp-report/2026/2").await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        mssp.get("mssp-report/2026/13/usage").await.0,
        StatusCode::BAD_REQUEST
    );

    let reseller = session(&sim, RESELLER_KEY).await;
    let list = reseller.ok("reseller-report").await;
    assert_eq!(list["report_type"], "reseller");
    for p in list["results"].as_array().unwrap() {
        assert_eq!(chrono::Datelike::day(&date(&p["from"])), 1, "{p}");
    }
    let march = reseller.ok("reseller-report/2026/03").await;
    assert_eq!(
        (march["from"].as_str(), march["to"].as_str()),
        (Some("2026-03-01"), Some("2026-03-10"))
    );
    let feb = reseller.ok("reseller-report/2026/02").await;
    assert_eq!(feb["to"], "2026-02-28");
}

#[tokio::test]
async fn customer_ranges_default_to_30_days_stop_at_t_minus_1_and_cap_at_12_months() {
    let sim = sim(|_| {}).await;
    let raw = session(&sim, MSSP_KEY).await;
    let customers = raw.ok("customers?limit=1000").await;
    let id = customers["results"][0]["security_center_id"]
        .as_str()
        .unwrap()
        .to_string();
    let e = raw.ok(&format!("customers/{id}/engagement")).await;
    assert_eq!(date(&e["to"]), today());
    assert_eq!(date(&e["from"]), today() - Days::new(30));
    for kind in ["scan_activity", "scanner_health", "api_usage"] {
        for row in e["metrics"][kind].as_array().unwrap() {
            assert!(date(&row["date"]) <= today() - Days::new(1), "{row}");
            let values: Vec<i64> = row
                .as_object()
                .unwrap()
                .iter()
                .filter(|(k, _)| *k != "date")
                .map(|(_, v)| v.as_i64().unwrap())
                .collect();
            assert!(values.iter().any(|v| *v != 0), "only non-zero days: {row}");
        }
    }
    let twelve = raw
        .ok(&format!(
            "customers/{id}/engagement?from=2025-03-12&to=2026-03-12"
        ))
        .await;
    assert_eq!(twelve["from"], "2025-03-12");
    let (status, body) = raw
        .get(&format!(
            "customers/{id}/churn-risk?from=2025-03-11&to=2026-03-12"
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["errors"]["from"].is_array());
    assert_eq!(
        raw.get(&format!(
            "customers/{id}/engagement?from=2026-03-10&to=2026-03-01"
        ))
        .await
        .0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        raw.get(&format!("customers/{id}/engagement?from=yesterday"))
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        raw.get(&format!("customers/{id}/engagement?type=bogus"))
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    let only = raw
        .ok(&format!(
            "customers/{id}/churn-risk?type=zero_activity,scan_failures"
        ))
        .await;
    let kinds: Vec<&String> = only["indicators"].as_object().unwrap().keys().collect();
    assert_eq!(kinds.len(), 2);
}

#[tokio::test]
async fn churn_indicators_agree_with_engagement_and_daily_usage() {
    let sim = sim(|c| c.companies = 12).await;
    let raw = session(&sim, MSSP_KEY).await;
    let range = "from=2026-01-26&to=2026-02-25";
    let customers = raw.ok("customers?limit=1000").await;
    let usage = raw.ok("mssp-report/2026/02/usage?limit=1000").await;
    let mut daily: BTreeMap<(String, String, String), i64> = BTreeMap::new();
    for c in usage["results"].as_array().unwrap() {
        for row in c["daily"].as_array().unwrap() {
            let key = (
                c["security_center_id"].as_str().unwrap().to_string(),
                row["product"].as_str().unwrap().to_string(),
                row["date"].as_str().unwrap().to_string(),
            );
            daily.insert(key, row["usage_value"].as_i64().unwrap());
        }
    }
    let mut checked = 0;
    for c in customers["results"].as_array().unwrap() {
        let id = c["security_center_id"].as_str().unwrap();
        let e = raw.ok(&format!("customers/{id}/engagement?{range}")).await;
        let r = raw.ok(&format!("customers/{id}/churn-risk?{range}")).await;
        let scans: BTreeMap<&str, (i64, i64)> = e["metrics"]["scan_activity"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| {
                let sum = |suffix: &str| -> i64 {
                    ["sns", "was", "cs"]
                        .iter()
                        .map(|p| row[format!("{p}_scans_{suffix}")].as_i64().unwrap())
                        .sum()
                };
                (
                    row["date"].as_str().unwrap(),
                    (sum("succeeded"), sum("failed")),
                )
            })
            .collect();
        let failures = r["indicators"]["scan_failures"].as_array().unwrap();
        assert_eq!(failures.len(), scans.len(), "{id}");
        for f in failures {
            let (ok, failed) = scans[f["date"].as_str().unwrap()];
            assert_eq!(
                (
                    f["total_succeeded"].as_i64().unwrap(),
                    f["total_failed"].as_i64().unwrap()
                ),
                (ok, failed)
            );
        }
        for u in r["indicators"]["usage_trend"].as_array().unwrap() {
            let key = (
                id.to_string(),
                u["product"].as_str().unwrap().to_string(),
                u["date"].as_str().unwrap().to_string(),
            );
            assert_eq!(
                daily.get(&key).copied(),
                u["usage_value"].as_i64(),
                "{key:?}"
            );
            checked += 1;
        }
        let api_days: Vec<&str> = e["metrics"]["api_usage"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["date"].as_str().unwrap())
            .collect();
        for z in r["indicators"]["zero_activity"].as_array().unwrap() {
            let d = z["date"].as_str().unwrap();
            assert_eq!(z["has_scans"].as_bool().unwrap(), scans.contains_key(d));
            assert_eq!(z["has_api_calls"].as_bool().unwrap(), api_days.contains(&d));
            assert!(!(z["has_scans"] == true && z["has_api_calls"] == true));
        }
    }
    assert!(checked > 100, "compared {checked} usage_trend rows");
}

#[tokio::test]
async fn billing_totals_are_the_sum_of_per_company_values_and_nulls_stay_null() {
    let sim = sim(|c| c.companies = 25).await;
    let raw = session(&sim, MSSP_KEY).await;
    let both = raw
        .ok("mssp-report/2026/01/usage/billing?group_by=company,product&limit=1000")
        .await;
    let totals = both["totals"].as_array().unwrap();
    assert!(!totals.is_empty());
    assert_eq!(both["count"], both["eligible_company_count"]);
    for t in totals {
        let product = t["product"].as_str().unwrap();
        let values: Vec<i64> = both["results"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|c| c["billing"].as_array().unwrap().clone())
            .filter(|b| b["product"] == product)
            .filter_map(|b| b["billing_value"].as_i64())
            .collect();
        assert_eq!(
            t["billing_total"].as_i64().unwrap(),
            values.iter().sum::<i64>(),
            "{product}"
        );
        assert_eq!(t["company_count"].as_u64().unwrap() as usize, values.len());
        assert_eq!(
            t["company_count"].as_u64().unwrap() + t["null_company_count"].as_u64().unwrap(),
            both["eligible_company_count"].as_u64().unwrap()
        );
    }
    let totals_only = raw.ok("mssp-report/2026/01/usage/billing").await;
    assert_eq!(totals_only["totals"], both["totals"]);
    assert!(totals_only.get("results").is_none());
    let filtered = raw
        .ok("mssp-report/2026/01/usage/billing?group_by=company&product=CS&limit=1000")
        .await;
    let entries: Vec<&Value> = filtered["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["billing"][0])
        .collect();
    assert_eq!(
        entries.len() as u64,
        filtered["eligible_company_count"].as_u64().unwrap()
    );
    let nulls: Vec<&&Value> = entries
        .iter()
        .filter(|b| b["billing_value"].is_null())
        .collect();
    assert!(!nulls.is_empty());
    assert!(nulls
        .iter()
        .all(|b| b["null_reason"] == "product_not_enabled_for_company"));
    assert_eq!(
        raw.get("mssp-report/2026/01/usage/billing?group_by=day")
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    // DA never has a scan date.
    let usage = raw
        .ok("mssp-report/2026/01/usage?product=DA&limit=1000")
        .await;
    for c in usage["results"].as_array().unwrap() {
        assert!(c["billing"][0]["last_scan_date"].is_null());
    }
    // Per-company views agree with the bulk endpoint.
    let first = &both["results"][0];
    let id = first["security_center_id"].as_str().unwrap();
    let billing = raw
        .ok(&format!("mssp-report/2026/01/companies/{id}/usage"))
        .await;
    assert_eq!(billing["view"], "billing");
    assert_eq!(billing["usage"], first["billing"]);
    let all = raw
        .ok(&format!(
            "mssp-report/2026/01/companies/{id}/usage?view=all&limit=5"
        ))
        .await;
    assert_eq!(all["billing"], first["billing"]);
    assert_eq!(all["daily"]["results"].as_array().unwrap().len(), 5);
    assert!(all["daily"]["next"].is_string());
    assert_eq!(
        raw.get(&format!(
            "mssp-report/2026/01/companies/{id}/usage?view=weekly"
        ))
        .await
        .0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        raw.get("mssp-report/2026/01/companies/SE-NOPE/usage")
            .await
            .0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn awkward_values_are_present_in_the_data() {
    let sim = sim(|c| c.companies = 200).await;
    let names: Vec<&str> = sim
        .world()
        .companies(Partnership::Mssp)
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert!(names.iter().any(|n| !n.is_ascii()));
    assert!(names.iter().any(|n| n.contains(',')));
    assert!(names.iter().any(|n| n.contains('"')));
    let companies = sim.world().companies(Partnership::Mssp);
    assert!(
        companies.iter().any(|c| c.inactive_from.is_some()),
        "archived companies"
    );
    assert!(
        companies
            .iter()
            .any(|c| c.active_from > sim.world().history_start()),
        "companies joining mid-history"
    );
}

#[tokio::test]
async fn injected_faults_behave_as_announced() {
    let sim = sim(|_| {}).await;
    let raw = session(&sim, MSSP_KEY).await;
    sim.inject(Fault::Status(503), 1);
    let resp = raw
        .http
        .get(format!("{}/me", raw.base))
        .header("authorization", format!("Session {}", raw.token))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(resp.text().await.unwrap().contains("<html>"));
    sim.inject(Fault::RateLimited(321), 1);
    let (status, body) = raw.get("me").await;
    assert_eq!(
        (status, body["retry_after_ms"].as_u64()),
        (StatusCode::TOO_MANY_REQUESTS, Some(321))
    );
    sim.inject(Fault::ExtraFields, 1);
    let page = raw.ok("customers?limit=2").await;
    assert!(page["sim_note"].is_string());
    assert!(page["results"][0]["sim_score"].is_number());
    sim.inject(Fault::Drop, 1);
    let sent = raw
        .http
        .get(format!("{}/me", raw.base))
        .header("authorization", format!("Session {}", raw.token))
        .send()
        .await;
    // The connection closes before the answer is complete: in the headers or in the body.
    let dropped = match sent {
        Err(e) => Err(e),
        Ok(resp) => resp.bytes().await,
    };
    assert!(dropped.is_err(), "the answer must not arrive whole");
    sim.inject(Fault::Revoke, 1);
    assert_eq!(raw.get("me").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(sim.active_sessions(), 0);
}

#[tokio::test]
async fn sessions_are_locked_to_the_creating_origin() {
    let sim = sim(|_| {}).await;
    let raw = session(&sim, MSSP_KEY).await;
    let resp = raw
        .http
        .get(format!("{}/me", raw.base))
        .header("authorization", format!("Session {}", raw.token))
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn allowed_origins_refuse_session_creation_from_elsewhere() {
    let sim = sim(|c| c.keys.api_keys[0].allowed_origins = vec!["203.0.113.10".into()]).await;
    let resp = create(&sim, MSSP_KEY).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let body: Value = resp.json().await.unwrap();
    assert!(body["errors"]["origin"][0]
        .as_str()
        .unwrap()
        .contains("127.0.0.1"));
}

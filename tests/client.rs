//! The API client against the in-process simulator: pagination, retries on 429/5xx/dropped
//! connections, session renewal, the 409 rules, invalidation, pacing and redaction.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use hspq::api::models::{Company, Me, PeriodList, UsageCompany};
use hspq::api::{ApiError, Client};
use hspq::sim::{Fault, Partnership};
use serde_json::json;

fn ids(list: &[Company]) -> Vec<String> {
    list.iter().map(|c| c.security_center_id.clone()).collect()
}

#[tokio::test]
async fn reads_typed_answers_and_walks_every_page() {
    let sim = sim(|c| c.companies = 43).await;
    let client = connect(&sim, 1, 0.0).await;
    let me: Me = client.get("me").await.unwrap();
    assert_eq!(me.api_key_prefix, "hsp_simmssp0");
    assert!(!me.extra.contains_key("organization_key"));
    let periods: PeriodList = client.get("mssp-report").await.unwrap();
    assert_eq!(periods.results.len(), 24);

    let companies: Vec<Company> = client
        .get_all("mssp-report/2026/02/companies", 7)
        .await
        .unwrap();
    let world = sim.world();
    let period = world.period(Partnership::Mssp, 2026, 2).unwrap();
    let want: Vec<String> = world
        .eligible(Partnership::Mssp, &period)
        .iter()
        .map(|c| c.id.clone())
        .collect();
    assert_eq!(ids(&companies), want);

    let usage: Vec<UsageCompany> = client
        .get_all("mssp-report/2026/02/usage", 1000)
        .await
        .unwrap();
    assert_eq!(usage.len(), want.len());
    let rows: usize = usage.iter().map(|c| c.daily.len()).sum();
    let want_rows: usize = world
        .eligible(Partnership::Mssp, &period)
        .iter()
        .map(|c| world.daily(c, &period, None).len())
        .sum();
    assert_eq!(rows, want_rows);
    client.close().await;
}

#[tokio::test]
async fn pages_on_by_offset_when_the_answer_has_no_next_link() {
    let sim = sim(|c| c.companies = 31).await;
    let client = Client::connect(config(&sim, 1, 0.0), creds(RESELLER_KEY))
        .await
        .unwrap();
    let companies: Vec<Company> = client
        .get_all("reseller-report/2026/02/companies", 4)
        .await
        .unwrap();
    let world = sim.world();
    let period = world.period(Partnership::Reseller, 2026, 2).unwrap();
    let want: Vec<String> = world
        .eligible(Partnership::Reseller, &period)
        .iter()
        .map(|c| c.id.clone())
        .collect();
    assert!(want.len() > 8);
    assert_eq!(ids(&companies), want);
    assert!(companies
        .iter()
        .all(|c| c.order_status.as_deref() == Some("active")));
    client.close().await;
}

#[tokio::test]
async fn retries_429s_for_as_long_as_the_api_asks() {
    let sim = sim(|_| {}).await;
    let client = connect(&sim, 1, 0.0).await;
    sim.inject(Fault::RateLimited(150), 2);
    let started = Instant::now();
    let _: Me = client.get("me").await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "waited {:?}",
        started.elapsed()
    );
    let stats = client.stats();
    assert_eq!(
        (stats.rate_limited, stats.retries, stats.requests),
        (2, 2, 3)
    );
}

#[tokio::test]
async fn retries_5xx_and_dropped_connections_with_backoff() {
    let sim = sim(|_| {}).await;
    let client = connect(&sim, 1, 0.0).await;
    sim.inject(Fault::Status(503), 1);
    sim.inject(Fault::Drop, 1);
    sim.inject(Fault::Status(500), 1);
    let me: Me = client.get("me").await.unwrap();
    assert_eq!(me.partner_name, "Slate Rock and Gravel Co.");
    assert_eq!(client.stats().retries, 3);
    assert_eq!(client.stats().rate_limited, 0);
}

#[tokio::test]
async fn gives_up_after_max_retries_and_says_so() {
    let sim = sim(|_| {}).await;
    let mut cfg = config(&sim, 1, 0.0);
    cfg.retry.max_retries = 2;
    let client = Client::connect(cfg, creds(MSSP_KEY)).await.unwrap();
    sim.inject(Fault::Status(502), 10);
    let err = client.get::<Me>("me").await.unwrap_err();
    assert!(
        matches!(err, ApiError::GaveUp { attempts: 3, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("/v1/me") && err.to_string().contains("status 502"),
        "{err}"
    );
}

#[tokio::test]
async fn other_4xx_answers_are_not_retried_and_name_the_cause() {
    let sim = sim(|_| {}).await;
    let client = connect(&sim, 1, 0.0).await;
    let before = client.stats().requests;
    let err = client
        .get::<serde_json::Value>("mssp-report/2026/13")
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::BadRequest { .. }), "{err:?}");
    assert!(err.to_string().contains("two-digit period"), "{err}");
    let err = client
        .get::<serde_json::Value>("mssp-report/2031/01")
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::NotFound { .. }), "{err:?}");
    let err = client
        .get::<serde_json::Value>("reseller-report")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ApiError::ScopeMissing { scope, .. } if scope == "reseller-report:read"),
        "{err:?}"
    );
    assert_eq!(client.stats().requests - before, 3);
    assert_eq!(client.stats().retries, 0);
}

#[tokio::test]
async fn a_field_of_an_unexpected_type_names_the_endpoint_and_field() {
    let sim = sim(|_| {}).await;
    let client = connect(&sim, 1, 0.0).await;
    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Wrong {
        partner_name: i64,
    }
    let err = client.get::<Wrong>("me").await.unwrap_err();
    assert!(
        matches!(&err, ApiError::Decode { field, .. } if field == "partner_name"),
        "{err:?}"
    );
    assert!(err.to_string().contains("/v1/me"), "{err}");
}

#[tokio::test]
async fn unknown_fields_are_kept() {
    let sim = sim(|_| {}).await;
    let client = connect(&sim, 1, 0.0).await;
    sim.inject(Fault::ExtraFields, 1);
    let page: Vec<Company> = client
        .get_all("mssp-report/2026/02/companies?search=a", 1000)
        .await
        .unwrap();
    assert!(!page.is_empty());
    assert_eq!(page[0].extra["sim_score"], json!(0.5));
}

#[tokio::test]
async fn renews_a_session_after_it_expired_or_was_revoked() {
    let sim = sim(|_| {}).await;
    let client = connect(&sim, 1, 0.0).await;
    sim.expire_sessions();
    let _: Me = client.get("me").await.unwrap();
    sim.inject(Fault::Revoke, 1);
    let _: Me = client.get("me").await.unwrap();
    assert_eq!(client.stats().sessions_created, 3);
    assert_eq!(sim.active_sessions(), 1);
    client.close().await;
    assert_eq!(sim.active_sessions(), 0);
}

#[tokio::test]
async fn renews_a_session_before_it_expires() {
    let sim = sim(|c| c.session_ttl = Duration::from_secs(2)).await;
    let mut cfg = config(&sim, 1, 0.0);
    cfg.renew_before = Duration::from_millis(1700);
    let client = Client::connect(cfg, creds(MSSP_KEY)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let _: Me = client.get("me").await.unwrap();
    assert_eq!(client.stats().sessions_created, 2);
    assert!(
        sim.requests().iter().all(|r| r.status != 401),
        "renewed before any 401"
    );
    // The old session was invalidated before the new one was created.
    assert_eq!(sim.active_sessions(), 1);
}

#[tokio::test]
async fn a_409_on_the_first_session_ends_with_the_cause_and_the_fix() {
    let sim = sim(|_| {}).await;
    let mut others = Vec::new();
    for _ in 0..5 {
        others.push(connect(&sim, 1, 0.0).await);
    }
    let err = Client::connect(config(&sim, 1, 0.0), creds(MSSP_KEY))
        .await
        .err()
        .unwrap();
    assert!(
        matches!(err, ApiError::SessionLimit { active: 5, max: 5 }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("409")
            && text.contains("expire within an hour")
            && text.contains("Active Sessions"),
        "{text}"
    );
}

#[tokio::test]
async fn a_409_on_an_extra_session_continues_with_fewer() {
    let sim = sim(|_| {}).await;
    let mut others = Vec::new();
    for _ in 0..3 {
        others.push(connect(&sim, 1, 0.0).await);
    }
    let client = connect(&sim, 4, 0.0).await;
    assert_eq!(client.sessions(), 2);
    for _ in 0..6 {
        let _: Me = client.get("me").await.unwrap();
    }
    client.close().await;
    assert_eq!(sim.active_sessions(), 3);
}

#[tokio::test]
async fn bad_keys_and_sessions_out_of_range_are_refused_before_any_work() {
    let sim = sim(|_| {}).await;
    let err = Client::connect(config(&sim, 1, 0.0), creds("hsp_wrong_key"))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, ApiError::BadCredentials), "{err:?}");
    assert!(err.to_string().contains("HSPQ_API_KEY"));
    let err = Client::connect(config(&sim, 6, 0.0), creds(MSSP_KEY))
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("from 1 to 5"), "{err}");
    let blocked =
        common::sim(|c| c.keys.api_keys[0].allowed_origins = vec!["203.0.113.10".into()]).await;
    let err = Client::connect(config(&blocked, 1, 0.0), creds(MSSP_KEY))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, ApiError::OriginNotAllowed { .. }), "{err:?}");
    assert_eq!(sim.active_sessions(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_client_invalidates_its_sessions() {
    let sim = sim(|_| {}).await;
    let client = connect(&sim, 3, 0.0).await;
    assert_eq!(sim.active_sessions(), 3);
    drop(client);
    let deadline = Instant::now() + Duration::from_secs(5);
    while sim.active_sessions() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(sim.active_sessions(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_requests_keep_every_session_within_the_rate_limit() {
    // A strict limiter of 20 requests/s per session and 60 requests on 3 sessions: no 429, and
    // the run cannot be faster than the bound allows.
    let sim = sim(|c| c.rate = 20.0).await;
    let client = connect(&sim, 3, 20.0).await;
    sim.clear_requests();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..60 {
        let c = client.clone();
        tasks.push(tokio::spawn(
            async move { c.get::<Me>("me").await.map(|_| ()) },
        ));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let elapsed = started.elapsed();
    let log = sim.requests();
    assert_eq!(log.iter().filter(|r| r.status == 429).count(), 0);
    assert_eq!(client.stats().rate_limited, 0);
    let mut per_session = std::collections::BTreeMap::<u64, usize>::new();
    for r in &log {
        *per_session.entry(r.session.unwrap()).or_default() += 1;
    }
    assert_eq!(
        per_session.values().copied().collect::<Vec<_>>(),
        vec![20, 20, 20]
    );
    assert!(elapsed >= Duration::from_millis(19 * 50), "{elapsed:?}");
    client.close().await;
}

/// Collects everything the client logs, at every level.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn no_key_or_token_reaches_logs_or_errors() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut texts = Vec::new();
    rt.block_on(async {
        let sim = sim(|c| c.session_ttl = Duration::from_secs(3600)).await;
        let client = connect(&sim, 2, 0.0).await;
        sim.inject(Fault::RateLimited(20), 1);
        sim.inject(Fault::Status(503), 1);
        sim.inject(Fault::Revoke, 1);
        sim.inject(Fault::Drop, 1);
        let _: Me = client.get("me").await.unwrap();
        sim.expire_sessions();
        let _: Me = client.get("me").await.unwrap();
        for path in [
            "mssp-report/2026/13",
            "reseller-report",
            "customers/SE-NOPE",
        ] {
            let e = client.get::<serde_json::Value>(path).await.unwrap_err();
            texts.push(format!("{e} {e:?}"));
        }
        texts.push(format!("{client:?}", client = client.stats()));
        client.close().await;
        let e = Client::connect(config(&sim, 1, 0.0), creds("hsp_wrong_key"))
            .await
            .err()
            .unwrap();
        texts.push(format!("{e} {e:?}"));
        let tokens: Vec<String> = sim.requests().iter().map(|r| r.uri.clone()).collect();
        texts.push(tokens.join(" "));
    });
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("retry"), "retries are logged: {logs}");
    let all = format!("{logs}\n{}", texts.join("\n"));
    for secret in [ORG_KEY, MSSP_KEY, "hsp_wrong_key", "pps_"] {
        assert!(!all.contains(secret), "{secret} leaked into:\n{all}");
    }
}

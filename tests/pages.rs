//! Any page the API can send gives rows or a clear error, never a panic: real answers of the
//! simulator, mutated at random (values of the wrong type, nulls, extreme numbers, impossible
//! dates, missing and unknown fields), through the same decoding and JSON → Arrow conversion a
//! sync uses. Seeded, so a failure names the case to replay.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};

use chrono::NaiveDate;
use common::*;
use hspq::api::models::{
    BillingTotals, ChurnRisk, Company, Customer, Engagement, Me, Page, UsageCompany,
};
use hspq::ingest::rows::{self, PeriodContext};
use hspq::sim::Partnership;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{json, Value};

/// A value a careless or changed API might send instead of the one documented.
fn odd_value(rng: &mut StdRng) -> Value {
    match rng.random_range(0..14) {
        0 => Value::Null,
        1 => json!(-1),
        2 => json!(i64::MAX),
        3 => json!(u64::MAX),
        4 => json!(1.5e300),
        5 => json!(""),
        6 => json!("x".repeat(5000)),
        7 => json!("2026-02-30"),
        8 => json!("9999-12-31"),
        9 => json!([]),
        10 => json!({}),
        11 => json!(true),
        12 => json!([null, "a", 1]),
        _ => json!("SE-ARN\u{0}\u{202e}ö"),
    }
}

/// How many values `v` holds, nested ones included.
fn nodes(v: &Value) -> usize {
    1 + match v {
        Value::Object(map) => map.values().map(nodes).sum(),
        Value::Array(items) => items.iter().map(nodes).sum(),
        _ => 0,
    }
}

/// Mutates about `rate` of the nodes of `v`.
fn mutate(v: &mut Value, rng: &mut StdRng, rate: f64) {
    match v {
        Value::Object(map) => {
            let keys: Vec<String> = map.keys().cloned().collect();
            for k in keys {
                if rng.random_bool(rate / 3.0) {
                    map.remove(&k);
                } else if rng.random_bool(rate) {
                    map.insert(k, odd_value(rng));
                } else if let Some(child) = map.get_mut(&k) {
                    mutate(child, rng, rate);
                }
            }
            if rng.random_bool(rate) {
                map.insert("unexpected_field".into(), odd_value(rng));
            }
        }
        Value::Array(items) => {
            for item in items.iter_mut() {
                if rng.random_bool(rate) {
                    *item = odd_value(rng);
                } else {
                    mutate(item, rng, rate);
                }
            }
            if rng.random_bool(rate) {
                items.push(odd_value(rng));
            }
        }
        _ => {}
    }
}

fn ctx() -> PeriodContext {
    PeriodContext {
        report_type: "mssp".into(),
        year: 2026,
        period: "03".into(),
        from: NaiveDate::from_ymd_opt(2026, 2, 26).unwrap(),
        to: NaiveDate::from_ymd_opt(2026, 3, 10).unwrap(),
        is_partial: true,
        ingested_at: "2026-03-12T00:00:00.000000Z".into(),
    }
}

/// Decodes `v` as a sync would and converts it; a panic fails the test with the case.
fn convert(kind: &str, v: Value) -> bool {
    let ts = "2026-03-12T00:00:00.000000Z";
    let run = || -> bool {
        match kind {
            "usage" => serde_json::from_value::<Page<UsageCompany>>(v)
                .map(|p| rows::usage(&ctx(), &p.results).is_ok())
                .unwrap_or(false),
            "companies" => serde_json::from_value::<Page<Company>>(v)
                .map(|p| rows::companies(&ctx(), &p.results).is_ok())
                .unwrap_or(false),
            "totals" => serde_json::from_value::<BillingTotals>(v)
                .map(|t| rows::totals(&ctx(), &t).is_ok())
                .unwrap_or(false),
            "customers" => serde_json::from_value::<Page<Customer>>(v)
                .map(|p| rows::customers("mssp", &p.results, ts).is_ok())
                .unwrap_or(false),
            "engagement" => serde_json::from_value::<Engagement>(v)
                .map(|e| rows::engagement("mssp", "SE-ARN1001", &e, ts).is_ok())
                .unwrap_or(false),
            "churn" => serde_json::from_value::<ChurnRisk>(v)
                .map(|c| rows::churn("mssp", "SE-ARN1001", &c, ts).is_ok())
                .unwrap_or(false),
            "me" => serde_json::from_value::<Me>(v)
                .map(|m| rows::me("mssp", &m, ts).is_ok())
                .unwrap_or(false),
            other => panic!("no such page kind {other}"),
        }
    };
    match catch_unwind(AssertUnwindSafe(run)) {
        Ok(converted) => converted,
        Err(_) => panic!("converting a mutated {kind} page panicked"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutated_api_answers_give_rows_or_an_error_never_a_panic() {
    let sim = sim(|c| c.companies = 6).await;
    let client = connect(&sim, 1, 0.0).await;
    let period = &sim.world().periods(Partnership::Mssp)[0];
    let base = format!("mssp-report/{}/{}", period.year, period.label());
    let customer = sim.world().customers(Partnership::Mssp)[0].id.clone();
    let window = "from=2025-12-01&to=2026-03-10";
    let answers: Vec<(&str, Value)> = vec![
        ("usage", client.get(&format!("{base}/usage")).await.unwrap()),
        (
            "companies",
            client.get(&format!("{base}/companies")).await.unwrap(),
        ),
        (
            "totals",
            client.get(&format!("{base}/usage/billing")).await.unwrap(),
        ),
        ("customers", client.get("customers").await.unwrap()),
        (
            "engagement",
            client
                .get(&format!("customers/{customer}/engagement?{window}"))
                .await
                .unwrap(),
        ),
        (
            "churn",
            client
                .get(&format!("customers/{customer}/churn-risk?{window}"))
                .await
                .unwrap(),
        ),
        ("me", client.get("me").await.unwrap()),
    ];
    client.close().await;
    for (kind, answer) in &answers {
        // Three records of a list are enough, and put the mutations where the rows are made.
        let mut answer = answer.clone();
        if let Some(results) = answer.get_mut("results").and_then(Value::as_array_mut) {
            results.truncate(3);
        }
        let answer = &answer;
        // The real answer converts.
        assert!(
            convert(kind, answer.clone()),
            "the simulator's {kind} answer"
        );
        let mut converted = 0;
        for seed in 0..600u64 {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut v = answer.clone();
            // About 1, 3 or 10 mutations per answer, whatever its size.
            let rate = [1.0, 3.0, 10.0][seed as usize % 3] / nodes(answer) as f64;
            mutate(&mut v, &mut rng, rate);
            let hook = std::panic::take_hook();
            std::panic::set_hook(Box::new(|_| {}));
            let outcome = catch_unwind(AssertUnwindSafe(|| convert(kind, v)));
            std::panic::set_hook(hook);
            match outcome {
                Ok(true) => converted += 1,
                Ok(false) => {}
                Err(_) => panic!("a mutated {kind} answer (seed {seed}, rate {rate}) panicked"),
            }
        }
        // Light mutations still convert often: the test reaches the conversion, not only serde.
        assert!(
            converted > 40,
            "{kind}: only {converted} of 600 mutated answers converted"
        );
    }
}

//! Churn analysis from the lake's own history, against the simulator: `customer_history` after
//! syncs on successive days (the simulator's `today` moved forward over one world).

mod common;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Days, NaiveDate};
use common::*;
use hspq::sim::Partnership;

/// Rows of `sql` as `a|b|c` text, through hspq's engine.
async fn rows(dir: &std::path::Path, sql: &str) -> Vec<String> {
    let engine = hspq::query::Engine::open(&dir.into()).await.unwrap();
    let mut stmt = engine
        .connection()
        .prepare(&format!(
            "select concat_ws('|', *columns(*)) from ({sql}) order by 1"
        ))
        .unwrap();
    let out = stmt
        .query_map([], |r| r.get::<_, Option<String>>(0))
        .unwrap();
    out.map(|r| r.unwrap().unwrap_or_default()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customer_history_follows_the_customer_list_across_syncs_on_successive_days() {
    let dir = tempfile::tempdir().unwrap();
    let days: Vec<NaiveDate> = [240, 120, 30, 0]
        .into_iter()
        .map(|back| today() - Days::new(back))
        .collect();
    // Which customers the API listed on each sync's day, as the simulator knows them.
    let mut listed: Vec<BTreeSet<String>> = Vec::new();
    for day in &days {
        let sim = sim(|c| {
            c.today = *day;
            c.companies = 150;
        })
        .await;
        ingest_lake(&sim, dir.path(), &[MSSP_KEY]).await;
        listed.push(
            sim.world()
                .customers(Partnership::Mssp)
                .iter()
                .map(|c| c.id.clone())
                .collect(),
        );
    }
    // The presences, walked day by day.
    let mut expected: BTreeMap<(String, NaiveDate), (NaiveDate, Option<NaiveDate>)> =
        BTreeMap::new();
    let mut open: BTreeMap<String, NaiveDate> = BTreeMap::new();
    for (day, ids) in days.iter().zip(&listed) {
        for (id, from) in open.clone() {
            if !ids.contains(&id) {
                let (to, _) = expected[&(id.clone(), from)];
                expected.insert((id.clone(), from), (to, Some(*day)));
                open.remove(&id);
            }
        }
        for id in ids {
            let from = *open.entry(id.clone()).or_insert(*day);
            expected.insert((id.clone(), from), (*day, None));
        }
    }
    let want: Vec<String> = expected
        .iter()
        .map(|((id, from), (to, gone))| {
            format!(
                "mssp|{id}|{from}|{to}{}",
                gone.map(|g| format!("|{g}")).unwrap_or_default()
            )
        })
        .collect();
    let got = rows(
        dir.path(),
        "select report_type, security_center_id, seen_from, seen_to, gone_at from customer_history",
    )
    .await;
    let mut want = want;
    want.sort();
    assert_eq!(got, want);
    let gone = expected.values().filter(|(_, g)| g.is_some()).count();
    let joined = expected.keys().filter(|(_, from)| *from != days[0]).count();
    assert!(
        gone >= 2 && joined >= 2,
        "the world must have customers leaving ({gone}) and joining ({joined}) between the syncs"
    );
}

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
    let partnerships = [Partnership::Mssp, Partnership::Reseller];
    // Which customers the API listed on each sync's day, as the simulator knows them.
    let mut listed: BTreeMap<&str, Vec<BTreeSet<String>>> = BTreeMap::new();
    for day in &days {
        let sim = sim(|c| {
            c.today = *day;
            c.companies = 200;
        })
        .await;
        ingest_lake(&sim, dir.path(), &[MSSP_KEY, RESELLER_KEY]).await;
        for p in partnerships {
            listed.entry(p.report_type()).or_default().push(
                sim.world()
                    .customers(p)
                    .iter()
                    .map(|c| c.id.clone())
                    .collect(),
            );
        }
    }
    let mut want = Vec::new();
    let mut reseller_gone = Vec::new();
    for (rt, lists) in &listed {
        // The presences, walked day by day.
        let mut expected: BTreeMap<(String, NaiveDate), (NaiveDate, Option<NaiveDate>)> =
            BTreeMap::new();
        let mut open: BTreeMap<String, NaiveDate> = BTreeMap::new();
        for (day, ids) in days.iter().zip(lists) {
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
        let gone = expected.values().filter(|(_, g)| g.is_some()).count();
        let joined = expected.keys().filter(|(_, from)| *from != days[0]).count();
        assert!(
            gone >= 2 && joined >= 2,
            "{rt}: the world must have customers leaving ({gone}) and joining ({joined}) between the syncs"
        );
        for ((id, from), (to, gone)) in &expected {
            want.push(format!(
                "{rt}|{id}|{from}|{to}{}",
                gone.map(|g| format!("|{g}")).unwrap_or_default()
            ));
            if let (Some(g), "reseller") = (gone, *rt) {
                reseller_gone.push(format!("{id}|{g}|{to}"));
            }
        }
    }
    want.sort();
    let got = rows(
        dir.path(),
        "select report_type, security_center_id, seen_from, seen_to, gone_at from customer_history",
    )
    .await;
    assert_eq!(got, want);
    // Reseller churn events are the presences that ended: the API itself has forgotten them.
    reseller_gone.sort();
    let events = rows(
        dir.path(),
        "select security_center_id, left_on, last_seen from churn_events \
         where report_type = 'reseller' and how = 'gone from the customer list'",
    )
    .await;
    assert_eq!(events, reseller_gone);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_events_hold_every_mssp_company_that_left_within_the_history() {
    let sim = sim(|c| c.companies = 400).await;
    let dir = tempfile::tempdir().unwrap();
    ingest_lake(&sim, dir.path(), &[MSSP_KEY]).await;
    let w = sim.world();
    let mut periods = w.periods(Partnership::Mssp);
    periods.reverse();
    let last = periods.len() - 1;
    // Walked from the simulator's own eligibility: a company eligible in a period and not in the
    // next has left then; one archived today and eligible in the latest period left during it.
    let mut want = Vec::new();
    for c in w.companies(Partnership::Mssp) {
        let eligible: Vec<bool> = periods
            .iter()
            .map(|p| {
                w.eligible(Partnership::Mssp, p)
                    .iter()
                    .any(|e| e.id == c.id)
            })
            .collect();
        for i in 0..periods.len() {
            let ends = eligible[i] && (i == last || !eligible[i + 1]);
            let archived = !c.active_on(w.today);
            if !ends || (i == last && !archived) {
                continue;
            }
            let how = if archived && !eligible[i + 1..].iter().any(|e| *e) {
                "archived"
            } else {
                "dropped from eligibility"
            };
            let left_on = (i < last).then(|| periods[i + 1].from.to_string());
            want.push((
                c.id.clone(),
                periods[i].year,
                periods[i].label(),
                how,
                left_on,
            ));
            // The truth the lake cannot see: it left after the period began, and by left_on.
            let gone = c.inactive_from.expect("a company that left has an end");
            assert!(gone > periods[i].from, "{}", c.id);
            if i < last {
                assert!(gone <= periods[i + 1].from, "{}", c.id);
            }
        }
    }
    want.sort();
    let got = rows(
        dir.path(),
        "select security_center_id, last_billed_period, how, left_on from churn_events",
    )
    .await;
    let mut got: Vec<_> = got
        .iter()
        .map(|r| {
            let f: Vec<&str> = r.split('|').collect();
            let (year, period) = f[1].split_once('-').unwrap();
            (
                f[0].to_string(),
                year.parse::<i32>().unwrap(),
                period.to_string(),
                f[2].to_string(),
                f[3].to_string(),
            )
        })
        .collect();
    got.sort();
    assert!(
        want.len() >= 5,
        "the world must have leavers: {}",
        want.len()
    );
    assert_eq!(got.len(), want.len(), "{got:?}\n{want:?}");
    for (g, (id, year, period, how, left_on)) in got.iter().zip(&want) {
        assert_eq!((&g.0, g.1, &g.2, g.3.as_str()), (id, *year, period, *how));
        if let Some(day) = left_on {
            assert_eq!(&g.4, day, "{id}");
        }
    }
    // The units lost: the company's billing in its last billed period, as the API reported it.
    let units = rows(
        dir.path(),
        "select e.last_billing_units = (select sum(billing_value) from billing b \
           where b.report_type = 'mssp' and b.security_center_id = e.security_center_id \
             and b.year || '-' || b.period = e.last_billed_period) from churn_events e",
    )
    .await;
    assert!(units.iter().all(|u| u == "true"), "{units:?}");
}

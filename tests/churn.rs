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
        "select security_center_id, left_on, last_seen from churn_departures \
         where report_type = 'reseller' and how = 'gone from the customer list'",
    )
    .await;
    assert_eq!(events, reseller_gone);
}

/// The simulator's MSSP periods, oldest first.
fn mssp_periods(w: &hspq::sim::World) -> Vec<hspq::sim::world::Period> {
    let mut periods = w.periods(Partnership::Mssp);
    periods.reverse();
    periods
}

/// Whether company `id` was eligible in each of `periods`, by the simulator's own lists.
fn mssp_eligibility(
    w: &hspq::sim::World,
    periods: &[hspq::sim::world::Period],
    id: &str,
) -> Vec<bool> {
    periods
        .iter()
        .map(|p| w.eligible(Partnership::Mssp, p).iter().any(|e| e.id == id))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_events_hold_every_mssp_company_that_left_within_the_history() {
    let sim = sim(|c| c.companies = 400).await;
    let dir = tempfile::tempdir().unwrap();
    ingest_lake(&sim, dir.path(), &[MSSP_KEY]).await;
    let w = sim.world();
    let periods = mssp_periods(w);
    let last = periods.len() - 1;
    // Walked from the simulator's own eligibility: a company eligible in a period and not in the
    // next has left then; one archived today and eligible in the latest period left during it.
    let mut want = Vec::new();
    for c in w.companies(Partnership::Mssp) {
        let eligible = mssp_eligibility(w, &periods, &c.id);
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
        "select security_center_id, last_billed_period, how, left_on from churn_departures",
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
             and b.year || '-' || b.period = e.last_billed_period) from churn_departures e",
    )
    .await;
    assert!(units.iter().all(|u| u == "true"), "{units:?}");
    // None came back (this world has no pauses): a departure is a leaving once 100 days passed
    // by the last usage day, too early to tell before; churn_events are the leavings.
    let known: NaiveDate = rows(
        dir.path(),
        "select max(date) from daily_usage where report_type = 'mssp'",
    )
    .await[0]
        .parse()
        .unwrap();
    let kinds = rows(
        dir.path(),
        "select security_center_id, left_on, kind, returned_on is null from churn_departures",
    )
    .await;
    let mut leavings = Vec::new();
    for k in &kinds {
        let f: Vec<&str> = k.split('|').collect();
        let left_on: NaiveDate = f[1].parse().unwrap();
        let want = if left_on + Days::new(100) <= known {
            "leaving"
        } else {
            "open"
        };
        assert_eq!((f[2], f[3]), (want, "true"), "{k}");
        if want == "leaving" {
            leavings.push(format!("{}|{}", f[0], f[1]));
        }
    }
    assert!(
        kinds.len() > leavings.len() && leavings.len() >= 5,
        "both kinds: {kinds:?}"
    );
    let events = rows(
        dir.path(),
        "select security_center_id, left_on from churn_events",
    )
    .await;
    assert_eq!(events, leavings);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mssp_company_that_pauses_and_returns_is_paused_not_a_leaving() {
    let sim = sim(|c| {
        c.companies = 200;
        c.pauses = 0.5;
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    ingest_lake(&sim, dir.path(), &[MSSP_KEY]).await;
    let w = sim.world();
    let got = rows(
        dir.path(),
        "select security_center_id, left_on, kind, coalesce(cast(returned_on as varchar), '') \
         from churn_departures where report_type = 'mssp'",
    )
    .await;
    let events: BTreeSet<String> = rows(
        dir.path(),
        "select security_center_id || '|' || left_on from churn_events where report_type = 'mssp'",
    )
    .await
    .into_iter()
    .collect();
    let mut paused = 0;
    for row in &got {
        let f: Vec<&str> = row.split('|').collect();
        let (id, left_on) = (f[0], f[1].parse::<NaiveDate>().unwrap());
        let c = w
            .companies(Partnership::Mssp)
            .iter()
            .find(|c| c.id == id)
            .unwrap();
        // The truth: a departure within the company's pause came back; any other is its end.
        let in_pause = c
            .paused
            .is_some_and(|(stop, back)| stop <= left_on && left_on <= back);
        if in_pause && f[3].is_empty() {
            // Paused today: not back yet, and too early to call it a leaving.
            assert_eq!(f[2], "open", "{row}: paused {:?}", c.paused);
        } else if in_pause {
            let (_, back) = c.paused.unwrap();
            assert_eq!(f[2], "paused", "{row}: paused {:?}", c.paused);
            let returned: NaiveDate = f[3].parse().unwrap();
            assert!(returned <= back && returned > left_on, "{row}");
            assert!(!events.contains(&format!("{id}|{left_on}")), "{row}");
            paused += 1;
        } else {
            assert_ne!(f[2], "paused", "{row}: no pause {:?}", c.paused);
            assert!(c.inactive_from.is_some() || !c.active_on(w.today), "{row}");
        }
    }
    assert!(
        paused >= 5,
        "the world must show pauses: {paused} in {got:?}"
    );
    // Retention counts a company's end, never its pause: per cohort, the companies whose last
    // eligible period is followed by an end (not a pause) at least 100 days before the last
    // usage day, from the simulator's own lists.
    let known: NaiveDate = rows(
        dir.path(),
        "select max(date) from daily_usage where report_type = 'mssp'",
    )
    .await[0]
        .parse()
        .unwrap();
    let periods = mssp_periods(w);
    let last = periods.len() - 1;
    let mut want: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut paused_members = 0;
    for c in w.companies(Partnership::Mssp) {
        let eligible = mssp_eligibility(w, &periods, &c.id);
        let Some(first) = eligible.iter().position(|e| *e).filter(|f| *f > 0) else {
            continue;
        };
        let end = eligible.iter().rposition(|e| *e).unwrap();
        let left = c.inactive_from.is_some()
            && end < last
            && periods[end + 1].from + Days::new(100) <= known;
        let cohort = want
            .entry(periods[first].from.format("%Y-%m").to_string())
            .or_default();
        cohort.0 += 1;
        cohort.1 += u64::from(left);
        paused_members += usize::from(c.paused.is_some());
    }
    let got: BTreeMap<String, (u64, u64)> = query_json(dir.path(), "retention_cohorts")
        .iter()
        .map(|r| {
            let n = |k: &str| r[k].as_u64().unwrap();
            (
                r["cohort"].as_str().unwrap().to_string(),
                (n("companies"), n("left")),
            )
        })
        .collect();
    assert!(
        paused_members >= 3,
        "cohorts without pauses: {paused_members}"
    );
    assert_eq!(got, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reseller_customer_that_pauses_and_returns_is_paused_not_a_leaving() {
    // One world: a customer's pause, found before any sync, with syncs around it.
    let w = sim(|c| {
        c.companies = 150;
        c.pauses = 0.5;
    })
    .await
    .world()
    .clone();
    let earliest = today() - Days::new(400);
    let (id, stop, back) = w
        .companies(Partnership::Reseller)
        .iter()
        .find_map(|c| {
            let (stop, back) = c.paused?;
            (stop > earliest && back + Days::new(100) <= today())
                .then(|| (c.id.clone(), stop, back))
        })
        .expect("a reseller pause in the last 400 days");
    let dir = tempfile::tempdir().unwrap();
    let days = [
        stop - Days::new(1),
        stop + Days::new(1),
        back + Days::new(1),
        back + Days::new(100),
    ];
    for day in days {
        let sim = sim(|c| {
            c.today = day;
            c.companies = 150;
            c.pauses = 0.5;
        })
        .await;
        ingest_lake(&sim, dir.path(), &[RESELLER_KEY]).await;
    }
    let got = rows(
        dir.path(),
        &format!(
            "select left_on, kind, returned_on from churn_departures \
             where security_center_id = '{id}'"
        ),
    )
    .await;
    assert_eq!(got, [format!("{}|paused|{}", days[1], days[2])]);
    let events = rows(
        dir.path(),
        &format!("select * from churn_events where security_center_id = '{id}'"),
    )
    .await;
    assert!(events.is_empty(), "{events:?}");
    // Whoever left between the first two syncs and never came back: a leaving, 100+ days on.
    let leavers = rows(
        dir.path(),
        &format!(
            "select kind from churn_departures where report_type = 'reseller' \
             and left_on = '{}' and returned_on is null",
            days[1]
        ),
    )
    .await;
    assert!(leavers.iter().all(|k| k == "leaving"), "{leavers:?}");
}

/// The rows `hspq query NAME` prints as JSON over the lake at `dir`.
fn query_json(dir: &std::path::Path, name: &str) -> Vec<serde_json::Value> {
    serde_json::from_slice(&succeeded(hspq_on(
        dir,
        &["query", name, "--format", "json"],
    )))
    .unwrap()
}

/// The components of `churn_scores`, in its column order.
const COMPONENTS: [&str; 7] = [
    "usage_drop",
    "zero_usage",
    "billing_drop",
    "scan_failures",
    "inactive_scanners",
    "activity_drop",
    "scan_gap",
];

/// The default weights, in the order of COMPONENTS.
const WEIGHTS: [f64; 7] = [3.0, 2.0, 1.0, 1.0, 1.0, 1.5, 1.5];

/// A company's scoring: its components, score and units at risk.
type Scored = (Vec<Option<f64>>, f64, i64);

/// `churn_scores(as_of, window, known_by)` per company.
async fn scores(
    dir: &std::path::Path,
    as_of: NaiveDate,
    known_by: NaiveDate,
) -> BTreeMap<String, Scored> {
    let engine = hspq::query::Engine::open(&dir.into()).await.unwrap();
    let sql = format!(
        "select security_center_id, {}, score, units_at_risk \
         from churn_scores(date '{as_of}', 28, date '{known_by}') where report_type = 'mssp'",
        COMPONENTS.join(", ")
    );
    let mut stmt = engine.connection().prepare(&sql).unwrap();
    let rows = stmt
        .query_map([], |r| {
            let comps = (1..=COMPONENTS.len())
                .map(|i| r.get::<_, Option<f64>>(i))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((
                r.get::<_, String>(0)?,
                (
                    comps,
                    r.get::<_, f64>(COMPONENTS.len() + 1)?,
                    r.get::<_, i64>(COMPONENTS.len() + 2)?,
                ),
            ))
        })
        .unwrap();
    rows.map(Result::unwrap).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_churn_score_is_its_formula_over_the_simulators_data_without_ties() {
    let sim = sim(|c| c.companies = 120).await;
    let dir = tempfile::tempdir().unwrap();
    ingest_lake(&sim, dir.path(), &[MSSP_KEY]).await;
    let w = sim.world();
    let p = Partnership::Mssp;
    let window = 28i64;
    let as_of = w.last_report_day();
    let got = scores(dir.path(), as_of, as_of + Days::new(2)).await;
    let periods = w.periods(p);
    let current = periods.iter().find(|x| x.is_current).unwrap();
    let eligible = w.eligible(p, current);
    for c in &eligible {
        if c.active_on(as_of) {
            assert!(got.contains_key(&c.id), "{} is active and not scored", c.id);
        }
    }
    let mut closed: Vec<_> = periods
        .iter()
        .filter(|x| !x.is_partial && x.to < as_of)
        .collect();
    closed.sort_by_key(|x| std::cmp::Reverse(x.to));
    // What the engagement the lake fetched (12 months back from T-1) says.
    let fetched_from = w.last_customer_day() - chrono::Months::new(12) + Days::new(1);
    for (id, (comps, score, units)) in &got {
        let c = eligible
            .iter()
            .find(|c| &c.id == id)
            .unwrap_or_else(|| panic!("{id} scored but not eligible in the current period"));
        let days = |from: i64, to: i64| (from..=to).map(move |back| as_of - Days::new(back as u64));
        let usage_on =
            |d: NaiveDate| -> u64 { c.products.iter().filter_map(|x| w.usage(c, x, d)).sum() };
        let used = days(0, window - 1).filter(|d| usage_on(*d) > 0).count() as f64;
        let drop = |before: f64, after: f64| (1.0 + (before - after) / (before + after)) / 2.0;
        // A drop per product (before, after), averaged over those with any; 0.5 without.
        let mean_drop = |pairs: Vec<(f64, f64)>| {
            let drops: Vec<f64> = pairs
                .into_iter()
                .filter(|(b, a)| b + a > 0.0)
                .map(|(b, a)| drop(b, a))
                .collect();
            if drops.is_empty() {
                0.5
            } else {
                drops.iter().sum::<f64>() / drops.len() as f64
            }
        };
        let usage_in = |x: &str, from: i64, to: i64| -> f64 {
            days(from, to).filter_map(|d| w.usage(c, x, d)).sum::<u64>() as f64
        };
        let usage_drop = mean_drop(
            c.products
                .iter()
                .map(|x| {
                    (
                        usage_in(x, window, 2 * window - 1),
                        usage_in(x, 0, window - 1),
                    )
                })
                .collect(),
        );
        let units_in = |x: &hspq::sim::world::Period, product: &str| -> f64 {
            if !w.eligible(p, x).iter().any(|e| e.id == c.id) {
                return 0.0;
            }
            w.billing(c, x, Some(product))
                .iter()
                .filter_map(|b| b.billing_value)
                .sum::<u64>() as f64
        };
        let billing_drop = mean_drop(
            c.products
                .iter()
                .map(|x| (units_in(closed[1], x), units_in(closed[0], x)))
                .collect(),
        );
        let last: f64 = c.products.iter().map(|x| units_in(closed[0], x)).sum();
        let engagement: Vec<_> = days(0, window - 1)
            .filter(|d| *d >= fetched_from)
            .map(|d| w.engagement(c, d))
            .collect();
        let ratio = |a: u64, b: u64| if b > 0 { a as f64 / b as f64 } else { 0.0 };
        let failed: u64 = engagement.iter().map(|e| e.failed()).sum();
        let scans: u64 = engagement.iter().map(|e| e.failed() + e.succeeded()).sum();
        let inactive: u64 = engagement.iter().map(|e| e.probes_inactive).sum();
        let probes: u64 = engagement
            .iter()
            .map(|e| e.probes_inactive + e.probes_active)
            .sum();
        let active_days = |from: i64, to: i64| {
            days(from, to)
                .filter(|d| *d >= fetched_from)
                .map(|d| w.engagement(c, d))
                .filter(|e| e.failed() + e.succeeded() + e.api_calls > 0)
                .count() as f64
        };
        let (active, active_before) = (
            active_days(0, window - 1),
            active_days(window, 2 * window - 1),
        );
        let last_scan = (0..)
            .map(|back| as_of - Days::new(back))
            .take_while(|d| *d >= fetched_from)
            .find(|d| w.engagement(c, *d).has_scan_activity());
        let gap = last_scan.map_or(0.5, |d| {
            let s = (as_of - d).num_days() as f64;
            s / (s + window as f64)
        });
        let want = [
            usage_drop,
            1.0 - used / window as f64,
            billing_drop,
            ratio(failed, scans),
            ratio(inactive, probes),
            if active_before + active > 0.0 {
                drop(active_before, active)
            } else {
                0.5
            },
            gap,
        ];
        for ((name, want), got) in COMPONENTS.iter().zip(want).zip(comps) {
            let got = got.unwrap_or_else(|| panic!("{id} has no {name}"));
            assert!((got - want).abs() < 1e-9, "{id} {name}: {got} != {want}");
        }
        let weighted: f64 = WEIGHTS.iter().zip(want).map(|(w, x)| w * x).sum();
        let expected = 100.0 * weighted / WEIGHTS.iter().sum::<f64>();
        assert!(
            (score - expected).abs() < 1e-9,
            "{id}: {score} != {expected}"
        );
        assert_eq!(*units as f64, last, "{id}");
    }
    // No ties among companies whose inputs differ.
    let all: Vec<_> = got.values().collect();
    for (i, a) in all.iter().enumerate() {
        for b in &all[i + 1..] {
            if a.1 == b.1 {
                assert_eq!(a.0, b.0, "equal scores from different inputs");
            }
        }
    }
    // churn_risk ranks the companies that bill by score, then units at risk, and the dormant
    // ones (billing nothing) after them, and explains.
    let listed = query_json(dir.path(), "churn_risk");
    let mut ranked: Vec<(&String, &Scored)> = got.iter().collect();
    ranked.sort_by(|a, b| {
        (a.1 .2 == 0)
            .cmp(&(b.1 .2 == 0))
            .then(b.1 .1.total_cmp(&a.1 .1))
            .then(b.1 .2.cmp(&a.1 .2))
            .then(a.0.cmp(b.0))
    });
    for r in &listed {
        let id = r["security_center_id"].as_str().unwrap();
        let dormant = got[id].2 == 0;
        assert_eq!(
            r["status"],
            if dormant { "dormant" } else { "active" },
            "{id}"
        );
    }
    let listed: Vec<String> = listed
        .iter()
        .map(|r| r["security_center_id"].as_str().unwrap().to_string())
        .collect();
    let want: Vec<String> = ranked.iter().map(|(id, _)| id.to_string()).collect();
    assert_eq!(listed, want);
}

/// AUC with ties counting half, and precision, recall, lift in the top `share` of each group.
fn figures(groups: &[Vec<(f64, i64, String, bool)>], share: f64) -> (f64, f64, f64, f64, usize) {
    let all: Vec<&(f64, i64, String, bool)> = groups.iter().flatten().collect();
    let events = all.iter().filter(|r| r.3).count();
    let (mut wins, mut pairs) = (0.0, 0.0);
    for a in all.iter().filter(|r| r.3) {
        for b in all.iter().filter(|r| !r.3) {
            pairs += 1.0;
            wins += if a.0 > b.0 {
                1.0
            } else if a.0 == b.0 {
                0.5
            } else {
                0.0
            };
        }
    }
    let (mut flagged, mut hits) = (0usize, 0usize);
    for g in groups {
        let mut g = g.clone();
        g.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)));
        let k = (share * g.len() as f64).ceil() as usize;
        flagged += k;
        hits += g[..k].iter().filter(|r| r.3).count();
    }
    let base = events as f64 / all.len() as f64;
    let precision = hits as f64 / flagged as f64;
    (
        wins / pairs,
        precision,
        hits as f64 / events as f64,
        precision / base,
        events,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backtest_figures_are_what_the_scores_and_churn_events_give() {
    let sim = sim(|c| c.companies = 300).await;
    let dir = tempfile::tempdir().unwrap();
    ingest_lake(&sim, dir.path(), &[MSSP_KEY]).await;
    let engine = hspq::query::Engine::open(&dir.path().into()).await.unwrap();
    let conn = engine.connection();
    let dates = |sql: &str| -> Vec<NaiveDate> {
        let mut stmt = conn.prepare(sql).unwrap();
        let rows = stmt.query_map([], |r| r.get::<_, String>(0)).unwrap();
        rows.map(|d| d.unwrap().parse().unwrap()).collect()
    };
    let first = dates("select cast(min(date) as varchar) from daily_usage")[0];
    let last = dates("select cast(max(period_to) as varchar) from periods")[0];
    let cutoffs: Vec<NaiveDate> = dates(
        "select distinct cast(period_from as varchar) from periods where report_type = 'mssp' order by 1",
    )
    .into_iter()
    // A whole horizon (60 days) and the grace a leaving needs to be known as one (100) after.
    .filter(|d| *d >= first + Days::new(56) && *d + Days::new(60 + 100) <= last)
    .collect();
    let events: Vec<(String, NaiveDate)> = {
        let mut stmt = conn
            .prepare(
                "select security_center_id, cast(left_on as varchar) from churn_events \
                 where report_type = 'mssp'",
            )
            .unwrap();
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .unwrap();
        rows.map(|r| {
            let (id, on) = r.unwrap();
            (id, on.parse().unwrap())
        })
        .collect()
    };
    let mut by_score = Vec::new();
    let mut by_usage = Vec::new();
    for cutoff in &cutoffs {
        let mut stmt = conn
            .prepare(&format!(
                "select security_center_id, score, units_at_risk \
                 from churn_scores(date '{cutoff}', 28, date '{cutoff}') where report_type = 'mssp'"
            ))
            .unwrap();
        let rows: Vec<(String, f64, i64)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let leaves = |id: &str| {
            events
                .iter()
                .any(|(e, on)| e == id && *on > *cutoff && *on <= *cutoff + Days::new(60))
        };
        // The naive rule, from daily_usage itself: all usage of the last 28 days against the
        // 28 before, as a drop in 0..1 (0.5 unchanged or none).
        let mut stmt = conn
            .prepare(&format!(
                "select security_center_id, \
                   coalesce(sum(usage_value) filter (where date <= date '{cutoff}' - 28), 0), \
                   coalesce(sum(usage_value) filter (where date > date '{cutoff}' - 28), 0) \
                 from daily_usage where report_type = 'mssp' \
                   and date > date '{cutoff}' - 56 and date <= date '{cutoff}' group by 1"
            ))
            .unwrap();
        let totals: BTreeMap<String, (f64, f64)> = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    (r.get::<_, f64>(1)?, r.get::<_, f64>(2)?),
                ))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let naive = |id: &str| match totals.get(id) {
            Some((before, after)) if before + after > 0.0 => {
                (1.0 + (before - after) / (before + after)) / 2.0
            }
            _ => 0.5,
        };
        by_score.push(
            rows.iter()
                .map(|r| (r.1, r.2, r.0.clone(), leaves(&r.0)))
                .collect::<Vec<_>>(),
        );
        by_usage.push(
            rows.iter()
                .map(|r| (naive(&r.0), r.2, r.0.clone(), leaves(&r.0)))
                .collect::<Vec<_>>(),
        );
    }
    let rows = query_json(dir.path(), "churn_backtest");
    assert_eq!(rows.len(), 2, "{rows:?}");
    for (model, groups) in [("churn score", &by_score), ("naive rule", &by_usage)] {
        let row = rows.iter().find(|r| r["model"] == model).unwrap();
        let (auc, precision, recall, lift, n) = figures(groups, 0.1);
        assert!(n >= 10, "too few leavers to test with: {n}");
        assert_eq!(row["cutoffs"], cutoffs.len());
        assert_eq!(row["events"], n);
        let close = |key: &str, want: f64, digits: i32| {
            let got = row[key].as_f64().unwrap();
            let unit = 10f64.powi(-digits);
            assert!((got - want).abs() <= unit, "{model} {key}: {got} != {want}");
        };
        close("auc", auc, 4);
        close("precision_at_k", precision, 4);
        close("recall_at_k", recall, 4);
        close("lift", lift, 2);
        // Under 30 leavers it says the figures are noise; from 30 on, nothing.
        match n {
            0..30 => assert_eq!(
                row["note"],
                format!("only {n} leavers: the figures are noise at this size")
            ),
            _ => assert!(row["note"].is_null(), "{row}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_after_a_cutoff_does_not_change_its_scores() {
    let dir = tempfile::tempdir().unwrap();
    async fn sync_on(dir: &std::path::Path, back: u64) {
        let sim = sim(|c| {
            c.today = today() - Days::new(back);
            c.companies = 150;
        })
        .await;
        ingest_lake(&sim, dir, &[MSSP_KEY]).await;
    }
    // Syncs before the cut-off (so its score uses engagement), and after it.
    sync_on(dir.path(), 200).await;
    sync_on(dir.path(), 150).await;
    let cutoff = today() - Days::new(170);
    let before = scores(dir.path(), cutoff, cutoff).await;
    assert!(before.len() > 50);
    assert!(
        before.values().all(|(c, _, _)| c[3].is_some()),
        "the cut-off's scores use the engagement of the syncs before it"
    );
    sync_on(dir.path(), 100).await;
    sync_on(dir.path(), 0).await;
    let after = scores(dir.path(), cutoff, cutoff).await;
    assert_eq!(before, after);
    // A lake first synced after the cut-off has no engagement of those who left in between
    // (they answer 404): the cut-off is scored without engagement, from usage and billing that
    // exist for leavers and stayers alike, and those agree with the lake synced all along.
    let late = tempfile::tempdir().unwrap();
    sync_on(late.path(), 0).await;
    let first_synced_late = scores(late.path(), cutoff, cutoff).await;
    assert_eq!(
        first_synced_late.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>()
    );
    for (id, (comps, _, units)) in &first_synced_late {
        assert!(
            comps[3..].iter().all(Option::is_none),
            "{id} scored with engagement"
        );
        assert_eq!(&comps[..3], &before[id].0[..3], "{id}");
        assert_eq!(*units, before[id].2, "{id}");
    }
}

/// `churn_labels` rows of a report type: (cutoff, components, the base components, leaves).
fn labels(dir: &std::path::Path) -> Vec<(String, Vec<f64>, bool)> {
    let out = succeeded(hspq_on(
        dir,
        &[
            "sql",
            "select cast(cutoff as varchar) as cutoff, usage_drop, zero_usage, billing_drop, leaves \
             from churn_labels(60, 28, 'mssp')",
            "--format",
            "json",
        ],
    ));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out).unwrap();
    rows.iter()
        .map(|r| {
            (
                r["cutoff"].as_str().unwrap().to_string(),
                ["usage_drop", "zero_usage", "billing_drop"]
                    .iter()
                    .map(|c| r[*c].as_f64().unwrap())
                    .collect(),
                r["leaves"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fitted_weights_are_a_logistic_regression_on_the_lakes_leavers_and_churn_risk_uses_them() {
    let sim = sim(|c| c.companies = 300).await;
    let dir = tempfile::tempdir().unwrap();
    ingest_lake(&sim, dir.path(), &[MSSP_KEY]).await;
    // Too few leavers after the cut-offs to show that fitting beats the default weights: a fit
    // stores nothing, and says why.
    let out = hspq_on(dir.path(), &["churn", "fit"]);
    succeeded(out.clone());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("too few to tell whether it beats the default weights")
            && stderr.contains("nothing stored"),
        "{stderr}"
    );
    assert!(!dir.path().join("churn_weights").exists());
    let out = hspq_on(
        dir.path(),
        &["churn", "fit", "--store-anyway", "--format", "json"],
    );
    let report: Vec<serde_json::Value> = serde_json::from_slice(&succeeded(out.clone())).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("stored all the same (--store-anyway)")
            && stderr.contains("stored in the lake"),
        "{stderr}"
    );
    let fitted = report
        .iter()
        .find(|r| r["weights"] == "fitted")
        .unwrap_or_else(|| panic!("no fitted row: {report:?}\n{stderr}"));
    assert_eq!(fitted["components"], "usage, billing");
    let rows = labels(dir.path());
    let events = rows.iter().filter(|r| r.2).count();
    assert!(events >= hspq::churn::MIN_EVENTS, "{events} leavers");
    assert_eq!(fitted["fitted_on_events"], events);
    // The stored weights are where the penalised log-likelihood is flat: its gradient is zero.
    let stored: Vec<serde_json::Value> = serde_json::from_slice(&succeeded(hspq_on(
        dir.path(),
        &[
            "sql",
            "select component, weight, events, fitted_horizon_days from churn_weights \
             where report_type = 'mssp' and components = 'usage, billing'",
            "--format",
            "json",
        ],
    )))
    .unwrap();
    let weight = |name: &str| {
        stored
            .iter()
            .find(|r| r["component"] == name)
            .unwrap_or_else(|| panic!("no {name} in {stored:?}"))["weight"]
            .as_f64()
            .unwrap()
    };
    let (b0, w) = (
        weight("intercept"),
        [
            weight("usage_drop"),
            weight("zero_usage"),
            weight("billing_drop"),
        ],
    );
    assert!(stored
        .iter()
        .all(|r| r["events"] == events && r["fitted_horizon_days"] == 60));
    let p =
        |x: &[f64]| 1.0 / (1.0 + (-(b0 + w.iter().zip(x).map(|(a, b)| a * b).sum::<f64>())).exp());
    let mut grad = [0.0; 4];
    for (_, x, leaves) in &rows {
        let err = p(x) - if *leaves { 1.0 } else { 0.0 };
        grad[0] += err;
        for j in 0..3 {
            grad[j + 1] += err * x[j];
        }
    }
    for j in 0..3 {
        grad[j + 1] += hspq::churn::RIDGE * w[j];
    }
    // The optimum with every weight at least zero: the gradient vanishes where a weight is
    // free, and would push one held at zero below it.
    assert!(
        grad[0].abs() < 0.05
            && (0..3).all(|j| w[j] >= 0.0
                && if w[j] > 0.0 {
                    grad[j + 1].abs() < 0.05
                } else {
                    grad[j + 1] > -0.05
                }),
        "not at the optimum: gradient {grad:?} at {b0}, {w:?}"
    );
    // Leavers' usage fell: the usage components point towards leaving.
    assert!(w[0] > 0.0 && w[1] > 0.0, "{w:?}");
    // churn_scores and churn_risk now score with them, and say so.
    let today = sim.world().last_report_day();
    let engine = hspq::query::Engine::open(&dir.path().into()).await.unwrap();
    let mut stmt = engine
        .connection()
        .prepare(&format!(
            "select usage_drop, zero_usage, billing_drop, score, weights, components \
             from churn_scores(date '{}', 28, date '{}') where report_type = 'mssp'",
            today - Days::new(60),
            today - Days::new(60),
        ))
        .unwrap();
    let scored: Vec<(Vec<f64>, f64, String, String)> = stmt
        .query_map([], |r| {
            Ok((
                vec![r.get(0)?, r.get(1)?, r.get(2)?],
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(scored.len() > 100);
    for (x, score, weights, components) in &scored {
        assert_eq!(components, "usage, billing");
        assert!(
            (score - 100.0 * p(x)).abs() < 1e-9,
            "{score} != {}",
            100.0 * p(x)
        );
        assert!(
            weights.starts_with("fitted ") && weights.contains(&format!("on {events} leavers")),
            "{weights}"
        );
    }
    let risk = query_json(dir.path(), "churn_risk");
    // Today's scores have engagement, which no cut-off of a first sync had: default weights.
    assert!(
        risk.iter().all(|r| r["weights"] == "default"),
        "{:?}",
        risk[0]
    );
    // --reset goes back to the default weights everywhere.
    succeeded(hspq_on(dir.path(), &["churn", "fit", "--reset"]));
    let stmt = format!(
        "select distinct weights from churn_scores(date '{}', 28, date '{}')",
        today - Days::new(60),
        today - Days::new(60)
    );
    let out = succeeded(hspq_on(dir.path(), &["sql", &stmt, "--format", "csv"]));
    assert_eq!(String::from_utf8_lossy(&out), "weights\ndefault\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn below_thirty_leavers_the_fit_keeps_the_default_weights() {
    let sim = sim(|c| c.companies = 40).await;
    let dir = tempfile::tempdir().unwrap();
    ingest_lake(&sim, dir.path(), &[MSSP_KEY]).await;
    let events = labels(dir.path()).iter().filter(|r| r.2).count();
    assert!(
        events > 0 && events < hspq::churn::MIN_EVENTS,
        "{events} leavers"
    );
    let out = hspq_on(dir.path(), &["churn", "fit", "--format", "json"]);
    let report: Vec<serde_json::Value> = serde_json::from_slice(&succeeded(out.clone())).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{events} leavers at"))
            && stderr.contains("fitting needs 30: the default weights stay"),
        "{stderr}"
    );
    assert!(
        report.iter().all(|r| r["weights"] == "default"),
        "{report:?}"
    );
    let stored = succeeded(hspq_on(
        dir.path(),
        &[
            "sql",
            "select count(*) as n from churn_weights",
            "--format",
            "csv",
        ],
    ));
    assert_eq!(String::from_utf8_lossy(&stored), "n\n0\n");
    let risk = query_json(dir.path(), "churn_risk");
    assert!(!risk.is_empty() && risk.iter().all(|r| r["weights"] == "default"));
    // No lake: an error that says so, and no lake made by it.
    let nowhere = dir.path().join("no-lake");
    let out = hspq_on(&nowhere, &["churn", "fit", "--reset"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no lake at"));
    assert!(!nowhere.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_fit_on_a_lake_a_sync_holds_fails_at_once_naming_it_and_writes_nothing() {
    use hspq::lake::{Lake, LakeWriter, WriterOptions};
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(&dir.path().into()).unwrap();
    let holder = LakeWriter::acquire(&lake, "the-holding-sync", WriterOptions::default())
        .await
        .unwrap();
    let out = hspq_on(dir.path(), &["churn", "fit"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the-holding-sync") && stderr.contains("wait for it to finish"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("scoring every past cut-off"),
        "it failed before fitting: {stderr}"
    );
    assert!(!dir.path().join("churn_weights").exists());
    let latest = common::lake::latest_entry(dir.path()).unwrap();
    assert_eq!(
        latest["run_id"], "the-holding-sync",
        "the log is the holder's"
    );
    holder
        .release(hspq::lake::log::Ending::Finished)
        .await
        .unwrap();
}

/// A tiny lake's tables made by hand in DuckDB, for departures the simulator never makes (its
/// companies do not leave twice; a reseller customer does not come back): MSSP periods from
/// 2025-01 to 2026-06 (26th to 25th), companies eligible in the periods given, usage every day
/// they are, and the derived views over them.
fn hand_made(
    companies: &[(&str, std::ops::Range<u32>, std::ops::Range<u32>)],
) -> duckdb::Connection {
    let conn = duckdb::Connection::open_in_memory().unwrap();
    conn.execute_batch(
        "create table periods(report_type varchar, year bigint, period varchar, period_from date, \
           period_to date, is_current boolean, is_partial boolean);
         create table companies(report_type varchar, year bigint, period varchar, \
           security_center_id varchar, company_name varchar, status varchar);
         create table daily_usage(report_type varchar, year bigint, period varchar, \
           security_center_id varchar, company_name varchar, product varchar, date date, \
           usage_value bigint);
         create table billing(report_type varchar, year bigint, period varchar, period_from date, \
           period_to date, is_partial boolean, security_center_id varchar, company_name varchar, \
           product varchar, billing_value bigint);
         create table customer_history(report_type varchar, security_center_id varchar, \
           company_name varchar, seen_from date, seen_to date, gone_at date);
         insert into periods select 'mssp', year(l), lpad(month(l)::varchar, 2, '0'), \
           (l - interval 6 day)::date, (l + interval 24 day)::date, false, false \
           from (select (date '2025-01-01' + to_months(i::integer))::date as l from range(18) t(i));",
    )
    .unwrap();
    for (id, first, second) in companies {
        for n in first.clone().chain(second.clone()) {
            conn.execute_batch(&format!(
                "insert into companies select report_type, year, period, '{id}', '{id}', 'active' \
                   from periods order by period_from offset {n} limit 1;
                 insert into daily_usage select 'mssp', p.year, p.period, '{id}', '{id}', 'SNS', \
                   d::date, 10 from (select * from periods order by period_from offset {n} limit 1) p, \
                   range(p.period_from, p.period_to + interval 1 day, interval 1 day) r(d);"
            ))
            .unwrap();
        }
    }
    for (_, sql) in hspq::query::views::DERIVED {
        conn.execute_batch(sql).unwrap();
    }
    conn
}

#[test]
fn an_mssp_absence_of_three_periods_is_a_pause_whatever_the_months_and_four_a_leaving() {
    // Absent April to June 2025 (91 days), January to March 2026 (90 days), and August to
    // November 2025 (four periods, 122 days).
    let conn = hand_made(&[
        ("A", 0..3, 6..18),
        ("C", 0..12, 15..18),
        ("L", 0..7, 11..18),
    ]);
    let mut stmt = conn
        .prepare(
            "select security_center_id, returned_on - left_on, kind from churn_departures \
             order by 1",
        )
        .unwrap();
    let got: Vec<(String, i64, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        got,
        [
            ("A".to_string(), 91, "paused".to_string()),
            ("C".to_string(), 90, "paused".to_string()),
            ("L".to_string(), 122, "leaving".to_string()),
        ]
    );
}

#[test]
fn a_returning_reseller_customers_departures_carry_the_billing_before_each() {
    let conn = hand_made(&[]);
    conn.execute_batch(
        "insert into customer_history values
           ('reseller', 'R', 'R', date '2025-06-01', date '2025-07-13', date '2025-07-27'),
           ('reseller', 'R', 'R', date '2025-09-07', date '2025-10-05', date '2025-10-19'),
           ('reseller', 'R', 'R', date '2026-03-01', date '2026-06-12', null);
         insert into billing values
           ('reseller', 2025, '06', date '2025-06-01', date '2025-06-30', false, 'R', 'R', 'SNS', 5),
           ('reseller', 2025, '09', date '2025-09-01', date '2025-09-30', false, 'R', 'R', 'SNS', 7),
           ('reseller', 2026, '05', date '2026-05-01', date '2026-05-31', false, 'R', 'R', 'SNS', 500);",
    )
    .unwrap();
    let mut stmt = conn
        .prepare(
            "select cast(left_on as varchar), last_billed_period, last_billing_units, kind, \
             cast(returned_on as varchar) from churn_departures order by left_on",
        )
        .unwrap();
    let got: Vec<(String, String, i64, String, String)> = stmt
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let row = |a: &str, b: &str, c: i64, d: &str, e: &str| {
        (
            a.to_string(),
            b.to_string(),
            c,
            d.to_string(),
            e.to_string(),
        )
    };
    assert_eq!(
        got,
        [
            row("2025-07-27", "2025-06", 5, "paused", "2025-09-07"),
            // Back after 133 days: won back, its leaving still counts.
            row("2025-10-19", "2025-09", 7, "leaving", "2026-03-01"),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_cohorts_count_what_the_simulators_lists_give_where_nothing_is_censored() {
    let sim = sim(|c| c.companies = 400).await;
    let dir = tempfile::tempdir().unwrap();
    ingest_lake(&sim, dir.path(), &[MSSP_KEY]).await;
    let w = sim.world();
    let periods = mssp_periods(w);
    let last = periods.len() - 1;
    let known: NaiveDate = rows(
        dir.path(),
        "select max(date) from daily_usage where report_type = 'mssp'",
    )
    .await[0]
        .parse()
        .unwrap();
    // From the simulator's own eligibility (this world has no pauses): each company's start
    // (its first period, none for the lake's first), and its leaving (the first period it was
    // no longer eligible in, 100 days or more before the last usage day) or the last day it
    // is known to have been there (the last usage day, or the day it went too recently to tell).
    struct Life {
        started: NaiveDate,
        left: Option<NaiveDate>,
        seen_until: NaiveDate,
    }
    let mut cohorts: BTreeMap<String, Vec<Life>> = BTreeMap::new();
    for c in w.companies(Partnership::Mssp) {
        let eligible = mssp_eligibility(w, &periods, &c.id);
        let Some(first) = eligible.iter().position(|e| *e) else {
            continue;
        };
        if first == 0 {
            continue;
        }
        let gone = (first..last)
            .find(|i| !eligible[i + 1])
            .map(|i| periods[i + 1].from);
        let (left, seen_until) = match gone {
            Some(day) if day + Days::new(100) <= known => (Some(day), day),
            Some(day) => (None, day),
            None if c.active_on(w.today) => (None, known),
            // Archived during the latest period: gone too recently to tell, some day after
            // the period began.
            None => (None, periods[last].from),
        };
        cohorts
            .entry(periods[first].from.format("%Y-%m").to_string())
            .or_default()
            .push(Life {
                started: periods[first].from,
                left,
                seen_until,
            });
    }
    let got = query_json(dir.path(), "retention_cohorts");
    let mut checked = (0, 0);
    for (cohort, lives) in &cohorts {
        let row = got
            .iter()
            .find(|r| r["report_type"] == "mssp" && r["cohort"] == cohort.as_str())
            .unwrap_or_else(|| panic!("no cohort {cohort} in {got:?}"));
        assert_eq!(row["companies"], lives.len() as u64, "{cohort}");
        for k in [1u32, 3, 6] {
            let by = |l: &Life| {
                l.started
                    .checked_add_months(chrono::Months::new(k))
                    .unwrap()
            };
            // Nothing censored before k months: each left, or was seen for k months.
            if !lives
                .iter()
                .all(|l| l.left.is_some() || l.seen_until >= by(l))
            {
                continue;
            }
            let left = lives
                .iter()
                .filter(|l| l.left.is_some_and(|d| d <= by(l)))
                .count();
            let want = 100.0 * (1.0 - left as f64 / lives.len() as f64);
            let field = format!("still_after_{k}m_pct");
            let have = row[&field]
                .as_f64()
                .unwrap_or_else(|| panic!("{cohort} {field}: {row}"));
            assert!(
                (have - want).abs() < 0.051,
                "{cohort} {field}: {have} != {want}"
            );
            checked.0 += 1;
            checked.1 += usize::from(left > 0);
        }
    }
    assert!(
        checked.0 >= 6 && checked.1 >= 2,
        "too few uncensored cohorts with leavers to check: {checked:?} of {cohorts:?}",
        cohorts = cohorts.keys().collect::<Vec<_>>()
    );
    // The lake's first period's companies form no cohort; every company that came after does.
    let counted: u64 = got
        .iter()
        .filter(|r| r["report_type"] == "mssp")
        .map(|r| r["companies"].as_u64().unwrap())
        .sum();
    assert_eq!(
        counted,
        cohorts.values().map(|l| l.len() as u64).sum::<u64>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_risk_scores_each_report_type_on_its_own_last_report_day() {
    // The MSSP key synced today, the reseller key 45 days later: each is scored on its own last
    // report day, so the MSSP companies are not left without a period to be scored in.
    let dir = tempfile::tempdir().unwrap();
    let now = sim(|c| c.companies = 60).await;
    ingest_lake(&now, dir.path(), &[MSSP_KEY]).await;
    let later = sim(|c| {
        c.companies = 60;
        c.today = today() + Days::new(45);
    })
    .await;
    ingest_lake(&later, dir.path(), &[RESELLER_KEY]).await;
    let last_day = |rt: &str| match rt {
        "reseller" => later.world().last_report_day(),
        _ => now.world().last_report_day(),
    };
    let risk = query_json(dir.path(), "churn_risk");
    for rt in ["mssp", "reseller"] {
        let mine: Vec<&serde_json::Value> =
            risk.iter().filter(|r| r["report_type"] == rt).collect();
        assert!(mine.len() > 20, "{rt}: {} companies scored", mine.len());
        let day = last_day(rt).to_string();
        assert!(
            mine.iter().all(|r| r["as_of"] == day.as_str()),
            "{rt} scored on {:?}, not {day}",
            mine[0]["as_of"]
        );
    }
    // as_of still scores every report type on the day it names.
    let day = now.world().last_report_day() - Days::new(10);
    let on_day: Vec<serde_json::Value> = serde_json::from_slice(&succeeded(hspq_on(
        dir.path(),
        &[
            "query",
            "churn_risk",
            "--param",
            &format!("as_of={day}"),
            "--format",
            "json",
        ],
    )))
    .unwrap();
    assert!(on_day.iter().any(|r| r["report_type"] == "mssp"));
    assert!(on_day
        .iter()
        .all(|r| r["as_of"] == day.to_string().as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_company_scored_above_one_without_any_sign_names_a_reason() {
    let sim = sim(|c| c.companies = 200).await;
    let dir = tempfile::tempdir().unwrap();
    ingest_lake(&sim, dir.path(), &[MSSP_KEY]).await;
    let risk = query_json(dir.path(), "churn_risk");
    // A company without any sign: every drop at 0.5 (no change), nothing else; the default
    // weights (usage 3, days without usage 2, billing 1; scan failures 1, inactive scanners 1,
    // activity 1.5, scan gap 1.5).
    let base = |components: &str| match components.contains("engagement") {
        true => 100.0 * (3.0 * 0.5 + 0.5 + 1.5 * 0.5 + 1.5 * 0.5) / 11.0,
        false => 100.0 * (3.0 * 0.5 + 0.5) / 6.0,
    };
    let above: Vec<&serde_json::Value> = risk
        .iter()
        .filter(|r| r["score"].as_f64().unwrap() > base(r["components"].as_str().unwrap()) + 0.1)
        .collect();
    assert!(above.len() >= 5, "{} above", above.len());
    let silent: Vec<_> = above
        .iter()
        .filter(|r| r["reasons"].as_str().unwrap_or("").is_empty())
        .map(|r| (&r["rank"], &r["score"], &r["components"]))
        .collect();
    assert!(
        silent.is_empty(),
        "ranked above no sign, no reason: {silent:?}"
    );
    // Some are named by a sign below its threshold, in the same words.
    let small = above.iter().any(|r| {
        let reasons = r["reasons"].as_str().unwrap();
        let pct = |prefix: &str| {
            reasons
                .strip_prefix(prefix)
                .and_then(|rest| rest.trim_end_matches('%').parse::<f64>().ok())
        };
        let idle = reasons
            .strip_prefix("no usage on ")
            .and_then(|rest| rest.split(' ').next()?.parse::<u32>().ok());
        pct("usage down ").is_some_and(|p| p < 20.0)
            || pct("billing down ").is_some_and(|p| p < 10.0)
            || idle.is_some_and(|days| days < 14)
    });
    let named: Vec<(&serde_json::Value, &serde_json::Value)> =
        above.iter().map(|r| (&r["score"], &r["reasons"])).collect();
    assert!(
        small,
        "no company named by a sign below its threshold: {named:?}"
    );
}

//! `hspq ingest` end to end against the in-process simulator: every dataset of the lake is
//! compared row for row with the simulator's own data, read back by a real DuckDB from the
//! real Parquet files; incremental runs, faults, bad answers, the lock, and secrets.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use chrono::{Days, Months, NaiveDate};
use common::*;
use hspq::api::{ClientConfig, Credentials};
use hspq::ingest::plan::Windows;
use hspq::ingest::{IngestError, IngestOptions, IngestSummary};
use hspq::sim::world::{Company, Period, World};
use hspq::sim::{Fault, FaultRates, Partnership, Simulator};

fn options(sim: &Simulator, data: &Path, api_key: &str, sessions: usize) -> IngestOptions {
    let mut client: ClientConfig = config(sim, sessions, 0.0);
    client.token_cache = None;
    IngestOptions {
        data: data.display().to_string(),
        client,
        creds: Credentials::new(ORG_KEY, api_key).unwrap(),
        windows: Windows {
            history_months: 12,
            lookback_days: 7,
            full: false,
        },
        dry_run: false,
        quiet: true,
    }
}

async fn ingest(sim: &Simulator, data: &Path, api_key: &str) -> Result<IngestSummary, IngestError> {
    hspq::ingest::run(options(sim, data, api_key, 2)).await
}

/// Rows of a dataset as text, one column expression per field, sorted.
fn lake_rows(dir: &Path, dataset: &str, columns: &[&str]) -> Vec<String> {
    let conn = duckdb::Connection::open_in_memory().unwrap();
    let exprs: Vec<String> = columns
        .iter()
        .map(|c| format!("coalesce(cast({c} as varchar), '∅')"))
        .collect();
    let sql = format!(
        "select concat_ws('|', {}) from read_parquet('{}/{dataset}/**/*.parquet', union_by_name = true) order by 1",
        exprs.join(", "),
        dir.display()
    );
    let mut stmt = conn.prepare(&sql).unwrap();
    let rows = stmt.query_map([], |r| r.get::<_, String>(0)).unwrap();
    rows.map(Result::unwrap).collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or("∅".to_string(), |x| x.to_string())
}

fn eligible_periods(w: &World, p: Partnership) -> Vec<(Period, Vec<&Company>)> {
    w.periods(p)
        .into_iter()
        .map(|x| {
            let e = w.eligible(p, &x);
            (x, e)
        })
        .collect()
}

/// The engagement window of a first sync: 12 months up to T−1.
fn first_window(w: &World) -> (NaiveDate, NaiveDate) {
    let last = w.last_customer_day();
    (last - Months::new(12) + Days::new(1), last)
}

fn data_days(w: &World, c: &Company, (from, to): (NaiveDate, NaiveDate)) -> Vec<NaiveDate> {
    from.max(w.history_start())
        .iter_days()
        .take_while(|d| *d <= to.min(w.last_customer_day()))
        .filter(|d| c.active_on(*d))
        .collect()
}

/// Checks every dataset of a lake written with `partnership`'s key against the world.
fn assert_lake_matches_world(dir: &Path, w: &World, p: Partnership, customers: bool) {
    let rt = p.report_type();
    // periods
    let want: Vec<String> = w
        .periods(p)
        .iter()
        .map(|x| {
            format!(
                "{rt}|{}|{}|{}|{}|{}|{}|{}|{}",
                x.year,
                x.label(),
                x.from,
                x.to,
                x.is_current,
                x.is_partial,
                w.eligible(p, x).len(),
                w.period_products(p, x).join(",")
            )
        })
        .collect();
    let got = lake_rows(
        dir,
        "periods",
        &[
            "report_type",
            "year",
            "period",
            "period_from",
            "period_to",
            "is_current",
            "is_partial",
            "eligible_company_count",
            "array_to_string(products, ',')",
        ],
    );
    assert_eq!(got, sorted(want), "periods");

    // companies, billing, daily_usage, billing_totals
    let (mut companies, mut billing, mut daily, mut totals) = (vec![], vec![], vec![], vec![]);
    for (x, eligible) in eligible_periods(w, p) {
        let key = format!("{rt}|{}|{}", x.year, x.label());
        for c in &eligible {
            let status = match p {
                Partnership::Mssp if c.active_on(w.today) => "active",
                Partnership::Mssp => "archived",
                Partnership::Reseller => "active",
            };
            companies.push(format!(
                "{key}|{}|{}|{status}|{}",
                c.id,
                c.name,
                c.products.join(",")
            ));
            for b in w.billing(c, &x, None) {
                billing.push(format!(
                    "{key}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}",
                    x.from,
                    x.to,
                    x.is_partial,
                    c.id,
                    c.name,
                    b.product,
                    opt(b.billing_value),
                    opt(b.billing_date),
                    opt(b.last_scan_date),
                    opt(b.null_reason)
                ));
            }
            for d in w.daily(c, &x, None) {
                daily.push(format!(
                    "{key}|{}|{}|{}|{}|{}",
                    c.id, c.name, d.product, d.date, d.usage_value
                ));
            }
        }
        if p == Partnership::Mssp {
            for prod in w.period_products(p, &x) {
                let values: Vec<Option<u64>> = eligible
                    .iter()
                    .map(|c| w.billing(c, &x, Some(prod))[0].billing_value)
                    .collect();
                let billed: Vec<u64> = values.iter().flatten().copied().collect();
                totals.push(format!(
                    "{key}|{prod}|{}|{}|{}|{}",
                    billed.iter().sum::<u64>(),
                    billed.len(),
                    values.len() - billed.len(),
                    eligible.len()
                ));
            }
        }
    }
    let period_cols = ["report_type", "year", "period"];
    let cols = |extra: &[&'static str]| -> Vec<&'static str> {
        period_cols.iter().chain(extra).copied().collect()
    };
    assert_eq!(
        lake_rows(
            dir,
            "companies",
            &cols(&[
                "security_center_id",
                "company_name",
                "status",
                "array_to_string(products, ',')"
            ])
        ),
        sorted(companies),
        "companies"
    );
    assert_eq!(
        lake_rows(
            dir,
            "billing",
            &cols(&[
                "period_from",
                "period_to",
                "is_partial",
                "security_center_id",
                "company_name",
                "product",
                "billing_value",
                "billing_date",
                "last_scan_date",
                "null_reason"
            ])
        ),
        sorted(billing),
        "billing"
    );
    let got_daily = lake_rows(
        dir,
        "daily_usage",
        &cols(&[
            "security_center_id",
            "company_name",
            "product",
            "date",
            "usage_value",
        ]),
    );
    assert!(got_daily.len() > 1000, "{} daily rows", got_daily.len());
    assert_eq!(got_daily, sorted(daily), "daily_usage");
    if p == Partnership::Mssp {
        assert_eq!(
            lake_rows(
                dir,
                "billing_totals",
                &cols(&[
                    "product",
                    "billing_total",
                    "company_count",
                    "null_company_count",
                    "eligible_company_count"
                ])
            ),
            sorted(totals),
            "billing_totals"
        );
    }

    if !customers {
        for ds in ["customers", "engagement", "churn"] {
            assert!(
                !dir.join(ds).exists(),
                "{ds} written without customers:read"
            );
        }
        return;
    }
    let active = w.customers(p);
    let want: Vec<String> = active
        .iter()
        .map(|c| format!("{rt}|{}|{}|{}", c.id, c.name, c.products.join(",")))
        .collect();
    assert_eq!(
        lake_rows(
            dir,
            "customers",
            &[
                "report_type",
                "security_center_id",
                "company_name",
                "array_to_string(products, ',')"
            ]
        ),
        sorted(want),
        "customers"
    );
    let (mut engagement, mut churn) = (vec![], vec![]);
    for c in &active {
        for d in data_days(w, c, first_window(w)) {
            let e = w.engagement(c, d);
            let scans = e.has_scan_activity();
            let health = e.has_scanner_health();
            let api = e.api_calls > 0;
            let pick = |listed: bool, v: u64| if listed { v.to_string() } else { "∅".into() };
            if scans || health || api {
                engagement.push(format!(
                    "{rt}|{}|{d}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}",
                    c.id,
                    d.format("%Y-%m"),
                    pick(scans, e.sns_scans_succeeded),
                    pick(scans, e.sns_scans_failed),
                    pick(scans, e.was_scans_succeeded),
                    pick(scans, e.was_scans_failed),
                    pick(scans, e.cs_scans_succeeded),
                    pick(scans, e.cs_scans_failed),
                    pick(health, e.probes_active),
                    pick(health, e.probes_inactive),
                    pick(api, e.api_calls),
                ));
            }
            let row = |indicator: &str, rest: String| {
                format!("{rt}|{}|{indicator}|{d}|{}|{rest}", c.id, d.format("%Y-%m"))
            };
            for prod in &c.products {
                if let Some(v) = w.usage(c, prod, d).filter(|v| *v > 0) {
                    churn.push(row("usage_trend", format!("{prod}|{v}|∅|∅|∅|∅|∅|∅|∅")));
                }
            }
            if scans {
                churn.push(row(
                    "scan_failures",
                    format!(
                        "∅|∅|{}|{}|{:.2}|∅|∅|∅|∅",
                        e.succeeded(),
                        e.failed(),
                        World::failure_ratio(&e)
                    ),
                ));
            }
            if e.probes_inactive > 0 {
                churn.push(row(
                    "inactive_scanners",
                    format!("∅|∅|∅|∅|∅|{}|{}|∅|∅", e.probes_active, e.probes_inactive),
                ));
            }
            if !scans || !api {
                churn.push(row("zero_activity", format!("∅|∅|∅|∅|∅|∅|∅|{scans}|{api}")));
            }
        }
    }
    let metric_cols = [
        "report_type",
        "security_center_id",
        "date",
        "month",
        "sns_scans_succeeded",
        "sns_scans_failed",
        "was_scans_succeeded",
        "was_scans_failed",
        "cs_scans_succeeded",
        "cs_scans_failed",
        "probes_active",
        "probes_inactive",
        "api_calls",
    ];
    let got = lake_rows(dir, "engagement", &metric_cols);
    assert!(got.len() > 1000, "{} engagement rows", got.len());
    assert_eq!(got, sorted(engagement), "engagement");
    let churn_cols = [
        "report_type",
        "security_center_id",
        "indicator",
        "date",
        "month",
        "product",
        "usage_value",
        "total_succeeded",
        "total_failed",
        "printf('%.2f', failure_ratio)",
        "probes_active",
        "probes_inactive",
        "has_scans",
        "has_api_calls",
    ];
    assert_eq!(lake_rows(dir, "churn", &churn_cols), sorted(churn), "churn");
}

/// Every byte of every file under `dir`, as text where possible.
fn all_text(dir: &Path) -> String {
    let mut out = String::new();
    for entry in walk(dir) {
        out.push_str(&String::from_utf8_lossy(&std::fs::read(entry).unwrap()));
    }
    out
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

fn parquet_files(dir: &Path) -> BTreeSet<String> {
    walk(dir)
        .into_iter()
        .map(|p| p.strip_prefix(dir).unwrap().display().to_string())
        .filter(|p| !p.starts_with("_hspq"))
        .collect()
}

fn manifest_files(dir: &Path) -> BTreeSet<String> {
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("_hspq/manifest.json")).unwrap()).unwrap();
    m["files"].as_object().unwrap().keys().cloned().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mssp_key_with_customers_mirrors_every_dataset_row_for_row() {
    let sim = sim(|c| c.companies = 25).await;
    let lake = tempfile::tempdir().unwrap();
    let summary = ingest(&sim, lake.path(), MSSP_KEY).await.unwrap();
    assert_eq!(summary.report_type, "mssp");
    assert_eq!(summary.periods_fetched, 24);
    assert!(summary.warnings.is_empty(), "{:?}", summary.warnings);
    assert_lake_matches_world(lake.path(), sim.world(), Partnership::Mssp, true);
    // The manifest lists exactly the files on disk; nothing else is visible.
    assert_eq!(parquet_files(lake.path()), manifest_files(lake.path()));
    // me holds no key; no file holds a key or a token.
    let me = lake_rows(
        lake.path(),
        "me",
        &[
            "report_type",
            "api_key_prefix",
            "array_to_string(scopes, ',')",
        ],
    );
    assert_eq!(
        me,
        vec!["mssp|hsp_simmssp0|me:read,mssp-report:read,customers:read"]
    );
    let text = all_text(lake.path());
    for secret in [ORG_KEY, MSSP_KEY, "pps_"] {
        assert!(!text.contains(secret), "{secret} is in the lake");
    }
    let runs = lake_rows(
        lake.path(),
        "sync_runs",
        &["status", "error", "rows_written > 0", "requests > 0"],
    );
    assert_eq!(runs, vec!["succeeded|∅|true|true"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reseller_key_without_customers_mirrors_its_report_only() {
    let sim = sim(|c| c.companies = 20).await;
    let lake = tempfile::tempdir().unwrap();
    let key = "hsp_simresl1_dummy_report";
    let summary = ingest(&sim, lake.path(), key).await.unwrap();
    assert_eq!(
        (summary.report_type.as_str(), summary.customers_fetched),
        ("reseller", 0)
    );
    assert_lake_matches_world(lake.path(), sim.world(), Partnership::Reseller, false);
    assert!(
        !lake.path().join("billing_totals").exists(),
        "the reseller API has no totals"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reseller_key_with_customers_mirrors_customers_too() {
    let sim = sim(|c| c.companies = 15).await;
    let lake = tempfile::tempdir().unwrap();
    ingest(&sim, lake.path(), RESELLER_KEY).await.unwrap();
    assert_lake_matches_world(lake.path(), sim.world(), Partnership::Reseller, true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_fetches_only_the_current_period_and_two_requests_per_customer() {
    let sim = sim(|c| c.companies = 30).await;
    let lake = tempfile::tempdir().unwrap();
    ingest(&sim, lake.path(), MSSP_KEY).await.unwrap();
    let files_before = manifest_files(lake.path());
    sim.clear_requests();
    let summary = ingest(&sim, lake.path(), MSSP_KEY).await.unwrap();
    let gets: Vec<String> = sim
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET")
        .map(|r| r.uri)
        .collect();
    let customers = sim.world().customers(Partnership::Mssp).len();
    let current = &sim.world().periods(Partnership::Mssp)[0];
    let current_prefix = format!("/v1/mssp-report/{}/{}", current.year, current.label());
    let period_calls = gets
        .iter()
        .filter(|u| u.starts_with(&current_prefix))
        .count();
    // Detail, companies, usage (one page each at limit=1000) and the totals.
    assert_eq!(period_calls, 4, "{gets:#?}");
    assert_eq!(
        gets.iter().filter(|u| u.contains("/engagement?")).count(),
        customers
    );
    assert_eq!(
        gets.iter().filter(|u| u.contains("/churn-risk?")).count(),
        customers
    );
    // Plus /me, the period list and the customer list: nothing else.
    assert_eq!(gets.len(), 4 + 2 * customers + 3, "{gets:#?}");
    assert_eq!(summary.periods_fetched, 1);
    // Engagement was asked from the last `to` minus the lookback.
    let last = sim.world().last_customer_day();
    let from = last - Days::new(7);
    assert!(
        gets.iter()
            .any(|u| u.ends_with(&format!("engagement?from={from}&to={last}"))),
        "{gets:#?}"
    );
    // Same data as before, one version of each row.
    assert_lake_matches_world(lake.path(), sim.world(), Partnership::Mssp, true);
    let files_after = manifest_files(lake.path());
    assert!(
        files_after.iter().any(|f| !files_before.contains(f)),
        "re-fetched partitions were rewritten"
    );
    assert_eq!(parquet_files(lake.path()), files_after);
    let runs = lake_rows(lake.path(), "sync_runs", &["status"]);
    assert_eq!(runs, vec!["succeeded", "succeeded"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_faults_at_ten_percent_the_lake_holds_the_same_rows() {
    let sim = sim(|c| {
        c.companies = 20;
        c.faults = FaultRates::uniform(0.1);
        c.faults.slow_by = std::time::Duration::from_millis(20);
    })
    .await;
    let lake = tempfile::tempdir().unwrap();
    let summary = ingest(&sim, lake.path(), MSSP_KEY).await.unwrap();
    assert!(
        summary.retries > 5,
        "faults were injected and retried: {summary:?}"
    );
    assert_lake_matches_world(lake.path(), sim.world(), Partnership::Mssp, true);
    assert_eq!(sim.active_sessions(), 0, "every session was invalidated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_field_of_an_unexpected_type_fails_the_run_naming_endpoint_and_field_and_keeps_the_lake()
{
    let sim = sim(|c| c.companies = 10).await;
    let lake = tempfile::tempdir().unwrap();
    ingest(&sim, lake.path(), MSSP_KEY).await.unwrap();
    let manifest_before = std::fs::read(lake.path().join("_hspq/manifest.json")).unwrap();
    let current = &sim.world().periods(Partnership::Mssp)[0];
    let path = format!("/v1/mssp-report/{}/{}/usage", current.year, current.label());
    sim.inject_at(&path, Fault::WrongType, 1);
    let err = ingest(&sim, lake.path(), MSSP_KEY).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(&path) && text.contains("billing_value"),
        "{text}"
    );
    let manifest_after: serde_json::Value =
        serde_json::from_slice(&std::fs::read(lake.path().join("_hspq/manifest.json")).unwrap())
            .unwrap();
    let before: serde_json::Value = serde_json::from_slice(&manifest_before).unwrap();
    // The data files are exactly those before (only the failed run's own sync_runs row is new).
    let data = |m: &serde_json::Value| -> BTreeSet<String> {
        m["files"]
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| !k.starts_with("sync_runs/"))
            .cloned()
            .collect()
    };
    assert_eq!(data(&before), data(&manifest_after));
    assert_eq!(parquet_files(lake.path()), manifest_files(lake.path()));
    let runs = lake_rows(lake.path(), "sync_runs", &["status"]);
    assert_eq!(runs, vec!["failed", "succeeded"]);
    assert_lake_matches_world(lake.path(), sim.world(), Partnership::Mssp, true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_ingest_on_the_same_lake_is_refused_while_the_first_holds_the_lock() {
    let sim = sim(|c| c.companies = 5).await;
    let dir = tempfile::tempdir().unwrap();
    let lake = hspq::lake::Lake::open(&dir.path().display().to_string()).unwrap();
    let held = hspq::lake::LakeLock::acquire(&lake, "other-run")
        .await
        .unwrap();
    let err = ingest(&sim, dir.path(), MSSP_KEY).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("another hspq ingest") && text.contains("other-run"),
        "{text}"
    );
    assert_eq!(sim.active_sessions(), 0);
    held.release().await.unwrap();
    ingest(&sim, dir.path(), MSSP_KEY).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_left_by_a_dead_process_is_taken_over() {
    let sim = sim(|c| c.companies = 5).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("_hspq")).unwrap();
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    let lock = serde_json::json!({
        "run_id": "dead-run",
        "host": std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim(),
        "owner": { "pid": pid, "started": 1 },
        "acquired_at": "2026-01-01T00:00:00Z",
        "expires_at": "2099-01-01T00:00:00Z"
    });
    std::fs::write(dir.path().join("_hspq/lock.json"), lock.to_string()).unwrap();
    ingest(&sim, dir.path(), MSSP_KEY).await.unwrap();
    assert!(
        !dir.path().join("_hspq/lock.json").exists(),
        "released after the run"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_that_is_not_found_is_skipped_with_a_warning() {
    let sim = sim(|c| c.companies = 8).await;
    let lake = tempfile::tempdir().unwrap();
    let first = sim.world().customers(Partnership::Mssp)[0].id.clone();
    sim.inject_at(
        &format!("/v1/customers/{first}/engagement"),
        Fault::Status(404),
        1,
    );
    let summary = ingest(&sim, lake.path(), MSSP_KEY).await.unwrap();
    assert_eq!(summary.warnings.len(), 1);
    assert!(
        summary.warnings[0].contains(&first),
        "{:?}",
        summary.warnings
    );
    let warnings = lake_rows(
        lake.path(),
        "sync_runs",
        &["array_to_string(warnings, ';')"],
    );
    assert!(warnings[0].contains(&first));
    let ids = lake_rows(lake.path(), "engagement", &["security_center_id"]);
    assert!(!ids.is_empty() && !ids.contains(&first));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_prints_the_plan_and_writes_nothing() {
    let sim = sim(|c| c.companies = 12).await;
    let lake = tempfile::tempdir().unwrap();
    let mut opts = options(&sim, lake.path(), MSSP_KEY, 1);
    opts.dry_run = true;
    opts.client.rate = 1.0;
    let summary = hspq::ingest::run(opts).await.unwrap();
    let plan = summary.plan.unwrap();
    assert!(
        plan.contains("period 2026-03") && plan.contains("engagement and churn risk"),
        "{plan}"
    );
    assert!(plan.contains("requests:"), "{plan}");
    assert!(!lake.path().join("_hspq").exists());
}

//! Reading a lake back and checking it against the simulator's world, row for row.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::Path;

use chrono::{Days, Months, NaiveDate};
use hspq::sim::world::{Company, Period, World};
use hspq::sim::Partnership;

/// Rows of a dataset as text, one column expression per field, sorted.
pub fn lake_rows(dir: &Path, dataset: &str, columns: &[&str]) -> Vec<String> {
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

pub fn sorted(mut v: Vec<String>) -> Vec<String> {
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
pub fn first_window(w: &World) -> (NaiveDate, NaiveDate) {
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
pub fn assert_lake_matches_world(dir: &Path, w: &World, p: Partnership, customers: bool) {
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
pub fn all_text(dir: &Path) -> String {
    let mut out = String::new();
    for entry in walk(dir) {
        out.push_str(&String::from_utf8_lossy(&std::fs::read(entry).unwrap()));
    }
    out
}

pub fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
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

pub fn parquet_files(dir: &Path) -> BTreeSet<String> {
    walk(dir)
        .into_iter()
        .map(|p| p.strip_prefix(dir).unwrap().display().to_string())
        .filter(|p| !p.starts_with("_hspq"))
        .collect()
}

pub fn manifest_files(dir: &Path) -> BTreeSet<String> {
    let m = latest_manifest(dir).expect("the lake has a commit");
    m["files"].as_object().unwrap().keys().cloned().collect()
}

/// The lake's latest log entry (`_hspq/log/<version>.json`), read as a plain reader would.
pub fn latest_entry(dir: &Path) -> Option<serde_json::Value> {
    let log = dir.join("_hspq/log");
    let last = std::fs::read_dir(&log)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .max()?;
    Some(serde_json::from_slice(&std::fs::read(log.join(last)).unwrap()).unwrap())
}

/// Waits until the lease of the newest log entry in `dir` has lapsed: its holder is stopped, so
/// that entry stays the newest, and a takeover needs exactly this (not a guess at the time).
pub fn wait_until_lease_lapses(dir: &Path) {
    let entry = latest_entry(dir).expect("the lake has a commit");
    let expires: chrono::DateTime<chrono::Utc> = entry["lease"]["expires_at"]
        .as_str()
        .expect("a run holds the lake")
        .parse()
        .unwrap();
    while let Ok(left) = (expires - chrono::Utc::now()).to_std() {
        std::thread::sleep(left + std::time::Duration::from_millis(5));
    }
}

/// The sync state (`state` and `staged`) an entry's sync object holds, read as a plain reader
/// would: zstd-compressed JSON under `_hspq/sync/`.
pub fn sync_state(dir: &Path, entry: &serde_json::Value) -> serde_json::Value {
    let object = entry["sync"]
        .as_str()
        .expect("the entry names its sync object");
    let packed = std::fs::read(dir.join(object)).unwrap();
    serde_json::from_slice(&zstd::decode_all(packed.as_slice()).unwrap()).unwrap()
}

/// The manifest of the latest log entry.
pub fn latest_manifest(dir: &Path) -> Option<serde_json::Value> {
    latest_entry(dir).map(|e| e["manifest"].clone())
}

/// Whether no run holds the lake.
pub fn lake_is_free(dir: &Path) -> bool {
    latest_entry(dir).is_none_or(|e| e["lease"].is_null())
}

/// Commits `manifest` as the next log version, as another writer of the format would.
pub fn commit_manifest(dir: &Path, manifest: serde_json::Value) {
    let mut entry = latest_entry(dir).expect("the lake has a commit");
    let version = entry["version"].as_u64().unwrap() + 1;
    entry["version"] = version.into();
    entry["run_id"] = "test".into();
    entry["manifest"] = manifest;
    std::fs::write(
        dir.join(format!("_hspq/log/{version:020}.json")),
        entry.to_string(),
    )
    .unwrap();
}

/// Every file the latest commit lists is there, with the size and SHA-256 it lists, and
/// promises that its partition holds each of its keys once (so views need no deduplication).
pub fn assert_listed_files_intact(dir: &Path) {
    use sha2::Digest;
    let m = latest_manifest(dir).expect("the lake has a commit");
    for (path, entry) in m["files"].as_object().unwrap() {
        let bytes = std::fs::read(dir.join(path))
            .unwrap_or_else(|e| panic!("{path} is listed but cannot be read: {e}"));
        assert_eq!(
            bytes.len() as u64,
            entry["size"].as_u64().unwrap(),
            "{path}: size"
        );
        assert_eq!(
            sha2::Sha256::digest(&bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>(),
            entry["sha256"].as_str().unwrap(),
            "{path}: sha256"
        );
        assert_eq!(entry["unique_keys"], true, "{path}: unique keys");
    }
}

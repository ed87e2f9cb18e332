//! `hspq report` rendered by real headless Chromium (Debian's `chromium`, which
//! scripts/test.sh installs when missing): no console errors, charts drawn, and every number
//! in them equal to the bundled query it comes from.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{hspq_on, ingest_lake, sim, succeeded, MSSP_KEY, RESELLER_KEY};

fn chromium() -> PathBuf {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        for dir in ["/usr/bin", "/usr/local/bin"] {
            let p = Path::new(dir).join(name);
            if p.exists() {
                return p;
            }
        }
    }
    panic!("chromium not found: run ./scripts/test.sh, which installs it");
}

/// Headless Chromium on `page` with `args`; root needs --no-sandbox.
fn headless(page: &Path, args: &[&str]) -> Output {
    Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap()
}

/// The `data-*` attributes of every element of `class` in `dom`.
fn marks(dom: &str, class: &str, names: &[&str]) -> BTreeSet<Vec<String>> {
    dom.split(&format!(r#"class="{class}""#))
        .skip(1)
        .map(|rest| {
            let tag = &rest[..rest.find('>').unwrap()];
            names
                .iter()
                .map(|n| {
                    let key = format!(r#"data-{n}=""#);
                    let at = tag
                        .find(&key)
                        .unwrap_or_else(|| panic!("no {key} in {tag}"))
                        + key.len();
                    tag[at..at + tag[at..].find('"').unwrap()]
                        .replace("&amp;", "&")
                        .to_string()
                })
                .collect()
        })
        .collect()
}

/// A bundled query's rows, as `hspq query NAME --format json` prints them.
fn query(lake: &Path, name: &str, params: &[&str]) -> Vec<serde_json::Value> {
    let mut args = vec!["query", name, "--format", "json"];
    for p in params {
        args.extend(["--param", p]);
    }
    serde_json::from_slice(&succeeded(hspq_on(lake, &args))).unwrap()
}

fn value(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_renders_in_chromium_with_charts_that_agree_with_the_bundled_queries() {
    let sim = sim(|c| c.companies = 80).await;
    let lake = tempfile::tempdir().unwrap();
    ingest_lake(&sim, lake.path(), &[MSSP_KEY, RESELLER_KEY]).await;
    let out = tempfile::tempdir().unwrap();
    let page = out.path().join("report.html");
    let made = hspq_on(lake.path(), &["report", "--output", page.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&made.stderr).to_string();
    succeeded(made);
    assert!(
        said.contains("wrote") && said.contains("report.html"),
        "{said}"
    );

    let rendered = headless(&page, &["--dump-dom"]);
    assert!(rendered.status.success());
    let console = String::from_utf8_lossy(&rendered.stderr);
    assert!(
        !console.lines().any(|l| l.contains(":CONSOLE")),
        "console messages: {console}"
    );
    let dom = String::from_utf8(rendered.stdout).unwrap();

    // Billing: one point per report type, product and period, as billing_trend has them.
    let drawn = marks(
        &dom,
        "point",
        &["report-type", "product", "period", "value"],
    );
    let want: BTreeSet<Vec<String>> = query(lake.path(), "billing_trend", &[])
        .iter()
        .map(|r| {
            vec![
                value(&r["report_type"]),
                value(&r["product"]),
                format!("{}-{}", value(&r["year"]), value(&r["period"])),
                value(&r["billing_total"]),
            ]
        })
        .collect();
    assert!(want.len() > 20, "{want:?}");
    assert_eq!(drawn, want);

    // The backtest's bars: lift and precision in the top k, as churn_backtest has them.
    let drawn = marks(&dom, "bar", &["report-type", "model", "metric", "value"]);
    let mut want = BTreeSet::new();
    for r in query(lake.path(), "churn_backtest", &[]) {
        for metric in ["lift", "precision_at_k"] {
            if !r[metric].is_null() {
                want.insert(vec![
                    value(&r["report_type"]),
                    value(&r["model"]),
                    metric.to_string(),
                    value(&r[metric]),
                ]);
            }
        }
    }
    assert!(!want.is_empty(), "churn_backtest has no rows to draw");
    assert_eq!(drawn, want);
    // Its warning when the leavers are few, as churn_backtest words it.
    for r in query(lake.path(), "churn_backtest", &[]) {
        if let Some(note) = r["note"].as_str() {
            assert!(dom.contains(note), "the report lacks {note:?}");
        }
    }

    // Retention: one shaded cell per cohort and month seen, as retention_cohorts has them.
    let drawn = marks(
        &dom,
        "cohort n",
        &["report-type", "cohort", "months", "value"],
    );
    let mut want = BTreeSet::new();
    for r in query(lake.path(), "retention_cohorts", &[]) {
        for months in [1, 3, 6, 12] {
            let share = &r[format!("still_after_{months}m_pct")];
            if !share.is_null() {
                want.insert(vec![
                    value(&r["report_type"]),
                    value(&r["cohort"]),
                    months.to_string(),
                    value(share),
                ]);
            }
        }
    }
    assert!(
        want.len() >= 4,
        "retention_cohorts has too few cells: {want:?}"
    );
    assert_eq!(drawn, want);

    // The churn list starts where churn_risk does, with its reasons.
    let risk = query(lake.path(), "churn_risk", &[]);
    let first = value(&risk[0]["company_name"]).replace('&', "&amp;");
    let list = &dom[dom.find(r#"id="churn""#).unwrap()..];
    assert!(list.contains(&first), "{first} not in the churn list");
    for section in [
        "freshness",
        "billing",
        "movers",
        "backtest",
        "retention",
        "reconciliation",
    ] {
        assert!(
            dom.contains(&format!(r#"id="{section}""#)),
            "no {section} section"
        );
    }

    // A screenshot: the charts are drawn (their first series' colour covers many pixels).
    let shot = out.path().join("report.png");
    let taken = headless(
        &page,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1100,2400",
            "--hide-scrollbars",
        ],
    );
    assert!(
        taken.status.success(),
        "{}",
        String::from_utf8_lossy(&taken.stderr)
    );
    let decoder = png::Decoder::new(std::fs::File::open(&shot).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut pixels).unwrap();
    let channels = frame.line_size / frame.width as usize;
    let blue = pixels[..frame.buffer_size()]
        .chunks(channels)
        .filter(|p| p[0].abs_diff(0x4e) < 8 && p[1].abs_diff(0x79) < 8 && p[2].abs_diff(0xa7) < 8)
        .count();
    assert!(blue > 2_000, "only {blue} pixels of the charts' colour");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_filters_by_report_type_and_periods_and_refuses_bad_input() {
    let sim = sim(|c| c.companies = 30).await;
    let lake = tempfile::tempdir().unwrap();
    ingest_lake(&sim, lake.path(), &[MSSP_KEY, RESELLER_KEY]).await;
    let html = String::from_utf8(succeeded(hspq_on(
        lake.path(),
        &["report", "--report-type", "reseller", "--periods", "3"],
    )))
    .unwrap();
    let points = marks(&html, "point", &["report-type", "product", "period"]);
    assert!(!points.is_empty());
    assert!(points.iter().all(|p| p[0] == "reseller"), "{points:?}");
    let periods: BTreeSet<&String> = points.iter().map(|p| &p[2]).collect();
    assert_eq!(periods.len(), 3, "{periods:?}");
    assert!(!html.contains(r#"data-report-type="mssp""#));

    let out = hspq_on(lake.path(), &["report", "--report-type", "msp"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("mssp") && stderr.contains("reseller"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

//! `hspq ingest` throughput and pacing (issue 3's goals), printed as figures:
//!
//! 1. Conversion: bulk `/usage` pages of a 2,000-company period (captured from the simulator)
//!    decoded from JSON and turned into Arrow batches: rows per second (goal ≥ 1M).
//! 2. A whole sync of 2,000 companies × 14 periods with the rate limit off, run as the real
//!    binary: rows per second, peak RSS of the hspq process (goal ≤ 256 MiB, independent of the
//!    company count: compare with 500 companies), bytes written.
//! 3. A partner of 300 companies at the documented 1 request/s, with 1 and 5 sessions: wall
//!    time against the bound requests ÷ (sessions × rate) (goal ≤ 1.03).
//!
//! `cargo bench --bench ingest`; `HSPQ_BENCH_SKIP_PACED=1` skips part 3 (it takes ~2 minutes).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use hspq::api::models::{Page, UsageCompany};
use hspq::ingest::rows::{self, PeriodContext};
use hspq::sim::{Partnership, SimConfig, Simulator};

const ORG: &str = "hsp_org_simulator_dummy_0000";
const REPORT_ONLY: &str = "hsp_simmssp1_dummy_report";

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, 12).unwrap()
}

async fn simulator(companies: u32, periods: u32, rate: f64) -> Simulator {
    let mut c = SimConfig::new(today());
    c.companies = companies;
    c.periods = periods;
    c.rate = rate;
    Simulator::start_local(c).await.unwrap()
}

// Threads to spare, as the binary has: the simulator answering in-process must not delay
// the arrival of the requests it times.
#[tokio::main(worker_threads = 8)]
async fn main() {
    conversion().await;
    if std::env::var_os("HSPQ_BENCH_ONLY_CONVERSION").is_some() {
        return;
    }
    if std::env::var_os("HSPQ_BENCH_ONLY_PACED").is_some() {
        for sessions in [1, 5] {
            paced(sessions).await;
        }
        return;
    }
    for companies in [500, 2000, 8000] {
        whole_sync(companies).await;
    }
    if std::env::var_os("HSPQ_BENCH_SKIP_PACED").is_none() {
        for sessions in [1, 5] {
            paced(sessions).await;
        }
    }
}

async fn conversion() {
    let sim = simulator(2000, 2, 0.0).await;
    let http = reqwest::Client::new();
    let base = sim.base_url();
    let token: serde_json::Value = http
        .post(format!("{base}/auth/session"))
        .json(&serde_json::json!({"organization_key": ORG, "api_key": REPORT_ONLY}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let auth = format!("Session {}", token["session_token"].as_str().unwrap());
    let period = &sim.world().periods(Partnership::Mssp)[1];
    let mut pages = Vec::new();
    for offset in [0, 1000] {
        let url = format!(
            "{base}/mssp-report/{}/{}/usage?limit=1000&offset={offset}",
            period.year,
            period.label()
        );
        let bytes = http
            .get(url)
            .header("authorization", &auth)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        pages.push(bytes);
    }
    let ctx = PeriodContext {
        report_type: "mssp".into(),
        year: period.year as i64,
        period: period.label(),
        from: period.from,
        to: period.to,
        is_partial: period.is_partial,
        ingested_at: "2026-03-12T10:00:00.000000Z".into(),
    };
    let mut rows_done = 0usize;
    let rounds = 5;
    let (mut decode, mut convert) = (Duration::ZERO, Duration::ZERO);
    let started = Instant::now();
    for _ in 0..rounds {
        for bytes in &pages {
            let t = Instant::now();
            let page: Page<UsageCompany> = serde_json::from_slice(bytes).unwrap();
            decode += t.elapsed();
            let t = Instant::now();
            let (b, d) = rows::usage(&ctx, &page.results).unwrap();
            convert += t.elapsed();
            rows_done += b.num_rows() + d.num_rows();
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "conversion split: JSON decode {:.2} s ({:.0} rows/s), rows to Arrow {:.2} s ({:.0} rows/s)",
        decode.as_secs_f64(),
        rows_done as f64 / decode.as_secs_f64(),
        convert.as_secs_f64(),
        rows_done as f64 / convert.as_secs_f64()
    );
    let mb: usize = pages.iter().map(|p| p.len()).sum();
    println!(
        "conversion: {rows_done} rows from {rounds} x {:.1} MB of /usage JSON in {secs:.2} s = {:.0} rows/s (JSON decode + Arrow)",
        mb as f64 / 1e6,
        rows_done as f64 / secs
    );
}

/// Runs the real binary; returns (wall, peak RSS in KiB, its stderr).
fn run_binary(
    sim: &Simulator,
    data: &Path,
    key: &str,
    sessions: usize,
    rate: &str,
) -> (Duration, u64, String) {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_hspq"))
        .args([
            "ingest",
            "-q",
            "--sessions",
            &sessions.to_string(),
            "--rate",
            rate,
            "--base-url",
            &sim.base_url(),
            "--data",
        ])
        .arg(data)
        .env("HSPQ_ORG_KEY", ORG)
        .env("HSPQ_API_KEY", key)
        .env("XDG_CACHE_HOME", std::env::temp_dir().join("hspq-bench"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0;
    loop {
        if let Ok(status) = std::fs::read_to_string(&status_path) {
            if let Some(line) = status.lines().find(|l| l.starts_with("VmHWM:")) {
                let kib: u64 = line
                    .split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                peak_kib = peak_kib.max(kib);
            }
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let wall = started.elapsed();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    (wall, peak_kib, stderr)
}

fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        total += if p.is_dir() {
            dir_bytes(&p)
        } else {
            p.metadata().unwrap().len()
        };
    }
    total
}

fn figure(stderr: &str, after: &str) -> u64 {
    let i = stderr.find(after).expect("summary line");
    stderr[..i]
        .split_whitespace()
        .last()
        .unwrap()
        .parse()
        .unwrap()
}

async fn whole_sync(companies: u32) {
    let sim = simulator(companies, 14, 0.0).await;
    let lake = tempfile::tempdir().unwrap();
    let sim_ref = &sim;
    let path = lake.path().to_path_buf();
    let (wall, peak, stderr) =
        tokio::task::block_in_place(|| run_binary(sim_ref, &path, REPORT_ONLY, 5, "1000000"));
    let rows = figure(&stderr, "rows (");
    println!(
        "sync {companies} companies x 14 periods, rate off: {rows} rows in {:.2} s = {:.0} rows/s, peak RSS {:.1} MiB, {:.1} MB on disk",
        wall.as_secs_f64(),
        rows as f64 / wall.as_secs_f64(),
        peak as f64 / 1024.0,
        dir_bytes(lake.path()) as f64 / 1e6
    );
}

async fn paced(sessions: usize) {
    let sim = simulator(300, 14, 1.0).await;
    let lake = tempfile::tempdir().unwrap();
    let sim_ref = &sim;
    let path = lake.path().to_path_buf();
    let (wall, _, stderr) =
        tokio::task::block_in_place(|| run_binary(sim_ref, &path, REPORT_ONLY, sessions, "1"));
    // Session-bound requests the simulator accepted or refused (creating sessions is not paced).
    let requests = sim
        .requests()
        .iter()
        .filter(|r| r.session.is_some() && r.method != "POST")
        .count();
    let limited = sim.requests().iter().filter(|r| r.status == 429).count();
    let bound = requests as f64 / sessions as f64;
    println!(
        "paced 300 companies x 14 periods, {sessions} session(s) at 1 req/s: {requests} requests in {:.1} s, bound {bound:.1} s, wall/bound {:.3}, {limited} x 429 ({})",
        wall.as_secs_f64(),
        wall.as_secs_f64() / bound,
        stderr.lines().last().unwrap_or("").trim()
    );
}

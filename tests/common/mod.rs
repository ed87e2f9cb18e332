//! Shared set-up for the integration tests: an in-process simulator and a client for it.
#![allow(dead_code)]

pub mod lake;
pub mod serve;

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use hspq::api::{BackoffConfig, Client, ClientConfig, Credentials, RetryConfig};
use hspq::sim::{SimConfig, Simulator};

pub const ORG_KEY: &str = "hsp_org_simulator_dummy_0000";
pub const MSSP_KEY: &str = "hsp_simmssp0_dummy_full";
pub const RESELLER_KEY: &str = "hsp_simresl0_dummy_full";
pub const MSSP_REPORT_ONLY_KEY: &str = "hsp_simmssp1_dummy_report";

/// `hspq ARGS --data DIR` run to its end, with `HSPQ_FORMAT` unset so each command prints in
/// its default format.
pub fn hspq_on(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hspq"))
        .args(args)
        .arg("--data")
        .arg(dir)
        .env_remove("HSPQ_FORMAT")
        .output()
        .unwrap()
}

/// The stdout of a run that must have succeeded (its stderr says why when it did not).
pub fn succeeded(out: std::process::Output) -> Vec<u8> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A program from the test tools' virtualenv (`python`, `duckdb`), which scripts/test.sh
/// installs from tests/requirements.txt and notebooks/requirements.txt.
pub fn venv_tool(name: &str) -> std::path::PathBuf {
    let venv = std::env::var("HSPQ_VENV")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            std::path::Path::new(&std::env::var("HOME").unwrap()).join(".cache/hspq/venv")
        });
    let tool = venv.join("bin").join(name);
    assert!(
        tool.exists(),
        "{} not found: run ./scripts/test.sh, which installs the test tools",
        tool.display()
    );
    tool
}

/// The simulator's "today" in every test: tests never depend on the real date.
pub fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, 12).unwrap()
}

/// A simulator with no rate limit unless `tweak` sets one.
pub async fn sim(tweak: impl FnOnce(&mut SimConfig)) -> Simulator {
    let mut config = SimConfig::new(today());
    config.rate = 0.0;
    config.companies = 30;
    tweak(&mut config);
    Simulator::start_local(config)
        .await
        .expect("simulator starts")
}

/// A client config for `sim` with quick backoffs so retry tests stay short.
pub fn config(sim: &Simulator, sessions: usize, rate: f64) -> ClientConfig {
    let mut c = ClientConfig::new(sim.base_url().parse().unwrap());
    c.sessions = sessions;
    c.rate = rate;
    c.retry = RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(40),
            base: 2.0,
        },
        ..RetryConfig::default()
    };
    c
}

pub fn creds(api_key: &str) -> Credentials {
    Credentials::new(ORG_KEY, api_key).unwrap()
}

pub async fn connect(sim: &Simulator, sessions: usize, rate: f64) -> Client {
    Client::connect(config(sim, sessions, rate), creds(MSSP_KEY))
        .await
        .expect("client connects")
}

/// A sync of `sim` into the lake at `dir` with `api_key` on `sessions` sessions (unpaced, no
/// session cache, 12 months of history, 7 days of lookback).
pub fn ingest_options(
    sim: &Simulator,
    dir: &std::path::Path,
    api_key: &str,
    sessions: usize,
) -> hspq::ingest::IngestOptions {
    let mut client = config(sim, sessions, 0.0);
    client.token_cache = None;
    hspq::ingest::IngestOptions {
        data: dir.into(),
        client,
        creds: Credentials::new(ORG_KEY, api_key).unwrap(),
        windows: hspq::ingest::plan::Windows {
            history_months: 12,
            lookback_days: 7,
            full: false,
        },
        dry_run: false,
        quiet: true,
        lake: Default::default(),
    }
}

/// Syncs `sim` into the lake at `dir` with each key in turn (unpaced, no session cache).
pub async fn ingest_lake(sim: &Simulator, dir: &std::path::Path, keys: &[&str]) {
    for key in keys {
        hspq::ingest::run(ingest_options(sim, dir, key, 2))
            .await
            .unwrap();
    }
}

/// Sends `sig` (`-STOP`, `-CONT`, ...) to a process.
pub fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid}");
}

/// Waits until the simulator has answered more than `n` requests.
pub fn wait_for_requests(sim: &Simulator, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while sim.requests().len() <= n {
        assert!(Instant::now() < deadline, "the run never got going");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `hspq sql` (from `sql`, which names the lake) in a bounded loop until `until`, on a
/// query that reads a whole view; returns how many runs there were and their failures.
pub fn sql_loop(until: &AtomicBool, sql: impl Fn() -> Command) -> (usize, Vec<String>) {
    let mut runs = 0;
    let mut failures = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !until.load(Ordering::SeqCst) && Instant::now() < deadline {
        let out = sql()
            .args(["--format", "csv"])
            .arg("select count(*), count(distinct (year, period, security_center_id, product)) from billing")
            .output()
            .unwrap();
        runs += 1;
        if !out.status.success() {
            failures.push(String::from_utf8_lossy(&out.stderr).into_owned());
        }
    }
    (runs, failures)
}

/// What the readers saw while a sync ran.
pub struct ThroughSync {
    /// The count the shell printed for each statement, in order.
    pub counts: Vec<String>,
    /// `hspq sql` runs during the sync.
    pub sql_runs: usize,
    /// When the sync ended.
    pub sync_ended: Instant,
    /// How long the sync ran.
    pub sync_took: Duration,
}

/// Opens a shell (`repl`, a `hspq repl` command on the lake) and runs `sql` (a `hspq sql`
/// command on the lake) in a loop, then runs `sync` to its end while feeding the shell a
/// statement every 200 ms, and after the sync and `settle` one more. Asserts that the sync
/// succeeded, that the shell answered every statement, and that no `hspq sql` run failed.
pub fn read_through_sync(
    mut repl: Command,
    sql: impl Fn() -> Command + Sync,
    mut sync: Command,
    settle: Duration,
) -> ThroughSync {
    use std::io::Write;
    use std::process::Stdio;
    const STATEMENT: &str = "select count(*) as n from daily_usage;";
    let mut shell = repl
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = shell.stdin.take().unwrap();
    writeln!(stdin, "{STATEMENT}").unwrap();
    let mut statements = 1;
    let done = AtomicBool::new(false);
    let (sql_runs, sql_failures, status, sync_ended, sync_took) = std::thread::scope(|s| {
        let readers = s.spawn(|| sql_loop(&done, &sql));
        let mut sync = sync.spawn().unwrap();
        let started = Instant::now();
        let status = loop {
            if let Some(status) = sync.try_wait().unwrap() {
                break status;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "the sync did not end"
            );
            writeln!(stdin, "{STATEMENT}").unwrap();
            statements += 1;
            std::thread::sleep(Duration::from_millis(200));
        };
        let (ended, took) = (Instant::now(), started.elapsed());
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut sync.stderr.take().unwrap(), &mut stderr).unwrap();
        assert!(status.success(), "the sync failed: {stderr}");
        std::thread::sleep(settle);
        done.store(true, Ordering::SeqCst);
        let (runs, failures) = readers.join().unwrap();
        (runs, failures, status, ended, took)
    });
    assert!(status.success());
    writeln!(stdin, "{STATEMENT}").unwrap();
    statements += 1;
    drop(stdin);
    let shell = shell.wait_with_output().unwrap();
    let shell_err = String::from_utf8_lossy(&shell.stderr);
    assert!(
        shell.status.success(),
        "the shell failed a statement: {shell_err}"
    );
    let answers = String::from_utf8_lossy(&shell.stdout);
    let counts: Vec<String> = answers
        .lines()
        .filter(|l| *l != "n")
        .map(String::from)
        .collect();
    assert_eq!(
        counts.len(),
        statements,
        "every statement answered: {answers}"
    );
    assert!(
        sql_failures.is_empty(),
        "{} of {sql_runs} hspq sql runs failed: {sql_failures:?}",
        sql_failures.len()
    );
    assert!(sql_runs > 2, "{sql_runs} hspq sql runs overlapped the sync");
    ThroughSync {
        counts,
        sql_runs,
        sync_ended,
        sync_took,
    }
}

/// Wakes a sync paused (SIGSTOP) past its lease while another run took the lake over, and
/// checks it fails, without a panic, saying it lost the lake.
pub fn assert_woken_run_lost_the_lake(paused: std::process::Child) {
    signal(paused.id(), "-CONT");
    let out = paused.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the woken run must fail: {stderr}");
    assert_ne!(out.status.code(), Some(101), "no panic: {stderr}");
    assert!(
        stderr.contains("lost"),
        "it says it lost the lake: {stderr}"
    );
}

//! The real `hspq` binary: `hspq simulate` serves, `hspq check` reads it, errors are one line
//! with a fix and a non-zero exit, and no key or token is printed.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ORG_KEY: &str = "hsp_org_simulator_dummy_0000";

struct Served {
    child: Child,
    url: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn hspq() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hspq"));
    // Keep the session cache of these runs away from the user's own.
    cmd.env(
        "XDG_CACHE_HOME",
        std::env::temp_dir().join("hspq-cli-tests"),
    );
    for var in [
        "HSPQ_BASE_URL",
        "HSPQ_ORG_KEY",
        "HSPQ_API_KEY",
        "HSPQ_SESSIONS",
        "HSPQ_RATE",
        "RUST_LOG",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

fn serve(extra: &[&str]) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let port_file = dir.path().join("url");
    let mut child = hspq()
        .args([
            "simulate",
            "--port",
            "0",
            "--today",
            "2026-03-12",
            "--rate",
            "0",
            "--port-file",
        ])
        .arg(&port_file)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !port_file.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let url = std::fs::read_to_string(&port_file)
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(
        line.trim(),
        url,
        "the URL goes to stdout and to --port-file"
    );
    Served { child, url }
}

fn check(url: &str, api_key: &str) -> std::process::Output {
    hspq()
        .args(["check", "-vv", "--base-url", url])
        .env("HSPQ_ORG_KEY", ORG_KEY)
        .env("HSPQ_API_KEY", api_key)
        .output()
        .unwrap()
}

fn assert_no_secrets(out: &std::process::Output, key: &str) {
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for secret in [ORG_KEY, key, "pps_"] {
        assert!(!all.contains(secret), "{secret} printed:\n{all}");
    }
}

#[test]
fn check_reads_the_partner_from_the_simulator() {
    let served = serve(&[]);
    let out = check(&served.url, "hsp_simresl0_dummy_full");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    assert!(stdout.contains("Slate Rock and Gravel Co."), "{stdout}");
    assert!(
        stdout.contains("reseller-report:read, customers:read"),
        "{stdout}"
    );
    assert_no_secrets(&out, "hsp_simresl0_dummy_full");
}

#[test]
fn bad_keys_exit_non_zero_with_one_line_naming_the_fix() {
    let served = serve(&[]);
    let out = check(&served.url, "hsp_simmssp0_not_the_key");
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8(out.stderr.clone()).unwrap();
    let last = stderr.lines().last().unwrap();
    assert!(
        last.starts_with("hspq: ") && last.contains("401") && last.contains("HSPQ_API_KEY"),
        "{stderr}"
    );
    assert_no_secrets(&out, "hsp_simmssp0_not_the_key");

    let missing = hspq()
        .args(["check", "--base-url", &served.url])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("HSPQ_ORG_KEY is not set"));
}

#[test]
fn a_keys_file_replaces_the_dummy_keys_and_is_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.json");
    std::fs::write(
        &keys,
        r#"{"organization_key":"hsp_org_private_9","partner_name":"Own","api_keys":[
            {"name":"Mine","api_key":"hsp_private_secret_1","report":"mssp","customers":false}]}"#,
    )
    .unwrap();
    let mut child = hspq()
        .args(["simulate", "--port", "0", "--keys-file"])
        .arg(&keys)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.trim().to_string();
    let out = hspq()
        .args(["check", "--base-url", &url])
        .env("HSPQ_ORG_KEY", "hsp_org_private_9")
        .env("HSPQ_API_KEY", "hsp_private_secret_1")
        .output()
        .unwrap();
    child.kill().unwrap();
    let sim_out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = format!(
        "{}{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&sim_out.stderr)
    );
    assert!(printed.contains("Mine"));
    assert!(
        !printed.contains("hsp_private_secret_1") && !printed.contains("hsp_org_private_9"),
        "{printed}"
    );

    std::fs::write(&keys, "{not json").unwrap();
    let bad = hspq()
        .args(["simulate", "--port", "0", "--keys-file"])
        .arg(&keys)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("keys file"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

/// Six runs killed with SIGKILL in a row, each while holding a session, do not lock the
/// organisation out: each run invalidates the sessions its dead predecessors left behind.
#[test]
fn killed_runs_do_not_lock_the_organisation_out() {
    use hspq::sim::{Fault, SimConfig, Simulator};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut config = SimConfig::new(chrono::NaiveDate::from_ymd_opt(2026, 3, 12).unwrap());
    config.rate = 0.0;
    let sim = rt.block_on(Simulator::start_local(config)).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let run = |key: &str| {
        let mut cmd = hspq();
        cmd.args(["check", "--base-url", &sim.base_url()])
            .env("XDG_CACHE_HOME", cache.path())
            .env("HSPQ_ORG_KEY", ORG_KEY)
            .env("HSPQ_API_KEY", key)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        cmd
    };
    for round in 1..=6u64 {
        // The run's /v1/me hangs, so it is killed while its session is live.
        sim.inject_at("/v1/me", Fault::Slow(Duration::from_secs(60)), 1);
        let spawned = Instant::now();
        let mut child = run("hsp_simmssp0_dummy_full").spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while sim.sessions_created() < round && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(
            sim.sessions_created(),
            round,
            "run {round} created its session"
        );
        // Wait until it has recorded its session in the token cache (a run killed between
        // creating a session and recording it leaves a session nobody knows of), then kill
        // without any chance to clean up.
        let tokens = cache.path().join("hspq/sessions.json");
        let pid = format!("\"pid\":{}", child.id());
        while !std::fs::read_to_string(&tokens).is_ok_and(|t| t.contains(&pid))
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        // And let its /v1/me reach the simulator, where the slow fault holds it.
        let held = || {
            sim.arrivals()
                .iter()
                .any(|(at, path)| *at > spawned && path == "/v1/me")
        };
        while !held() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(held(), "run {round}'s /v1/me reached the simulator");
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(
            sim.active_sessions(),
            1,
            "after run {round}: only the killed run's session is left"
        );
    }
    let out = run("hsp_simresl0_dummy_full").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalidated 1 API session"));
    assert_eq!(sim.active_sessions(), 0);
    let cached = std::fs::read_to_string(cache.path().join("hspq/sessions.json")).unwrap();
    assert_eq!(cached.trim(), "[]");
}

#[test]
fn demo_syncs_both_reports_prints_the_reports_and_status_describes_the_lake() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    let out = hspq()
        .args(["demo", "--companies", "15", "--rate", "0", "--data"])
        .arg(&data)
        .env("COLUMNS", "100")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for part in [
        "Churn risk, top 10",
        "Billing trend",
        "every check agrees",
        "hspq repl --data",
        "Backtest (hspq query churn_backtest)",
    ] {
        assert!(stdout.contains(part), "{part} missing:\n{stdout}");
    }
    // Who is at risk, what they bill and why fit a 100-column terminal.
    let risk: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("Churn risk"))
        .skip(1)
        .take_while(|l| l.starts_with(['┌', '│', '├', '└']))
        .collect();
    assert!(
        risk.iter()
            .any(|l| l.contains("units_at_risk") && l.contains("reasons")),
        "{stdout}"
    );
    for line in &risk {
        assert!(
            unicode_width::UnicodeWidthStr::width(*line) <= 100,
            "wider than 100 columns: {line}"
        );
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("MSSP synced") && stderr.contains("reseller synced"),
        "{stderr}"
    );
    let status = hspq()
        .args(["status", "--format", "json", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert!(v["datasets"]["daily_usage"]["rows"].as_u64().unwrap() > 1000);
    assert_eq!(v["reports"].as_array().unwrap().len(), 2);
    assert!(v["last_success"]["age_seconds"].as_u64().unwrap() < 600);
    assert!(v["last_failure"].is_null());
    let text = hspq()
        .args(["status", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("mssp report: 24 periods") && text.contains("last successful sync"),
        "{text}"
    );
}

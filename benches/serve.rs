//! `hspq serve` under a dashboard's load, on a lake written by `hspq ingest` itself (issue 18's
//! goals), printed as figures:
//!
//! 1. The lake: the simulator in its own process at 10,000 companies, a first sync of the MSSP
//!    key and an incremental one a day later, in `HSPQ_BENCH_LAKE=<folder>` when given (and
//!    kept there: a later run with the same folder reuses it), else in a temporary folder.
//! 2. The dashboard mix for a minute with 32 clients, each running in turn `billing_trend` and
//!    `churn_risk` (the bundled queries, their defaults) and one company's usage per product
//!    over its last 90 days (a filtered `daily_usage`, the company a parameter): through `hspq
//!    serve` (asyncpg, one connection a client, `--memory-limit` as given) and on in-process
//!    DuckDB (the duckdb module of the same version, 32 connections to one database holding
//!    plain views of the finished lake: a glob per dataset, no deduplication, as hspq's own
//!    views read a lake whose files all hold unique keys; the same memory limit, spilling into
//!    the work folder). Throughput and p50/p95 latency; goal: serve ≥ 0.8× in-process.
//! 3. The server's peak resident memory (VmHWM) over the mix alone, and over the mix with one
//!    more client reading the whole `daily_usage` view through a cursor, 10,000 rows a fetch
//!    (as pgjdbc's `setFetchSize(10000)`); goal: that client adds ≤ 300 MB. Since the mix's own
//!    peak varies from run to run, also the stream alone against an idle server.
//!
//! `cargo bench --bench serve`; `HSPQ_BENCH_COMPANIES=N` (default 10,000), `HSPQ_BENCH_SECONDS=N`
//! (each mix's length, default 60), `HSPQ_BENCH_CLIENTS=N` (default 32),
//! `HSPQ_BENCH_MEMORY=<amount>` (the memory limit of both sides, default 8GB),
//! `HSPQ_BENCH_INPROCESS=<statements per second>` (the in-process figure of an earlier run:
//! only the served mix runs, to try a change to the server).
//!
//! Measured on 2026-12-07 (2 cores, 24 GiB; a lake of 10,157,563 daily_usage rows after two
//! syncs; 32 clients; 8GB): in-process 3.17 statements/s (p50 1.1 s, p95 26.8 s), served 2.74/s
//! (p50 1.8 s, p95 31.8 s): **0.86×, goal met**; three interleaved 60-s pairs beside it on an idle
//! machine: 0.88, 0.82, 0.89. The steps there: a database per session 0.64×; one shared
//! database 0.70-0.78×; then each session remembering the guard's verdicts by text (checking had
//! taken 9 % of the server's time) and keeping its result threads for the next result (new
//! threads started with DuckDB's per-thread caches cold: 12 % of the server's time went to the
//! kernel zeroing fresh pages). The mix opens the 32 sessions before its clock (about 7.5 s,
//! printed), as the in-process side makes its views before it: timed with them, the old
//! server's figure was the same (2.01/s), so the gain is the server's. The stream of all of
//! daily_usage (101 s) added 40 MB to the mix's peak of 4.7 GB (alone: +34 MB over an idle
//! server's 99 MB), goal met.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::NaiveDate;

mod common;
use common::{hspq, plain_views, simulator, sync};

const PASSWORD: &str = "bench-password";

fn venv() -> PathBuf {
    std::env::var("HSPQ_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(&std::env::var("HOME").unwrap()).join(".cache/hspq/venv"))
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `hspq serve` on a free port; killed when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    // Killed and waited for when dropped.
    #[allow(clippy::zombie_processes)]
    fn start(lake: &Path, dir: &Path, memory: &str, clients: usize) -> Server {
        let port_file = dir.join("serve-port");
        let _ = std::fs::remove_file(&port_file);
        let child = Command::new(hspq())
            .args(["serve", "--port", "0", "--query-timeout", "10m"])
            .args(["--memory-limit", memory])
            .args(["--max-connections", &(clients + 2).to_string()])
            .arg("--port-file")
            .arg(&port_file)
            .arg("--data")
            .arg(lake)
            .env("HSPQ_SERVE_PASSWORD", PASSWORD)
            .env("TMPDIR", dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(port) = std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|a| a.trim().rsplit(':').next()?.parse().ok())
            {
                return Server { child, port };
            }
            assert!(Instant::now() < deadline, "hspq serve did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The most memory the server has held resident so far, in MiB.
    fn peak_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .unwrap()
            / 1024.0
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `benches/serve_mix.py` with these arguments, its JSON answer.
fn mix(args: &[&str]) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/serve_mix.py");
    let out = Command::new(venv().join("bin/python"))
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "serve_mix.py {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn hspq_csv(lake: &Path, sql: &str) -> Vec<String> {
    let out = Command::new(hspq())
        .args(["sql", "--format", "csv", sql, "--data"])
        .arg(lake)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .skip(1)
        .map(str::to_string)
        .collect()
}

fn row(side: &str, m: &serde_json::Value) {
    println!(
        "{:<26} {:>10} {:>10} {:>10} {:>10}",
        side, m["statements"], m["per_second"], m["p50_ms"], m["p95_ms"]
    );
    for (name, s) in m["by_statement"].as_object().unwrap() {
        println!(
            "  {:<24} {:>10} {:>10} {:>10} {:>10}",
            name, s["n"], "", s["p50_ms"], s["p95_ms"]
        );
    }
}

fn main() {
    let companies: u32 = env_or("HSPQ_BENCH_COMPANIES", 10_000);
    let seconds: u64 = env_or("HSPQ_BENCH_SECONDS", 60);
    let clients: usize = env_or("HSPQ_BENCH_CLIENTS", 32);
    let memory: String = env_or("HSPQ_BENCH_MEMORY", "8GB".to_string());
    let work = tempfile::tempdir().unwrap();
    let given = std::env::var_os("HSPQ_BENCH_LAKE").map(PathBuf::from);
    let lake = match given {
        Some(lake) if lake.join("_hspq").is_dir() => lake,
        given => {
            let lake = given.unwrap_or_else(|| work.path().join("lake"));
            let day0 = NaiveDate::from_ymd_opt(2026, 3, 20).unwrap();
            for (n, today) in [day0, day0 + chrono::Days::new(1)].into_iter().enumerate() {
                let sim = simulator(companies, today, work.path());
                let u = sync(&sim, &lake, &work.path().join(format!("cache-{n}")));
                println!("sync {n}: {:.0} s", u.wall.as_secs_f64());
            }
            lake
        }
    };
    let daily_usage: u64 = hspq_csv(&lake, "select count(*) from daily_usage")[0]
        .parse()
        .unwrap();
    println!(
        "lake: {} ({daily_usage} daily_usage rows); {clients} clients, {seconds} s each mix, \
         memory limit {memory}",
        lake.display()
    );

    // The mix: the bundled dashboard queries with their defaults, and one company's usage.
    let bundled = |name: &str| {
        hspq::query::bundled::find(name)
            .unwrap()
            .sql_with(&[])
            .unwrap()
    };
    let companies: Vec<serde_json::Value> = hspq_csv(
        &lake,
        "select distinct security_center_id from daily_usage order by hash(security_center_id) \
         limit 200",
    )
    .into_iter()
    .map(|id| serde_json::json!([id]))
    .collect();
    let statements = serde_json::json!([
        {"name": "billing_trend", "sql": bundled("billing_trend"), "params": []},
        {"name": "churn_risk", "sql": bundled("churn_risk"), "params": []},
        {"name": "company_usage", "params": companies, "sql":
            "select product, sum(usage_value) as usage, count(*) as days from daily_usage \
             where security_center_id = $1 \
               and date > (select max(date) from daily_usage) - 90 \
             group by product order by product"},
    ]);
    let mix_file = work.path().join("mix.json");
    std::fs::write(&mix_file, statements.to_string()).unwrap();
    let views = work.path().join("views.sql");
    let spill = work.path().join("spill").display().to_string();
    std::fs::write(
        &views,
        format!("SET temp_directory = '{spill}';\n{}", plain_views(&lake)),
    )
    .unwrap();
    let (clients_text, seconds_text) = (clients.to_string(), seconds.to_string());

    println!(
        "\n{:<26} {:>10} {:>10} {:>10} {:>10}",
        "side", "statements", "per_s", "p50_ms", "p95_ms"
    );
    // HSPQ_BENCH_INPROCESS=<statements per second> takes the in-process side as measured before
    // (when trying changes to the server alone).
    let inprocess = match std::env::var("HSPQ_BENCH_INPROCESS") {
        Ok(per_second) => serde_json::json!({
            "statements": null, "per_second": per_second.parse::<f64>().unwrap(),
            "p50_ms": null, "p95_ms": null, "by_statement": {}
        }),
        Err(_) => mix(&[
            "inprocess",
            views.to_str().unwrap(),
            &memory,
            &clients_text,
            &seconds_text,
            mix_file.to_str().unwrap(),
        ]),
    };
    row("in-process DuckDB", &inprocess);

    // The mix through a server on `port`.
    let served_mix = |port: &str| {
        mix(&[
            "serve",
            "127.0.0.1",
            port,
            PASSWORD,
            &clients_text,
            &seconds_text,
            mix_file.to_str().unwrap(),
        ])
    };
    let server = Server::start(&lake, work.path(), &memory, clients);
    let served = served_mix(&server.port.to_string());
    let alone = server.peak_mib();
    drop(server);
    row("hspq serve", &served);
    println!(
        "  (its {clients} sessions opened before the clock, all at once, in {} s)",
        served["sessions_open_s"]
    );
    let ratio = served["per_second"].as_f64().unwrap() / inprocess["per_second"].as_f64().unwrap();
    println!(
        "throughput serve / in-process: {ratio:.2} (goal ≥ 0.80: {})",
        if ratio >= 0.8 { "met" } else { "NOT met" }
    );

    if std::env::var_os("HSPQ_BENCH_INPROCESS").is_some() {
        return;
    }
    // Again, with one more client streaming the whole daily_usage view.
    let server = Server::start(&lake, work.path(), &memory, clients);
    let port = server.port.to_string();
    let streaming = {
        let port = port.clone();
        std::thread::spawn(move || {
            mix(&[
                "stream",
                "127.0.0.1",
                &port,
                PASSWORD,
                "select * from daily_usage",
            ])
        })
    };
    let with_stream = served_mix(&port);
    let streamed = streaming.join().unwrap();
    let peak = server.peak_mib();
    drop(server);
    row("hspq serve + a stream", &with_stream);
    assert_eq!(streamed["rows"], daily_usage, "the stream read every row");
    println!(
        "stream: {} rows in {} s",
        streamed["rows"], streamed["seconds"]
    );
    // The stream alone, against the idle server's own peak.
    let server = Server::start(&lake, work.path(), &memory, clients);
    let port = server.port.to_string();
    let idle = server.peak_mib();
    let alone_stream = mix(&[
        "stream",
        "127.0.0.1",
        &port,
        PASSWORD,
        "select * from daily_usage",
    ]);
    assert_eq!(alone_stream["rows"], daily_usage);
    let streaming_peak = server.peak_mib();
    drop(server);
    println!(
        "the stream alone: the server's peak went from {idle:.0} MiB (idle) to \
         {streaming_peak:.0} MiB: +{:.0} MB",
        (streaming_peak - idle) * 1.048_576
    );
    println!(
        "server peak RSS: mix alone {alone:.0} MiB, with the stream {peak:.0} MiB: the stream \
         added {:.0} MB (goal ≤ 300: {})",
        (peak - alone) * 1.048_576,
        if (peak - alone) * 1.048_576 <= 300.0 {
            "met"
        } else {
            "NOT met"
        }
    );
}

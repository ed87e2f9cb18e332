//! What the benchmarks share: the simulator in its own process, `hspq ingest` against it, and
//! a whole process's time and memory.

#![allow(dead_code)]

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::NaiveDate;

pub const ORG: &str = "hsp_org_simulator_dummy_0000";
pub const MSSP: &str = "hsp_simmssp0_dummy_full";

pub fn hspq() -> &'static str {
    env!("CARGO_BIN_EXE_hspq")
}

/// What a finished process used.
pub struct Usage {
    pub wall: Duration,
    pub cpu: Duration,
    pub max_rss_mib: f64,
    pub stderr: Vec<u8>,
    pub success: bool,
}

/// Runs `cmd` to its end (its stdout discarded), measuring its wall time, CPU time and peak
/// memory. `wait4` reaps the child and reports what it used, so `Child::wait` is not called.
#[allow(clippy::zombie_processes)]
pub fn measure(cmd: &mut Command) -> Usage {
    let started = Instant::now();
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the command starts");
    let mut err = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        err.read_to_end(&mut buf).unwrap();
        buf
    });
    let mut status = 0;
    // SAFETY: rusage is plain data, filled by the kernel; the pid is our own unreaped child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32, "wait4");
    let wall = started.elapsed();
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Usage {
        wall,
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
        max_rss_mib: usage.ru_maxrss as f64 / 1024.0,
        stderr: err_reader.join().unwrap(),
        success: std::process::ExitStatus::from_raw(status).success(),
    }
}

/// The simulator in its own process, on a free port.
pub struct Sim {
    pub child: std::process::Child,
    pub url: String,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn simulator(companies: u32, today: NaiveDate, dir: &Path) -> Sim {
    let port_file = dir.join(format!("port-{today}"));
    let mut sim = Sim {
        child: Command::new(hspq())
            .args(["simulate", "--port", "0", "--rate", "0", "--companies"])
            .arg(companies.to_string())
            .arg("--today")
            .arg(today.to_string())
            .arg("--port-file")
            .arg(&port_file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
        url: String::new(),
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(url) = std::fs::read_to_string(&port_file) {
            if !url.trim().is_empty() {
                sim.url = url.trim().to_string();
                return sim;
            }
        }
        assert!(Instant::now() < deadline, "the simulator did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn sync(sim: &Sim, lake: &Path, cache: &Path) -> Usage {
    let u = measure(
        Command::new(hspq())
            .args(["ingest", "-q", "--sessions", "5", "--rate", "1000"])
            .arg("--base-url")
            .arg(&sim.url)
            .arg("--data")
            .arg(lake)
            .env("HSPQ_ORG_KEY", ORG)
            .env("HSPQ_API_KEY", MSSP)
            .env("XDG_CACHE_HOME", cache),
    );
    assert!(u.success, "{}", String::from_utf8_lossy(&u.stderr));
    u
}

/// What `hspq views --sql` prints for `lake`: the views a plain DuckDB user reads it through
/// (by glob, no deduplication on a lake hspq wrote).
pub fn plain_views(lake: &Path) -> String {
    let out = Command::new(hspq())
        .args(["views", "--sql", "--data"])
        .arg(lake)
        .output()
        .expect("hspq views --sql");
    assert!(
        out.status.success(),
        "hspq views --sql: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sql = String::from_utf8(out.stdout).expect("UTF-8 views");
    assert!(
        !sql.contains("QUALIFY"),
        "hspq views --sql deduplicates on a lake hspq wrote"
    );
    sql
}

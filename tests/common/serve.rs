//! `hspq serve` started for a test, and psql to talk to it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::succeeded;

/// A test password: the server must never print it.
pub const PASSWORD: &str = "pw-7d1e-test";

/// `hspq serve` on a free port of loopback; killed when dropped.
pub struct Server {
    pub child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Server {
    pub fn start(lake: &Path) -> Server {
        Server::start_with(lake, &[])
    }

    /// `hspq serve` with more arguments.
    pub fn start_with(lake: &Path, args: &[&std::ffi::OsStr]) -> Server {
        Server::start_in(lake, args, |_| {})
    }

    /// `hspq serve` with more arguments, its command changed by `setup` (working directory,
    /// environment) before it starts.
    pub fn start_in(
        lake: &Path,
        args: &[&std::ffi::OsStr],
        setup: impl FnOnce(&mut Command),
    ) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let port_file = dir.path().join("port");
        // A generous time limit unless the test sets its own.
        let timeout: &[&str] = if args.contains(&"--query-timeout".as_ref()) {
            &[]
        } else {
            &["--query-timeout", "60s"]
        };
        let mut command = Command::new(env!("CARGO_BIN_EXE_hspq"));
        command
            .args(["serve", "--port", "0"])
            .args(timeout)
            .arg("--port-file")
            .arg(&port_file)
            .arg("--data")
            .arg(lake)
            .args(args)
            .env("HSPQ_SERVE_PASSWORD", PASSWORD)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its scratch folder goes with the test's (a killed server cannot remove it).
            .env("TMPDIR", dir.path());
        setup(&mut command);
        let mut child = command.spawn().unwrap();
        let started = Instant::now();
        let port = loop {
            if let Ok(text) = std::fs::read_to_string(&port_file) {
                if let Some(port) = text.rsplit(':').next().and_then(|p| p.parse().ok()) {
                    break port;
                }
            }
            if let Some(status) = child.try_wait().unwrap() {
                let out = child.wait_with_output().unwrap();
                panic!(
                    "hspq serve ended ({status}): {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            assert!(started.elapsed() < Duration::from_secs(60), "no port file");
            std::thread::sleep(Duration::from_millis(50));
        };
        Server {
            child,
            port,
            _dir: dir,
        }
    }

    pub fn conninfo(&self) -> String {
        format!("host=127.0.0.1 port={} user=hspq dbname=hspq", self.port)
    }

    /// `psql -c SQL` with `password`, unaligned, tuples only.
    pub fn psql_as(&self, password: &str, sql: &str) -> Output {
        self.psql_over(&self.conninfo(), password, sql)
    }

    /// `psql -c SQL` on `conninfo` with `password`, unaligned, tuples only.
    pub fn psql_over(&self, conninfo: &str, password: &str, sql: &str) -> Output {
        Command::new(psql())
            .arg(conninfo)
            .args(["-X", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .env("PGPASSWORD", password)
            .env("PGCONNECT_TIMEOUT", "20")
            .output()
            .unwrap()
    }

    pub fn psql(&self, sql: &str) -> String {
        String::from_utf8(succeeded(self.psql_as(PASSWORD, sql))).unwrap()
    }

    /// Stops the server and returns what it printed.
    pub fn stop(mut self) -> String {
        let _ = self.child.kill();
        let out = std::mem::replace(&mut self.child, Command::new("true").spawn().unwrap())
            .wait_with_output()
            .unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn psql() -> PathBuf {
    for dir in ["/usr/bin", "/usr/local/bin"] {
        let p = Path::new(dir).join("psql");
        if p.exists() {
            return p;
        }
    }
    panic!("psql not found: run ./scripts/test.sh, which installs postgresql-client");
}

/// A child process killed and reaped when dropped, so that a failing test leaves none behind.
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

//! Telling whether a process that left something behind (a session token, a lake lock) is
//! still running, without mistaking a later process that reuses its pid for it.

use serde::{Deserialize, Serialize};

/// A process: its pid and its start time (clock ticks since boot, Linux), and the PID
/// namespace the pid means something in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// Process id.
    pub pid: u32,
    /// Start time, when the system tells it.
    pub started: Option<u64>,
    /// The PID namespace and boot (`pid:[4026531836]@<boot id>`): containers on one host may
    /// share its name and not their pids. Absent in records of older hspq versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub space: Option<String>,
}

impl Owner {
    /// This process.
    pub fn this_process() -> Owner {
        let pid = std::process::id();
        Owner {
            pid,
            started: start_time(pid),
            space: pid_space(),
        }
    }

    /// A process of this PID namespace (what a record written before namespaces were noted,
    /// on this machine, names).
    pub fn here(pid: u32, started: Option<u64>) -> Owner {
        Owner {
            pid,
            started,
            space: pid_space(),
        }
    }

    /// Whether the process still runs. Where `/proc` is missing, or the process lives in
    /// another PID namespace or boot than this one, we cannot tell and say yes, so nothing of
    /// a running process is ever taken away.
    pub fn alive(&self) -> bool {
        if !std::path::Path::new("/proc/self/stat").exists() {
            return true;
        }
        // A record of an older hspq names no namespace: taken as this one's, as it was then.
        if self.space.is_some() && self.space != pid_space() {
            return true;
        }
        match start_time(self.pid) {
            None => false,
            Some(now) => self.started.is_none_or(|then| then == now),
        }
    }
}

/// This machine's name, to tell whether a pid can be checked here at all.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

/// This process's PID namespace and boot, as [`Owner::space`] holds them.
fn pid_space() -> Option<String> {
    let ns = std::fs::read_link("/proc/self/ns/pid").ok()?;
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    Some(format!("{}@{}", ns.display(), boot.trim()))
}

/// Field 22 of `/proc/PID/stat`: start time in clock ticks since boot.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_an_exited_one_is_not() {
        let me = Owner::this_process();
        assert!(me.alive() && me.started.is_some());
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        // Exited, or its pid reused by a process with another start time.
        assert!(!Owner {
            pid,
            started: Some(1),
            space: pid_space(),
        }
        .alive());
        // A pid of another namespace (a container with this host's name) cannot be checked.
        assert!(Owner {
            pid,
            started: Some(1),
            space: Some("pid:[1]@elsewhere".into()),
        }
        .alive());
    }
}

//! Telling whether a process that left something behind (a session token, a lake lock) is
//! still running, without mistaking a later process that reuses its pid for it.

use serde::{Deserialize, Serialize};

/// A process: its pid and its start time (clock ticks since boot, Linux).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// Process id.
    pub pid: u32,
    /// Start time, when the system tells it.
    pub started: Option<u64>,
}

impl Owner {
    /// This process.
    pub fn this_process() -> Owner {
        let pid = std::process::id();
        Owner {
            pid,
            started: start_time(pid),
        }
    }

    /// Whether the process still runs. Where `/proc` is missing we cannot tell and say yes, so
    /// nothing of a running process is ever taken away.
    pub fn alive(&self) -> bool {
        if !std::path::Path::new("/proc/self/stat").exists() {
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
            started: Some(1)
        }
        .alive());
    }
}

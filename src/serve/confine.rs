//! The second guard, below SQL: a thread that runs a client's SQL can write nowhere but the
//! server's scratch folder and open no network connection, whatever statement reaches DuckDB.
//!
//! The first guard ([`super::guard`]) lets only reads run; this one holds if it is ever wrong.
//! DuckDB offers none itself: its sandbox (`allowed_directories`) does not tell reading from
//! writing, so `COPY ... TO` into the lake's folder, which it must read, would succeed. Linux's
//! Landlock does: the DuckDB database the sessions share is opened on a confined thread, so
//! DuckDB's worker threads, started from it, are confined too; each session's thread confines
//! itself before it runs any SQL (DuckDB works on the calling thread too, and on the threads
//! results are streamed from, which it starts); nothing that runs under the confinement can
//! lift it. The lake, an S3 lake's local replica (kept by the server, outside
//! the sessions), the working directory and `$TMPDIR` are out of reach; DuckDB may spill into
//! the scratch folder, a fresh one under `$TMPDIR` removed when the server stops.
//!
//! On a kernel without Landlock (before 5.13, or not enabled) the server says so at start and
//! serves: the first guard and DuckDB's sandbox still hold.

use std::path::Path;

use crate::lake::pins::Pins;
use landlock::{
    path_beneath_rules, AccessFs, AccessNet, Ruleset, RulesetAttr, RulesetCreatedAttr,
    RulesetStatus, ABI,
};

/// The Landlock ABI whose rights are asked for (5: writes, truncation, device ioctls, TCP);
/// older kernels enforce what they know.
const TARGET_ABI: ABI = ABI::V5;

/// Where sessions may write, and whether they are confined to it.
pub struct Confinement {
    scratch: tempfile::TempDir,
    /// Writes the sessions' reader pins into the lake (see [`crate::lake::pins`]): a thread
    /// started outside the confinement, as sessions may write nothing there.
    pins: Option<Pins>,
}

/// How well the kernel confines a thread.
#[derive(Debug, PartialEq, Eq)]
pub enum Enforced {
    /// Every right asked for.
    Fully,
    /// Some (an older kernel): writes are confined, the network perhaps not.
    Partly,
    /// Not at all: no Landlock here.
    No,
}

impl Confinement {
    /// A fresh scratch folder under `$TMPDIR`.
    pub fn new() -> std::io::Result<Confinement> {
        Ok(Confinement {
            scratch: tempfile::Builder::new().prefix("hspq-serve-").tempdir()?,
            pins: None,
        })
    }

    /// Keeps the sessions' reader pins in the lake folder `root`, from a thread started now
    /// (call it outside any confinement); `tidying` for the lake itself, not an S3 lake's copy
    /// (see [`Pins::start_tidying`]).
    pub fn with_pins(mut self, root: &Path, tidying: bool) -> std::io::Result<Confinement> {
        self.pins = Some(match tidying {
            true => Pins::start_tidying(root)?,
            false => Pins::start(root)?,
        });
        Ok(self)
    }

    /// Who writes the sessions' pins.
    pub fn pins(&self) -> Option<&Pins> {
        self.pins.as_ref()
    }

    /// The scratch folder.
    pub fn scratch(&self) -> &Path {
        self.scratch.path()
    }

    /// Removes the scratch folder now (the server is stopping; sessions may still hold this).
    pub fn remove(&self) {
        let _ = std::fs::remove_dir_all(self.scratch.path());
    }

    /// Confines the calling thread, and the threads it starts from now on, for good.
    pub fn enter(&self) -> Result<Enforced, ConfineError> {
        let writes = AccessFs::from_write(TARGET_ABI);
        let status = Ruleset::default()
            .handle_access(writes)?
            .handle_access(AccessNet::BindTcp | AccessNet::ConnectTcp)?
            .create()?
            .add_rules(path_beneath_rules([self.scratch.path()], writes))?
            .restrict_self()?;
        Ok(match status.ruleset {
            RulesetStatus::FullyEnforced => Enforced::Fully,
            RulesetStatus::PartiallyEnforced => Enforced::Partly,
            RulesetStatus::NotEnforced => Enforced::No,
        })
    }

    /// How well this kernel confines sessions, tried on a thread that then ends.
    pub fn probe(&self) -> Result<Enforced, ConfineError> {
        std::thread::scope(|s| {
            s.spawn(|| self.enter())
                .join()
                .unwrap_or(Err(ConfineError::Probe))
        })
    }
}

/// Why a thread could not be confined.
#[derive(Debug, thiserror::Error)]
pub enum ConfineError {
    /// The kernel refused the Landlock rules.
    #[error("cannot confine the session: {0}")]
    Landlock(#[from] landlock::RulesetError),
    /// The thread that tried panicked.
    #[error("the Landlock probe failed")]
    Probe,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_confined_thread_writes_only_into_the_scratch_folder() {
        let confinement = Confinement::new().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let (inside_file, outside_file) = (
            confinement.scratch().join("spill"),
            outside.path().join("x.csv"),
        );
        let outcome = std::thread::scope(|s| {
            s.spawn(|| {
                let enforced = confinement.enter().unwrap();
                // A thread started after confinement is confined too (DuckDB's workers).
                let child = std::thread::spawn({
                    let outside_file = outside_file.clone();
                    move || std::fs::write(outside_file, "x").is_ok()
                })
                .join()
                .unwrap();
                (
                    enforced,
                    std::fs::write(&inside_file, "x").is_ok(),
                    std::fs::write(&outside_file, "x").is_ok(),
                    child,
                    std::net::TcpStream::connect("127.0.0.1:9").map_err(|e| e.kind()),
                )
            })
            .join()
            .unwrap()
        });
        if outcome.0 == Enforced::No {
            eprintln!("no Landlock on this kernel: nothing to check");
            return;
        }
        assert!(outcome.1, "the scratch folder is writable");
        assert!(!outcome.2 && !outcome.3, "{outcome:?}");
        assert!(!outside_file.exists());
        if outcome.0 == Enforced::Fully {
            assert_eq!(outcome.4.err(), Some(std::io::ErrorKind::PermissionDenied));
        }
        // The thread that confined itself has ended; this one was never confined.
        std::fs::write(&outside_file, "x").unwrap();
    }
}

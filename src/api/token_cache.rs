//! Session tokens of running hspq processes, kept so a run killed with SIGKILL cannot leave the
//! organisation's five sessions taken for an hour.
//!
//! Each live session is recorded with its owner (pid and process start time) in a file in the
//! user's private cache folder (`~/.cache/hspq/sessions.json`, mode 0600 in a 0700 folder;
//! never in the lake). The next run invalidates the sessions whose owner is gone. Sessions of
//! processes still running are left alone: two runs at once must not cut each other off.
//! Failures here only warn: the cache helps clean-up, it never stops a run.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tracing::warn;

use super::secret::Secret;
use crate::process::Owner;

/// The default cache file.
pub fn default_path() -> Option<PathBuf> {
    dirs::cache_dir().map(|d| d.join("hspq").join("sessions.json"))
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
struct Entry {
    api: String,
    pid: u32,
    started: Option<u64>,
    token: String,
    expires_unix: u64,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The cache file, scoped to one API base URL.
#[derive(Clone, Debug)]
pub(crate) struct TokenCache {
    path: PathBuf,
    api: String,
    owner: Owner,
}

impl TokenCache {
    pub(crate) fn new(path: PathBuf, api: &str) -> TokenCache {
        TokenCache {
            path,
            api: api.to_string(),
            owner: Owner::this_process(),
        }
    }

    /// Records a session this process created.
    pub(crate) fn add(&self, token: &Secret, ttl: Duration) {
        let entry = Entry {
            api: self.api.clone(),
            pid: self.owner.pid,
            started: self.owner.started,
            token: token.expose().to_string(),
            expires_unix: unix_now() + ttl.as_secs(),
        };
        self.update(|entries| entries.push(entry));
    }

    /// Forgets a session (invalidated or found dead).
    pub(crate) fn remove(&self, token: &Secret) {
        self.update(|entries| entries.retain(|e| e.token != token.expose()));
    }

    /// Takes the unexpired sessions of this API whose owner is gone, and drops expired ones.
    pub(crate) fn take_orphans(&self) -> Vec<Secret> {
        let now = unix_now();
        self.update(|entries| {
            entries.retain(|e| e.expires_unix > now);
            let (orphans, kept): (Vec<Entry>, Vec<Entry>) = entries
                .drain(..)
                .partition(|e| e.api == self.api && !Owner::here(e.pid, e.started).alive());
            *entries = kept;
            orphans.into_iter().map(|e| Secret::new(e.token)).collect()
        })
        .unwrap_or_default()
    }

    fn update<R>(&self, change: impl FnOnce(&mut Vec<Entry>) -> R) -> Option<R> {
        match self.try_update(change) {
            Ok(r) => Some(r),
            Err(e) => {
                warn!(
                    "session cache {}: {e} (sessions of a killed run may stay taken until they expire)",
                    self.path.display()
                );
                None
            }
        }
    }

    fn try_update<R>(&self, change: impl FnOnce(&mut Vec<Entry>) -> R) -> std::io::Result<R> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        create_private_dir(dir)?;
        // One writer at a time across processes: an advisory lock on a sibling file, so the
        // data file itself can be replaced by rename.
        let lock = private_open(&self.path.with_extension("lock"))?;
        lock.lock()?;
        let mut entries: Vec<Entry> = match File::open(&self.path) {
            Ok(mut f) => {
                let mut text = String::new();
                f.read_to_string(&mut text)?;
                serde_json::from_str(&text).unwrap_or_default()
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let result = change(&mut entries);
        let tmp = self
            .path
            .with_extension(format!("tmp{}", std::process::id()));
        {
            let mut f = private_open(&tmp)?;
            f.set_len(0)?;
            f.write_all(serde_json::to_string(&entries)?.as_bytes())?;
            f.sync_all()?;
        }
        fs::rename(&tmp, &self.path)?;
        Ok(result)
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
    }
    #[cfg(not(unix))]
    {
        fs::create_dir_all(dir)
    }
}

fn private_open(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orphans_are_sessions_of_dead_processes_for_the_same_api() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hspq/sessions.json");
        let cache = TokenCache::new(path.clone(), "http://a/v1");
        cache.add(&Secret::new("pps_mine"), Duration::from_secs(60));
        // A process that has exited: its pid is free (or reused with another start time).
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let dead_entry = |token: &str, api: &str, expires_unix: u64| {
            cache.update(|e| {
                e.push(Entry {
                    api: api.into(),
                    pid: dead,
                    started: Some(1),
                    token: token.into(),
                    expires_unix,
                })
            });
        };
        dead_entry("pps_orphan", "http://a/v1", unix_now() + 60);
        dead_entry("pps_other_api", "http://b/v1", unix_now() + 60);
        dead_entry("pps_expired", "http://a/v1", unix_now() - 1);
        assert_eq!(cache.take_orphans(), vec![Secret::new("pps_orphan")]);
        assert_eq!(cache.take_orphans(), Vec::<Secret>::new());
        let left: Vec<Entry> = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        let tokens: Vec<&str> = left.iter().map(|e| e.token.as_str()).collect();
        assert_eq!(tokens, vec!["pps_mine", "pps_other_api"]);
        cache.remove(&Secret::new("pps_mine"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            let dir_mode = fs::metadata(path.parent().unwrap())
                .unwrap()
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(dir_mode, 0o700);
        }
    }
}

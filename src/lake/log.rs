//! The lake's commit log: numbered entries `_hspq/log/<version>.json`, each created with
//! create-if-absent and never rewritten. The entry with the highest version is the lake's
//! state: the whole manifest as of that version, and the lease (which run may write the lake,
//! until when). Delta Lake's log and Iceberg's snapshot commits are the models.
//!
//! Only [`super::commit::LakeWriter`] writes entries; this module reads them. Readers (queries,
//! `hspq status`, the S3 cache) take the latest entry, and ask cheaply whether a newer one
//! exists (a listing that starts after the version they hold).
//!
//! A lake written by hspq before the log existed has only `_hspq/manifest.json`: it reads as
//! version 0, and the first run that takes the lake writes version 1 from it.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::manifest::Manifest;
use super::store::{Lake, LakeError};
use crate::process::{host_name, Owner};

/// The folder of log entries.
pub const LOG_DIR: &str = "_hspq/log";

/// The single manifest of lakes written before the log (read, never written).
pub const LEGACY_MANIFEST: &str = "_hspq/manifest.json";

/// The lock of lakes written before the log (removed by the first run that takes the lake).
pub const LEGACY_LOCK: &str = "_hspq/lock.json";

/// What an entry records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// A run took the lake (free, or its holder's lease had lapsed).
    Acquire,
    /// A run changed the manifest.
    Commit,
    /// A run extended its lease without changing the manifest.
    Refresh,
    /// A run gave the lake up.
    Release,
}

/// Which run may write the lake, and until when.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Lease {
    /// The holding run.
    pub run_id: String,
    /// Its machine.
    pub host: String,
    /// Its process.
    pub owner: Owner,
    /// When it took the lake.
    pub acquired_at: DateTime<Utc>,
    /// When the lease lapses unless the holder writes another entry.
    pub expires_at: DateTime<Utc>,
}

impl Lease {
    /// Why the lease no longer protects its holder, if it does not.
    pub fn stale(&self, now: DateTime<Utc>) -> Option<&'static str> {
        if self.expires_at < now {
            Some("its lease expired")
        } else if self.host == host_name() && !self.owner.alive() {
            Some("its process is gone")
        } else {
            None
        }
    }
}

/// One version of the lake.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The version: one more than the entry before.
    pub version: u64,
    /// What happened.
    pub kind: EntryKind,
    /// The run that wrote it.
    pub run_id: String,
    /// Random, to recognise one's own entry after a write whose answer was lost.
    pub nonce: String,
    /// When it was written.
    pub written_at: DateTime<Utc>,
    /// The holder after this entry; `None` when the lake is free.
    pub lease: Option<Lease>,
    /// The lake's files and sync state as of this version.
    pub manifest: Manifest,
}

/// The path of the entry of `version`.
pub fn entry_path(version: u64) -> String {
    format!("{LOG_DIR}/{version:020}.json")
}

/// The version of a log entry's path.
pub fn version_of(path: &str) -> Option<u64> {
    path.strip_prefix(LOG_DIR)?
        .strip_prefix('/')?
        .strip_suffix(".json")?
        .parse()
        .ok()
}

/// Every version in the log, ascending; with `after`, only the newer ones.
pub async fn versions(lake: &Lake, after: Option<u64>) -> Result<Vec<u64>, LakeError> {
    let listed = match after {
        None => lake.list(LOG_DIR).await?,
        Some(v) => lake.list_after(LOG_DIR, &entry_path(v)).await?,
    };
    let mut versions: Vec<u64> = listed
        .iter()
        .filter_map(|l| version_of(&l.path))
        .filter(|v| after.is_none_or(|a| *v > a))
        .collect();
    versions.sort_unstable();
    Ok(versions)
}

/// Reads the entry of `version`, or `None` if there is none.
pub async fn read(lake: &Lake, version: u64) -> Result<Option<Entry>, LakeError> {
    let path = entry_path(version);
    match lake.get(&path).await? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| LakeError::Corrupt {
                path: format!("{}/{path}", lake.location()),
                detail: e.to_string(),
            }),
    }
}

/// The lake's latest entry; `None` for a lake never written.
pub async fn latest(lake: &Lake) -> Result<Option<Entry>, LakeError> {
    newer_than(lake, None).await
}

/// The latest entry if it is newer than `version` (`None` asks for the latest at all).
pub async fn newer_than(lake: &Lake, version: Option<u64>) -> Result<Option<Entry>, LakeError> {
    // A clean-up may delete an old entry between the listing and the read: look again.
    for _ in 0..5 {
        let found = versions(lake, version).await?;
        match found.last() {
            Some(&v) => {
                if let Some(entry) = read(lake, v).await? {
                    return Ok(Some(entry));
                }
            }
            None if version.is_none() => return legacy(lake).await,
            None => return Ok(None),
        }
    }
    Err(LakeError::Corrupt {
        path: format!("{}/{LOG_DIR}", lake.location()),
        detail: "its latest entry keeps disappearing while being read".into(),
    })
}

/// A lake from before the log, as version 0.
async fn legacy(lake: &Lake) -> Result<Option<Entry>, LakeError> {
    let Some(bytes) = lake.get(LEGACY_MANIFEST).await? else {
        return Ok(None);
    };
    let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| LakeError::Corrupt {
        path: format!("{}/{LEGACY_MANIFEST}", lake.location()),
        detail: e.to_string(),
    })?;
    Ok(Some(Entry {
        version: 0,
        kind: EntryKind::Commit,
        run_id: String::new(),
        nonce: String::new(),
        written_at: DateTime::<Utc>::MIN_UTC,
        lease: None,
        manifest,
    }))
}

/// The entry's bytes as stored (compact JSON: an entry holds the whole manifest).
pub fn encode(entry: &Entry) -> Bytes {
    Bytes::from(serde_json::to_vec(entry).expect("a log entry always serializes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_paths_sort_by_version() {
        assert_eq!(entry_path(12), "_hspq/log/00000000000000000012.json");
        assert!(entry_path(9) < entry_path(10));
        assert_eq!(version_of(&entry_path(12)), Some(12));
        assert_eq!(version_of("_hspq/log/tmp.json"), None);
        assert_eq!(version_of("_hspq/manifest.json"), None);
    }

    #[tokio::test]
    async fn a_lake_from_before_the_log_reads_as_version_0() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(&dir.path().into()).unwrap();
        assert_eq!(latest(&lake).await.unwrap(), None);
        let mut m = Manifest::new();
        m.state.open_runs.insert("r".into(), serde_json::json!({}));
        std::fs::create_dir_all(dir.path().join("_hspq")).unwrap();
        std::fs::write(
            dir.path().join(LEGACY_MANIFEST),
            serde_json::to_vec(&m).unwrap(),
        )
        .unwrap();
        let e = latest(&lake).await.unwrap().unwrap();
        assert_eq!((e.version, e.lease, e.manifest), (0, None, m));
        assert_eq!(newer_than(&lake, Some(0)).await.unwrap(), None);
    }
}

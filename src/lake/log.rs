//! The lake's commit log: numbered entries `_hspq/log/<version>.json`, each created with
//! create-if-absent and never rewritten. The entry with the highest version is the lake's
//! state: the manifest as of that version, and the lease (which run may write the lake, until
//! when). Delta Lake's log and Iceberg's snapshot commits are the models.
//!
//! An entry lists every live file itself (what a reader of the format needs), and names the
//! object under `_hspq/sync/` that holds the sync state and staged chunks: those are most of a
//! manifest's size (each customer's fetched range) and change once or twice a sync, so entries
//! share the object until they change it, and it is stored compressed.
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

use std::collections::BTreeMap;

use super::manifest::{FileEntry, Manifest, StagedChunk, SyncState};
use super::store::{Lake, LakeError};
use crate::process::{host_name, Owner};

/// The folder of log entries.
pub const LOG_DIR: &str = "_hspq/log";

/// The folder of the objects holding entries' sync state (see the module docs).
pub const SYNC_DIR: &str = "_hspq/sync";

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

/// How the run that gave the lake up ended (on `release` entries; entries of older hspq
/// versions have none, and count as finished).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    /// Its work done: the lake as a sync (or a fit) left it.
    Finished,
    /// Stopped by Ctrl-C: what it committed stays, the rest the next run does.
    Interrupted,
    /// Stopped by an error.
    Failed,
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
    /// On a `release` entry: how the run ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ending: Option<Ending>,
    /// The lake's files and sync state as of this version.
    pub manifest: Manifest,
    /// The object under [`SYNC_DIR`] holding the manifest's `state` and `staged`, shared with
    /// the entries before it that had the same; `None` in an entry not stored yet (storing
    /// writes one) or one that holds them itself (written before such objects, or a copy's).
    #[serde(default, rename = "sync", skip_serializing_if = "Option::is_none")]
    pub sync_object: Option<String>,
    /// The entry's sync object is gone (removed by hand, or lost) or unreadable: the files are
    /// known, the sync state is not, so the next sync fetches everything again (see
    /// [`newer_than`]).
    #[serde(skip)]
    pub state_lost: bool,
}

/// What an entry's sync object holds.
#[derive(Serialize, Deserialize)]
struct SyncObject {
    state: SyncState,
    staged: Vec<StagedChunk>,
}

/// An entry as stored: the manifest's files, and the sync object's path for the rest.
#[derive(Serialize)]
struct Stored<'a> {
    version: u64,
    kind: EntryKind,
    run_id: &'a str,
    nonce: &'a str,
    written_at: DateTime<Utc>,
    lease: &'a Option<Lease>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ending: Option<Ending>,
    manifest: StoredManifest<'a>,
    sync: &'a str,
}

#[derive(Serialize)]
struct StoredManifest<'a> {
    version: u32,
    files: &'a BTreeMap<String, FileEntry>,
    dead: &'a BTreeMap<String, DateTime<Utc>>,
}

impl Entry {
    /// Whether this entry is the state a finished run left (what `--as-of` a time reads).
    pub fn finished_a_run(&self) -> bool {
        self.kind == EntryKind::Release && self.ending.is_none_or(|e| e == Ending::Finished)
    }
}

/// What a clean-up needs of an entry, read without its sync object.
#[derive(Deserialize)]
pub struct Head {
    /// What happened.
    pub kind: EntryKind,
    /// When it was written.
    pub written_at: DateTime<Utc>,
    /// Its sync object.
    #[serde(default)]
    pub sync: Option<String>,
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

/// Reads the entry of `version`, or `None` if there is none (or a clean-up is deleting it:
/// its sync object is gone).
pub async fn read(lake: &Lake, version: u64) -> Result<Option<Entry>, LakeError> {
    let path = entry_path(version);
    let Some(bytes) = lake.get(&path).await? else {
        return Ok(None);
    };
    let mut entry: Entry = parse(lake, &path, &bytes)?;
    if let Some(object) = &entry.sync_object {
        let Some(packed) = lake.get(object).await? else {
            return Ok(None);
        };
        let sync = zstd::decode_all(packed.as_ref())
            .map_err(|e| e.to_string())
            .and_then(|json| {
                serde_json::from_slice::<SyncObject>(&json).map_err(|e| e.to_string())
            });
        match sync {
            Ok(sync) => {
                entry.manifest.state = sync.state;
                entry.manifest.staged = sync.staged;
            }
            // Damaged (cut short, overwritten): as if lost. The files readers need are in the
            // entry; the sync state is only what the next sync would skip fetching, so that
            // sync fetches everything again, keeping the lake (moving the log aside would
            // lose what the API no longer gives).
            Err(e) => {
                tracing::warn!(
                    "v{version} names the sync object {object}, which is unreadable ({e}): the \
                     next sync fetches everything again"
                );
                entry.state_lost = true;
            }
        }
    }
    Ok(Some(entry))
}

/// What a clean-up needs of the entry of `version`, or `None` if there is none.
pub async fn head(lake: &Lake, version: u64) -> Result<Option<Head>, LakeError> {
    let path = entry_path(version);
    match lake.get(&path).await? {
        None => Ok(None),
        Some(bytes) => parse(lake, &path, &bytes).map(Some),
    }
}

/// The version whose entry first named the sync object at `path`.
pub fn sync_version_of(path: &str) -> Option<u64> {
    path.strip_prefix(SYNC_DIR)?
        .strip_prefix('/')?
        .split_once('-')?
        .0
        .parse()
        .ok()
}

fn parse<'a, T: Deserialize<'a>>(lake: &Lake, path: &str, bytes: &'a [u8]) -> Result<T, LakeError> {
    serde_json::from_slice(bytes).map_err(|e| corrupt(lake, path, e))
}

fn corrupt(lake: &Lake, path: &str, e: impl std::fmt::Display) -> LakeError {
    LakeError::Corrupt {
        path: format!("{}/{path}", lake.location()),
        detail: e.to_string(),
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
    // The newest entry is there and its sync object is not: no clean-up deletes that one, so
    // it was lost. What readers need, the files, is in the entry; the sync state is not: the
    // entry says so, and the next sync fetches everything again (the lake's files, and what
    // the API no longer gives, stay).
    if let Some(&v) = versions(lake, version).await?.last() {
        let path = entry_path(v);
        if let Some(bytes) = lake.get(&path).await? {
            let mut entry: Entry = parse(lake, &path, &bytes)?;
            if let Some(object) = &entry.sync_object {
                if lake.get(object).await?.is_none() {
                    tracing::debug!("v{v} names the sync object {object}, which is gone");
                    entry.state_lost = true;
                    return Ok(Some(entry));
                }
            }
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
        ending: None,
        manifest,
        sync_object: None,
        state_lost: false,
    }))
}

/// Which version of the lake a reader shows (`--as-of`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AsOf {
    /// A log version, `v42`.
    Version(u64),
    /// The state after the last run that finished by then (an RFC 3339 time, or the end of a
    /// date in the API's timezone).
    Time(DateTime<Utc>),
}

/// Why `--as-of` could not be read: the message names the forms it takes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AsOfError(String);

impl std::str::FromStr for AsOf {
    type Err = AsOfError;

    fn from_str(text: &str) -> Result<AsOf, AsOfError> {
        let t = text.trim();
        if let Some(v) = t.strip_prefix(['v', 'V']) {
            return v.parse().map(AsOf::Version).map_err(|_| bad_as_of(text));
        }
        // The version column of `hspq log`, as it prints it.
        if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
            return t.parse().map(AsOf::Version).map_err(|_| bad_as_of(text));
        }
        if let Ok(time) = DateTime::parse_from_rfc3339(t) {
            return Ok(AsOf::Time(time.with_timezone(&Utc)));
        }
        if t.contains(':') {
            // ISO 8601's offset without its colon too (+0100).
            let offset = DateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f%z")
                .or_else(|_| DateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f%z"));
            if let Ok(time) = offset {
                return Ok(AsOf::Time(time.with_timezone(&Utc)));
            }
            let local = chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f")
                .or_else(|_| chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f"));
            if local.is_ok() {
                return Err(AsOfError(format!(
                    "{text:?} has no timezone: add Z for UTC or an offset such as +01:00 ({t}Z)"
                )));
            }
            // Said by what is wrong with it as a full time, not by where a guess stopped.
            let why = match DateTime::parse_from_rfc3339(t).map_err(|e| e.kind()) {
                Err(chrono::format::ParseErrorKind::OutOfRange) => {
                    "a field is out of range: hours run 00-23, minutes and seconds 00-59, \
                     offsets up to ±23:59"
                }
                Err(chrono::format::ParseErrorKind::TooShort) => "it ends too soon",
                _ => "it is not in the form 2026-12-01T08:00:00Z",
            };
            return Err(AsOfError(format!(
                "{text:?} is not a time ({why}): write it as 2026-12-01T08:00:00Z, or with an \
                 offset such as +01:00"
            )));
        }
        let day = chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d").map_err(|e| {
            if t.len() == 10 && t.as_bytes().get(4) == Some(&b'-') {
                AsOfError(format!("{text:?} is not a date ({e})"))
            } else {
                bad_as_of(text)
            }
        })?;
        // By the end of that day where the API lives: before the next one starts.
        let next = day.succ_opt().ok_or_else(|| bad_as_of(text))?;
        let start = next
            .and_hms_opt(0, 0, 0)
            .and_then(|t| {
                t.and_local_timezone(chrono_tz::Europe::Stockholm)
                    .earliest()
            })
            .ok_or_else(|| bad_as_of(text))?;
        Ok(AsOf::Time(
            start.with_timezone(&Utc) - chrono::Duration::nanoseconds(1),
        ))
    }
}

#[cfg(test)]
mod as_of_tests {
    use super::*;

    #[test]
    fn as_of_reads_versions_times_and_dates_and_says_what_is_wrong() {
        assert_eq!("v42".parse(), Ok(AsOf::Version(42)));
        assert_eq!("42".parse(), Ok(AsOf::Version(42)), "as hspq log prints it");
        let t = "2026-12-01T08:00:00.5+01:00".parse::<AsOf>().unwrap();
        assert_eq!(
            t,
            AsOf::Time("2026-12-01T07:00:00.5Z".parse::<DateTime<Utc>>().unwrap())
        );
        // The end of the day in Stockholm (UTC+1 in winter).
        let d = "2026-12-01".parse::<AsOf>().unwrap();
        assert_eq!(
            d,
            AsOf::Time(
                "2026-12-01T22:59:59.999999999Z"
                    .parse::<DateTime<Utc>>()
                    .unwrap()
            )
        );
        let e = |s: &str| s.parse::<AsOf>().unwrap_err().to_string();
        assert!(
            e("2026-02-30").contains("is not a date"),
            "{}",
            e("2026-02-30")
        );
        assert!(e("2026-12-01T08:00:00").contains("has no timezone"));
        assert!(e("2026-12-01T25:00:00Z").contains("is not a time"));
        for wrong in ["2026-12-01T24:00:00Z", "2026-12-01T08:00:00+25:00"] {
            assert!(
                e(wrong).contains("out of range: hours run 00-23"),
                "{}",
                e(wrong)
            );
        }
        assert!(e("2026-12-01 08:00").contains("ends too soon"));
        assert_eq!(
            "2026-12-01T08:00:00+0100".parse(),
            "2026-12-01T07:00:00Z".parse::<AsOf>()
        );
        assert!(e("yesterday").contains("is not a version of the lake"));
        assert!(e("v-1").contains("is not a version of the lake"));
    }
}

fn bad_as_of(text: &str) -> AsOfError {
    AsOfError(format!(
        "{text:?} is not a version of the lake: use v42 (a version `hspq log` lists), a time \
         (2026-12-01T08:00:00Z) or a date (2026-12-01, the end of that day in Stockholm)"
    ))
}

/// The entry `as_of` names, or an error that says what is kept.
pub async fn resolve(lake: &Lake, as_of: &AsOf) -> Result<Entry, LakeError> {
    let kept = versions(lake, None).await?;
    let (Some(&oldest), Some(&newest)) = (kept.first(), kept.last()) else {
        return Err(LakeError::Version(format!(
            "{} has no versions yet: run hspq ingest first",
            lake.location()
        )));
    };
    let what_is_kept = format!(
        "the oldest version kept is v{oldest} (hspq keeps the last ten versions, and the one \
         each finished sync left for --version-retention, 7 days unless set otherwise; \
         `hspq log` lists them)"
    );
    match as_of {
        AsOf::Version(v) if *v > newest || *v == 0 => Err(LakeError::Version(format!(
            "v{v} does not exist: the lake's versions run from v1 to v{newest} (`hspq log` \
             lists those kept)"
        ))),
        AsOf::Version(v) if *v < oldest => Err(LakeError::Version(format!(
            "v{v} is no longer kept: {what_is_kept}"
        ))),
        AsOf::Version(v) => read(lake, *v).await?.ok_or_else(|| {
            LakeError::Version(format!(
                "v{v} is not kept: hspq keeps the last ten versions, and the one each finished \
                 sync left, from v{oldest} to v{newest} (`hspq log` lists them)"
            ))
        }),
        // What the lake will be then is not known yet; frozen at today's newest it would
        // give two answers for the same time.
        AsOf::Time(t) if *t > Utc::now() => {
            // A date was read as the last instant of that day in Stockholm: said so.
            let local = t.with_timezone(&chrono_tz::Europe::Stockholm);
            let (what, why) = if local.format("%H:%M:%S%.9f").to_string() == "23:59:59.999999999" {
                (
                    local.format("%Y-%m-%d").to_string(),
                    " (a date means the end of that day in Stockholm)",
                )
            } else {
                (t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true), "")
            };
            Err(LakeError::Version(format!(
                "{what} is still to come{why}: --as-of reads the lake as it was; leave it out to \
                 read the newest version, following syncs"
            )))
        }
        AsOf::Time(t) => {
            for v in kept.iter().rev() {
                let Some(entry) = read(lake, *v).await? else {
                    continue;
                };
                // To the microsecond, as `hspq log` shows the time: pasted back, it finds
                // that version.
                if entry.finished_a_run()
                    && chrono::SubsecRound::trunc_subsecs(entry.written_at, 6) <= *t
                {
                    return Ok(entry);
                }
            }
            Err(LakeError::Version(format!(
                "no sync had finished by {} among the versions kept: {what_is_kept}",
                t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
            )))
        }
    }
}

/// One line of `hspq log`: a version a run left (a finished run's last, or the newest), with
/// what changed since the line before.
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    /// The version (`--as-of v42`).
    pub version: u64,
    /// When it was written.
    pub at: DateTime<Utc>,
    /// The run that wrote it.
    pub run_id: String,
    /// `finished`, `interrupted` (Ctrl-C) or `failed` (it gave the lake back: `--as-of` a time
    /// reads only the finished ones), `writing` (its lease is held) or `stopped` (it ended
    /// without giving the lake back: killed, or taken over).
    pub status: &'static str,
    /// Datasets with a changed partition since the line before (for the oldest line, whose
    /// version before is no longer kept: the datasets its run wrote files of).
    pub datasets: Vec<String>,
    /// Partitions changed since the line before (the oldest line: its run wrote files in).
    pub partitions: usize,
    /// Rows in the live files added since the line before (the oldest line: its run wrote).
    pub rows_written: u64,
    /// Live rows.
    pub rows: u64,
}

/// The kept versions that finished a run, and the newest, oldest first: the history
/// `--as-of` can read (leases, refreshes and the commits inside a run folded).
pub async fn lines(lake: &Lake) -> Result<Vec<Line>, LakeError> {
    let mut entries = Vec::new();
    for v in versions(lake, None).await? {
        entries.extend(read(lake, v).await?);
    }
    let mut lines = Vec::new();
    let mut before: Option<Manifest> = None;
    let mut entries = entries.into_iter().peekable();
    while let Some(entry) = entries.next() {
        let v = entry.version;
        // A run's end: its release, or its last commit (a run killed or taken over, or the
        // one writing now).
        let last_of_run = entries
            .peek()
            .is_none_or(|next| next.run_id != entry.run_id);
        if entry.kind != EntryKind::Release && !last_of_run {
            continue;
        }
        let status = match (&entry.kind, &entry.lease) {
            (EntryKind::Release, _) => match entry.ending {
                None | Some(Ending::Finished) => "finished",
                Some(Ending::Interrupted) => "interrupted",
                Some(Ending::Failed) => "failed",
            },
            (_, Some(lease)) if lease.stale(Utc::now()).is_none() => "writing",
            _ => "stopped",
        };
        let m = &entry.manifest;
        // What changed since the line before; for the first line kept (the version before it
        // is gone), what its own run wrote that is still live (files it removed are unknown).
        let added: Vec<(&String, &super::manifest::FileEntry)> = m
            .files
            .iter()
            .filter(|(p, f)| match &before {
                Some(old) => !old.files.contains_key(*p),
                None => f.run_id == entry.run_id,
            })
            .collect();
        let removed: Vec<&String> = before
            .iter()
            .flat_map(|old| old.files.keys().filter(|p| !m.files.contains_key(*p)))
            .collect();
        let dirs: std::collections::BTreeSet<&str> = added
            .iter()
            .map(|(p, _)| p.as_str())
            .chain(removed.iter().map(|p| p.as_str()))
            .map(|p| p.rsplit_once('/').map_or(p, |(dir, _)| dir))
            .collect();
        let names: std::collections::BTreeSet<String> = dirs
            .iter()
            .map(|d| d.split('/').next().unwrap_or(d).to_string())
            .collect();
        let (datasets, partitions, rows_written) = (
            names.into_iter().collect(),
            dirs.len(),
            added.iter().map(|(_, f)| f.rows).sum(),
        );
        lines.push(Line {
            version: v,
            at: entry.written_at,
            run_id: entry.run_id.clone(),
            status,
            datasets,
            partitions,
            rows_written,
            rows: m.files.values().map(|f| f.rows).sum(),
        });
        before = Some(entry.manifest);
    }
    Ok(lines)
}

/// Stores the sync object of `entry` unless it shares one already (and names it in `entry`),
/// and returns the entry's bytes to store (compact JSON).
pub async fn prepare(lake: &Lake, entry: &mut Entry) -> Result<Bytes, LakeError> {
    let object = match &entry.sync_object {
        Some(object) => object.clone(),
        None => {
            let object = format!("{SYNC_DIR}/{:020}-{}.json.zst", entry.version, entry.nonce);
            let json = serde_json::to_vec(&SyncObject {
                state: entry.manifest.state.clone(),
                staged: entry.manifest.staged.clone(),
            })
            .expect("sync state always serializes");
            let packed =
                zstd::encode_all(json.as_slice(), 3).map_err(|e| corrupt(lake, &object, e))?;
            // Named after this entry's version and nonce: a retry after a lost answer finds its
            // own object there, and no other writer uses the name.
            lake.put_new(&object, Bytes::from(packed)).await?;
            entry.sync_object = Some(object.clone());
            object
        }
    };
    let m = &entry.manifest;
    let stored = Stored {
        version: entry.version,
        kind: entry.kind,
        run_id: &entry.run_id,
        nonce: &entry.nonce,
        written_at: entry.written_at,
        lease: &entry.lease,
        ending: entry.ending,
        manifest: StoredManifest {
            version: m.version,
            files: &m.files,
            dead: &m.dead,
        },
        sync: &object,
    };
    Ok(Bytes::from(
        serde_json::to_vec(&stored).expect("a log entry always serializes"),
    ))
}

/// The entry's bytes with the whole manifest in them, for a copy of the lake (which keeps
/// only the versions its readers use, so size does not matter, and has no sync objects).
pub fn encode_whole(entry: &Entry) -> Bytes {
    let whole = Entry {
        sync_object: None,
        ..entry.clone()
    };
    Bytes::from(serde_json::to_vec(&whole).expect("a log entry always serializes"))
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
    async fn a_version_asked_for_that_is_not_kept_is_named_with_those_that_are() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(&dir.path().into()).unwrap();
        for version in [3, 4, 6] {
            let entry = Entry {
                version,
                kind: EntryKind::Release,
                run_id: "r".into(),
                nonce: "n".into(),
                written_at: Utc::now(),
                lease: None,
                ending: None,
                manifest: Manifest::new(),
                sync_object: None,
                state_lost: false,
            };
            lake.put(&entry_path(version), encode_whole(&entry))
                .await
                .unwrap();
        }
        let lake = &lake;
        let said = |v: u64| async move {
            resolve(lake, &AsOf::Version(v))
                .await
                .map(|e| e.version)
                .map_err(|e| e.to_string())
        };
        assert_eq!(said(4).await, Ok(4));
        let gap = said(5).await.unwrap_err();
        assert!(
            gap.starts_with("v5 is not kept") && gap.contains("from v3 to v6"),
            "{gap}"
        );
        let old = said(2).await.unwrap_err();
        assert!(
            old.starts_with("v2 is no longer kept")
                && old.contains("the oldest version kept is v3"),
            "{old}"
        );
        assert!(said(7).await.unwrap_err().contains("does not exist"));
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

//! Reader pins: how an hspq reader keeps the files of the version it reads where they are for
//! as long as it reads them, however many syncs end meanwhile.
//!
//! A reader creates `_hspq/pins/<version>-<pid>-<random>.json` in the lake folder it reads (an
//! S3 lake's local copy for a reader of S3), renews it while reading and removes it when done.
//! A pin lapses when its process is gone (on this machine) or it was not renewed for
//! [`PIN_TTL`] (a process paused or on another machine). Whoever removes data files (a sync's
//! clean-up, the S3 copy's refresh) first asks [`needed`] which files the versions of live pins
//! list, and keeps those.
//!
//! The race between a reader pinning version V and a sync retiring V's files is closed on the
//! reader's side: after creating the pin it checks that V is still the newest version. If it
//! is, the commit that retires V's files comes later, and so does the clean-up that lists the
//! pins before deleting them. If it is not, the reader moves on to the newer version.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tracing::warn;

use super::log;
use super::store::{Lake, LakeError};
use crate::process::{host_name, Owner};

/// The folder of pins.
pub const PIN_DIR: &str = "_hspq/pins";

/// How long a pin holds without being renewed.
pub const PIN_TTL: Duration = Duration::from_secs(60);

/// What a pin file holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PinRecord {
    /// The log version read.
    pub version: u64,
    /// The reader's machine.
    pub host: String,
    /// The reader's process.
    pub owner: Owner,
    /// When the reader started reading.
    pub taken_at: DateTime<Utc>,
    /// When the pin lapses unless renewed.
    pub expires_at: DateTime<Utc>,
}

impl PinRecord {
    /// Whether the pin still holds.
    pub fn live(&self, now: DateTime<Utc>) -> bool {
        // A process on this machine can be asked; one elsewhere only by its renewals.
        self.expires_at >= now && (self.host != host_name() || self.owner.alive())
    }
}

/// The version a pin's file name carries.
fn version_of(path: &str) -> Option<u64> {
    let name = path.strip_prefix(PIN_DIR)?.strip_prefix('/')?;
    name.strip_suffix(".json")?.split('-').next()?.parse().ok()
}

/// The keeper of one process's pins in a lake folder: a thread that creates, renews and
/// removes them, so that whoever asks for a pin need not be able to write (`hspq serve`'s
/// sessions may not: the keeper is started outside their confinement). Cheap to clone; the
/// thread ends, removing what it still holds, when the last clone and pin are gone.
#[derive(Clone)]
pub struct Pins {
    requests: mpsc::Sender<Request>,
}

enum Request {
    Take(u64, mpsc::Sender<std::io::Result<u64>>),
    Release(u64, mpsc::Sender<()>),
}

/// A reader's hold on one version; dropping it lets the version go.
pub struct Pin {
    id: u64,
    version: u64,
    keeper: mpsc::Sender<Request>,
}

impl Pins {
    /// Starts a keeper for the lake folder `root`.
    pub fn start(root: &Path) -> std::io::Result<Pins> {
        Pins::start_with(root, false)
    }

    /// Starts a keeper for the lake folder `root` that, when a pin on a version older than the
    /// lake's newest ends, retires what the lake kept in place for it (see
    /// [`super::commit::tidy`]), before the pin's holder goes on: for the lake itself, not for
    /// an S3 lake's local copy (whose refresh does that).
    pub fn start_tidying(root: &Path) -> std::io::Result<Pins> {
        Pins::start_with(root, true)
    }

    fn start_with(root: &Path, tidying: bool) -> std::io::Result<Pins> {
        let (requests, inbox) = mpsc::channel();
        let root = root.to_path_buf();
        std::thread::Builder::new()
            .name("hspq-pins".into())
            .spawn(move || keep(&root, tidying, inbox))?;
        Ok(Pins { requests })
    }

    /// Pins `version` until the pin is dropped; the pin file exists when this returns.
    pub fn pin(&self, version: u64) -> std::io::Result<Pin> {
        let (reply, answer) = mpsc::channel();
        let gone = || std::io::Error::other("the pin keeper stopped");
        self.requests
            .send(Request::Take(version, reply))
            .map_err(|_| gone())?;
        let id = answer.recv().map_err(|_| gone())??;
        Ok(Pin {
            id,
            version,
            keeper: self.requests.clone(),
        })
    }
}

impl Pin {
    /// The version pinned.
    pub fn version(&self) -> u64 {
        self.version
    }
}

impl Drop for Pin {
    /// Waits until the pin's file is gone: once a statement has ended, nothing of it is left
    /// (a process killed right after leaves no pin behind).
    fn drop(&mut self) {
        let (done, gone) = mpsc::channel();
        if self.keeper.send(Request::Release(self.id, done)).is_ok() {
            let _ = gone.recv_timeout(Duration::from_secs(5));
        }
    }
}

/// The keeper's loop: pins by id, each renewed every third of [`PIN_TTL`].
fn keep(root: &Path, tidying: bool, inbox: mpsc::Receiver<Request>) {
    let dir = &root.join(PIN_DIR);
    let ttl = chrono::Duration::from_std(PIN_TTL).unwrap_or_default();
    let record = |version, taken_at| PinRecord {
        version,
        host: host_name(),
        owner: Owner::this_process(),
        taken_at,
        expires_at: Utc::now() + ttl,
    };
    let mut held: BTreeMap<u64, (PathBuf, u64, DateTime<Utc>)> = BTreeMap::new();
    let mut next_id = 0;
    let mut renewed = Instant::now();
    loop {
        match inbox.recv_timeout(PIN_TTL / 3) {
            Ok(Request::Take(version, reply)) => {
                next_id += 1;
                let path = dir.join(format!(
                    "{version:020}-{}-{next_id}-{:08x}.json",
                    std::process::id(),
                    rand::random::<u32>()
                ));
                let taken_at = Utc::now();
                let made = std::fs::create_dir_all(dir)
                    .and_then(|_| write(&path, &record(version, taken_at)));
                if made.is_ok() {
                    held.insert(next_id, (path, version, taken_at));
                }
                let _ = reply.send(made.map(|_| next_id));
            }
            Ok(Request::Release(id, done)) => {
                if let Some((path, version, _)) = held.remove(&id) {
                    let _ = std::fs::remove_file(path);
                    // Files kept in place for this pin, or for the pin of a reader that died
                    // (kill -9) without ending its own: glob readers see them twice until
                    // retired, so not only at the next sync.
                    if tidying && (newer_exists(root, version) || dead_pin_exists(root)) {
                        tidy(root);
                    }
                }
                let _ = done.send(());
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if renewed.elapsed() >= PIN_TTL / 3 {
            renewed = Instant::now();
            for (path, version, taken_at) in held.values() {
                if let Err(e) = write(path, &record(*version, *taken_at)) {
                    warn!("could not renew the pin on the lake's version {version} ({e}): a sync may remove files a query still reads");
                }
            }
        }
    }
    for (path, _, _) in held.values() {
        let _ = std::fs::remove_file(path);
    }
}

/// Whether the lake folder `root` has a log version newer than `version` (a directory listing).
fn newer_exists(root: &Path, version: u64) -> bool {
    std::fs::read_dir(root.join(log::LOG_DIR)).is_ok_and(|entries| {
        entries.filter_map(Result::ok).any(|e| {
            let name = format!("{}/{}", log::LOG_DIR, e.file_name().to_string_lossy());
            log::version_of(&name).is_some_and(|v| v > version)
        })
    })
}

/// Whether a pin file last renewed at `renewed` and holding `record` still holds: renewed
/// within the TTL, by the file's time (a reader's clock may be off), and live as far as its
/// record tells (unreadable, or removed since it was listed: the time alone).
fn holds(renewed: DateTime<Utc>, record: Option<&PinRecord>, now: DateTime<Utc>) -> bool {
    let ttl = chrono::Duration::from_std(PIN_TTL).unwrap_or_default();
    now - renewed <= ttl && record.is_none_or(|r| r.live(now))
}

/// Whether the lake folder `root` holds the pin of a reader that is gone (its process ended
/// without removing it, or it was not renewed in time): what it kept waits for a clean-up.
fn dead_pin_exists(root: &Path) -> bool {
    let now = Utc::now();
    let Ok(entries) = std::fs::read_dir(root.join(PIN_DIR)) else {
        return false;
    };
    entries.filter_map(Result::ok).any(|e| {
        let path = e.path();
        let renewed = e
            .metadata()
            .and_then(|m| m.modified())
            .map(DateTime::<Utc>::from)
            .unwrap_or(now);
        let record = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<PinRecord>(&b).ok());
        // A file removed meanwhile is no dead pin.
        path.exists() && !holds(renewed, record.as_ref(), now)
    })
}

/// Retires what the lake kept in place for pins that have ended (see
/// [`super::commit::tidy`]); a failure only delays that until the next sync.
fn tidy(root: &Path) {
    let tidied = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| LakeError::Location(format!("cannot start a runtime: {e}")))
        .and_then(|runtime| {
            runtime.block_on(async {
                let lake = Lake::open(&root.into())?;
                super::commit::tidy(&lake, super::commit::WriterOptions::from_env()).await
            })
        });
    match tidied {
        Ok(Some(done)) => tracing::debug!(
            "retired {} file(s) a sync had kept in place for readers that are done",
            done.dead
        ),
        Ok(None) => {}
        Err(e) => tracing::debug!("could not retire the files readers kept in place: {e}"),
    }
}

/// Writes a pin file whole: a reader of the folder never sees half of one.
fn write(path: &Path, record: &PinRecord) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(
        &tmp,
        serde_json::to_vec(record).expect("a pin always serializes"),
    )?;
    std::fs::rename(&tmp, path)
}

/// The versions live pins hold, removing the pins that lapsed (only a writer that holds the
/// lake, or the keeper of an S3 copy, should ask with `clear`). A pin lapses once its file
/// was not renewed for [`PIN_TTL`], whatever it says, or its process is gone.
pub async fn pinned(lake: &Lake, clear: bool) -> Result<BTreeSet<u64>, LakeError> {
    let now = Utc::now();
    let ttl = chrono::Duration::from_std(PIN_TTL).unwrap_or_default();
    let mut versions = BTreeSet::new();
    for listed in lake.list(PIN_DIR).await? {
        let Some(version) = version_of(&listed.path) else {
            // A renewal cut short leaves `x.tmp`.
            if clear && now - listed.modified > ttl {
                lake.delete(&listed.path).await?;
            }
            continue;
        };
        let record = lake
            .get(&listed.path)
            .await?
            .and_then(|b| serde_json::from_slice::<PinRecord>(&b).ok());
        if holds(listed.modified, record.as_ref(), now) {
            versions.insert(version);
        } else if clear {
            lake.delete(&listed.path).await?;
        }
    }
    Ok(versions)
}

/// What the live pins of versions older than the current one need kept.
#[derive(Debug, Default)]
pub struct Needed {
    /// The versions pinned.
    pub versions: BTreeSet<u64>,
    /// The files their log entries list; `None` when a pinned version's entry is gone, and
    /// then nothing may go.
    files: Option<BTreeSet<String>>,
}

impl Needed {
    /// Whether a pinned reader may still read `path`.
    pub fn keeps(&self, path: &str) -> bool {
        self.files.as_ref().is_none_or(|f| f.contains(path))
    }
}

/// What live pins of versions older than `current` need (see [`pinned`] for `clear`).
pub async fn needed(lake: &Lake, current: u64, clear: bool) -> Result<Needed, LakeError> {
    let versions: BTreeSet<u64> = pinned(lake, clear)
        .await?
        .into_iter()
        .filter(|v| *v < current)
        .collect();
    let mut files = Some(BTreeSet::new());
    for v in &versions {
        match log::read(lake, *v).await? {
            Some(entry) => {
                if let Some(files) = files.as_mut() {
                    files.extend(entry.manifest.files.into_keys());
                }
            }
            None => files = None,
        }
    }
    Ok(Needed { versions, files })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_pin_holds_while_it_lives_and_a_dead_process_pin_lapses() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(&dir.path().into()).unwrap();
        let pins = Pins::start(dir.path()).unwrap();
        let pin = pins.pin(7).unwrap();
        assert_eq!(pin.version(), 7);
        assert_eq!(pinned(&lake, true).await.unwrap(), BTreeSet::from([7]));
        drop(pin);
        assert!(
            pinned(&lake, false).await.unwrap().is_empty(),
            "gone with its pin"
        );
        // A pin left by a process that is gone, and one that was not renewed in time.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let gone = Owner::here(child.id(), Some(1));
        child.wait().unwrap();
        let fresh = Utc::now() + chrono::Duration::seconds(60);
        for (name, owner, expires_at) in [
            ("00000000000000000003-1-a.json", gone, fresh),
            (
                "00000000000000000004-1-b.json",
                Owner::this_process(),
                Utc::now() - chrono::Duration::seconds(1),
            ),
            (
                "00000000000000000005-1-c.json",
                Owner::this_process(),
                fresh,
            ),
            // Says it holds for a day (a clock far ahead), but its file was not renewed.
            (
                "00000000000000000006-1-d.json",
                Owner::this_process(),
                Utc::now() + chrono::Duration::days(1),
            ),
        ] {
            let record = PinRecord {
                version: 0,
                host: host_name(),
                owner,
                taken_at: Utc::now(),
                expires_at,
            };
            write(&dir.path().join(PIN_DIR).join(name), &record).unwrap();
        }
        let stale = std::time::SystemTime::now() - PIN_TTL - Duration::from_secs(1);
        std::fs::File::options()
            .write(true)
            .open(
                dir.path()
                    .join(PIN_DIR)
                    .join("00000000000000000006-1-d.json"),
            )
            .unwrap()
            .set_modified(stale)
            .unwrap();
        assert_eq!(pinned(&lake, false).await.unwrap(), BTreeSet::from([5]));
        assert_eq!(
            lake.list(PIN_DIR).await.unwrap().len(),
            4,
            "kept without clear"
        );
        assert_eq!(pinned(&lake, true).await.unwrap(), BTreeSet::from([5]));
        assert_eq!(
            lake.list(PIN_DIR).await.unwrap().len(),
            1,
            "lapsed pins removed"
        );
    }
}

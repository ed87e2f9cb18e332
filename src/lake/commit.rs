//! The one owner of changes to the lake. A run takes the lake with [`LakeWriter::acquire`],
//! changes the manifest only through [`LakeWriter::commit`], deletes files only through
//! [`LakeWriter::clean_up`], and gives the lake back with [`LakeWriter::release`].
//!
//! Every change is the next numbered log entry, created with create-if-absent (see
//! [`super::log`]): version + 1 of the last entry this run wrote. Nobody else writes while the
//! run's lease is valid, so the create succeeds; if the run was paused past its lease and
//! another run took the lake, that version exists and the create fails: the run has lost the
//! lake, and from then on every call fails with [`LakeError::Lost`] without touching anything.
//! Two runs taking a free lake race for the same version, and exactly one wins. In-memory
//! state changes only after the entry is stored.
//!
//! Deletion is safe by construction: a dead file (one a commit replaced) is never listed
//! again, because names are never reused; an orphan (a file no manifest lists) whose name
//! carries an older epoch was written by a run that can no longer commit (this run's lease
//! came after it in the log), so it can go at once; any other unlisted file goes only once it
//! is older than the retention. Deleting starts only after an entry proved the lease.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::{Barrier, Mutex};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::layout::{epoch_of, FileNames, Partition, BOOKKEEPING, STAGING};
use super::log::{self, Entry, EntryKind, Lease, LEGACY_LOCK, LEGACY_MANIFEST};
use super::manifest::Manifest;
use super::pins;
use super::store::{Lake, LakeError};
use crate::process::{host_name, Owner};

/// How long a lease lives without a new entry, by default.
pub const DEFAULT_LOCK_TTL: Duration = Duration::from_secs(600);

/// How old a file of unknown origin must be before a clean-up deletes it, by default.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(3600);

/// Log entries kept behind the latest (older ones are never read again).
const KEEP_ENTRIES: u64 = 10;

/// How a run holds the lake.
#[derive(Clone, Debug)]
pub struct WriterOptions {
    /// The lease's lifetime: a run silent for longer (paused, stalled) can be taken over.
    pub lock_ttl: Duration,
    /// Unlisted files whose writer cannot be told apart from a live one are kept this long.
    pub retention: Duration,
    /// Test hook: waited on between reading the log and taking the lake, so a test can make
    /// two runs interleave there.
    pub pause_before_take: Option<Arc<Barrier>>,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            lock_ttl: DEFAULT_LOCK_TTL,
            retention: DEFAULT_RETENTION,
            pause_before_take: None,
        }
    }
}

/// What a clean-up deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CleanUp {
    /// Files the run's commits (or an earlier run's) replaced.
    pub dead: usize,
    /// Files no manifest lists.
    pub orphans: usize,
    /// Replaced files kept because a reader's pin still needs them (see [`super::pins`]).
    pub pinned: usize,
}

/// A run's hold on the lake.
pub struct LakeWriter {
    inner: Arc<Inner>,
    names: FileNames,
    heartbeat: JoinHandle<()>,
}

struct Inner {
    lake: Lake,
    run_id: String,
    opts: WriterOptions,
    acquired_at: DateTime<Utc>,
    held: Mutex<Held>,
}

struct Held {
    version: u64,
    manifest: Arc<Manifest>,
    /// Why this run no longer holds the lake.
    lost: Option<String>,
    last_write: Instant,
}

impl LakeWriter {
    /// Takes the lake for `run_id`, or says who holds it and what to do.
    pub async fn acquire(
        lake: &Lake,
        run_id: &str,
        opts: WriterOptions,
    ) -> Result<LakeWriter, LakeError> {
        for _ in 0..5 {
            let latest = log::latest(lake).await?;
            let (version, manifest, holder) = match latest {
                Some(e) => (e.version, e.manifest, e.lease),
                None => (0, Manifest::new(), None),
            };
            if let Some(lease) = holder {
                match lease.stale(Utc::now()) {
                    Some(why) => {
                        warn!(
                            "taking the lake over from run {} (pid {} on {}): {why}",
                            lease.run_id, lease.owner.pid, lease.host
                        );
                    }
                    None => return Err(locked(lake, &lease)),
                }
            }
            if let Some(barrier) = &opts.pause_before_take {
                barrier.wait().await;
            }
            let acquired_at = Utc::now();
            let inner = Inner {
                lake: lake.clone(),
                run_id: run_id.to_string(),
                opts: opts.clone(),
                acquired_at,
                held: Mutex::new(Held {
                    version,
                    manifest: Arc::new(Manifest::new()),
                    lost: None,
                    last_write: Instant::now(),
                }),
            };
            let entry = inner.entry(version + 1, EntryKind::Acquire, manifest);
            if create(lake, &entry).await? != Created::Mine {
                // Another run took the lake first: look again.
                continue;
            }
            {
                let mut held = inner.held.lock().await;
                held.version = entry.version;
                held.manifest = Arc::new(entry.manifest);
            }
            let inner = Arc::new(inner);
            let heartbeat = tokio::spawn(heartbeat(Arc::clone(&inner)));
            return Ok(LakeWriter {
                names: FileNames::new(entry.version, run_id),
                inner,
                heartbeat,
            });
        }
        Err(LakeError::Locked(format!(
            "could not take {}: other runs keep taking it; try again",
            lake.location()
        )))
    }

    /// Names for the files this run writes.
    pub fn names(&self) -> &FileNames {
        &self.names
    }

    /// Why this run no longer holds the lake, if another run took it over.
    pub async fn lost(&self) -> Option<String> {
        self.inner.held.lock().await.lost.clone()
    }

    /// The manifest as of this run's last entry.
    pub async fn snapshot(&self) -> Arc<Manifest> {
        Arc::clone(&self.inner.held.lock().await.manifest)
    }

    /// The log version of this run's last entry.
    pub async fn version(&self) -> u64 {
        self.inner.held.lock().await.version
    }

    /// Applies `edit` to the manifest and stores the result as the next version; the
    /// in-memory manifest changes only once that is stored.
    pub async fn commit(&self, edit: impl FnOnce(&mut Manifest)) -> Result<(), LakeError> {
        let mut held = self.inner.held.lock().await;
        let mut next = Manifest::clone(&held.manifest);
        edit(&mut next);
        self.inner.write(&mut held, EntryKind::Commit, next).await
    }

    /// Deletes the files commits replaced, the files no manifest lists (as the module docs
    /// say which), and log entries no reader needs. Call it when no partition writer of this
    /// run is writing (at the start and the end of a sync): this run's own unlisted files go
    /// too.
    pub async fn clean_up(&self) -> Result<CleanUp, LakeError> {
        let lake = &self.inner.lake;
        // Prove the lease right before deleting anything.
        let manifest = {
            let mut held = self.inner.held.lock().await;
            let same = Manifest::clone(&held.manifest);
            self.inner
                .write(&mut held, EntryKind::Refresh, same)
                .await?;
            Arc::clone(&held.manifest)
        };
        let version = self.version().await;
        // Files an hspq reader still reads stay until a later clean-up finds them free.
        let pinned = pins::needed(lake, version, true).await?;
        let mut done = CleanUp::default();
        let (kept, dead): (Vec<String>, Vec<String>) =
            manifest.dead.keys().cloned().partition(|p| pinned.keeps(p));
        lake.delete_all(&dead).await?;
        done.dead = dead.len();
        done.pinned = kept.len();
        if !dead.is_empty() {
            self.commit(|m| {
                for p in &dead {
                    m.dead.remove(p);
                }
            })
            .await?;
        }
        let epoch = self.names.epoch();
        let now = Utc::now();
        let retention =
            chrono::Duration::from_std(self.inner.opts.retention).unwrap_or(chrono::Duration::MAX);
        let unfinished = lake.unfinished_uploads();
        let mut orphans = Vec::new();
        for listed in lake.list("").await?.into_iter().chain(unfinished) {
            let path = &listed.path;
            // `x.parquet#N` is a local-disk upload cut short before its rename.
            let upload = path.contains(".parquet#");
            let staged = path.starts_with(&format!("{STAGING}/"));
            let data = (path.ends_with(".parquet") || upload)
                && (staged
                    || (!path.starts_with(&format!("{BOOKKEEPING}/"))
                        && Partition::of_file(path).is_some()));
            if !data || manifest.lists(path) {
                continue;
            }
            let fenced = match epoch_of(path) {
                // Written by this run or by one that the log fenced off before it.
                Some(e) => e <= epoch,
                None => false,
            };
            if fenced || now - listed.modified > retention {
                if upload {
                    lake.delete_unfinished_upload(path)?;
                } else {
                    orphans.push(listed.path);
                }
                done.orphans += 1;
            }
        }
        lake.delete_all(&orphans).await?;
        let old_entries: Vec<String> = log::versions(lake, None)
            .await?
            .into_iter()
            .filter(|v| v + KEEP_ENTRIES < version && !pinned.versions.contains(v))
            .map(log::entry_path)
            .collect();
        lake.delete_all(&old_entries).await?;
        if version > 0 {
            lake.delete(LEGACY_MANIFEST).await?;
            lake.delete(LEGACY_LOCK).await?;
        }
        if done.dead > 0 {
            info!(
                "removed {} file(s) that newer commits superseded",
                done.dead
            );
        }
        if done.pinned > 0 {
            info!(
                "kept {} replaced file(s) in place: hspq readers still read version(s) {} of the \
                 lake; the next sync removes them",
                done.pinned,
                pinned
                    .versions
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        Ok(done)
    }

    /// After losing the lake: deletes the files this run wrote and never committed, which no
    /// manifest can ever list (the run that took over builds on this run's last stored entry
    /// and names its own files), so a glob reader does not see them. Touches nothing else;
    /// does nothing while the run still holds the lake. Call it once the run's writers stopped.
    pub async fn abandon(&self) -> usize {
        let committed = {
            let held = self.inner.held.lock().await;
            if held.lost.is_none() {
                return 0;
            }
            Arc::clone(&held.manifest)
        };
        // This run's last stored entry may be newer than the one it knows of (paused between
        // the store taking it and the answer): what the taker built on is in the lake's newest
        // entry. Unreadable: delete nothing.
        let newest = match log::latest(&self.inner.lake).await {
            Ok(entry) => entry.map(|e| e.manifest).unwrap_or_default(),
            Err(e) => {
                warn!("could not read the lake's log, so files written after losing it stay: {e}");
                return 0;
            }
        };
        let mut deleted = 0;
        for path in self.names.given() {
            // Committed files, staged ones included, belong to the run that took over now.
            if committed.lists(&path) || newest.lists(&path) {
                continue;
            }
            match self.inner.lake.delete(&path).await {
                Ok(()) => deleted += 1,
                Err(e) => warn!("could not delete {path}, written after losing the lake: {e}"),
            }
        }
        deleted
    }

    /// Gives the lake up (a last entry without a lease). A failed write is tried again a few
    /// times: a lake left held stays closed to other runs until the lease lapses.
    pub async fn release(&self) -> Result<(), LakeError> {
        self.heartbeat.abort();
        let mut held = self.inner.held.lock().await;
        let mut tries = 0;
        loop {
            let same = Manifest::clone(&held.manifest);
            match self.inner.write(&mut held, EntryKind::Release, same).await {
                Err(LakeError::Lost(why)) => return Err(LakeError::Lost(why)),
                Err(e) if tries < 4 => {
                    tries += 1;
                    warn!("could not release the lake ({e}); trying again");
                    tokio::time::sleep(Duration::from_millis(200 * tries)).await;
                }
                other => return other,
            }
        }
    }
}

impl Drop for LakeWriter {
    fn drop(&mut self) {
        self.heartbeat.abort();
    }
}

impl Inner {
    fn entry(&self, version: u64, kind: EntryKind, manifest: Manifest) -> Entry {
        let now = Utc::now();
        let ttl = chrono::Duration::from_std(self.opts.lock_ttl).unwrap_or(chrono::Duration::MAX);
        Entry {
            version,
            kind,
            run_id: self.run_id.clone(),
            nonce: format!("{:016x}", rand::random::<u64>()),
            written_at: now,
            lease: (kind != EntryKind::Release).then(|| Lease {
                run_id: self.run_id.clone(),
                host: host_name(),
                owner: Owner::this_process(),
                acquired_at: self.acquired_at,
                expires_at: now
                    .checked_add_signed(ttl)
                    .unwrap_or(DateTime::<Utc>::MAX_UTC),
            }),
            manifest,
        }
    }

    /// Stores `manifest` as the next version, or finds the lake lost.
    async fn write(
        &self,
        held: &mut Held,
        kind: EntryKind,
        manifest: Manifest,
    ) -> Result<(), LakeError> {
        if let Some(why) = &held.lost {
            return Err(LakeError::Lost(why.clone()));
        }
        let mut entry = self.entry(held.version + 1, kind, manifest);
        let taker = loop {
            match create(&self.lake, &entry).await? {
                Created::Mine => {
                    held.version = entry.version;
                    held.manifest = Arc::new(entry.manifest);
                    held.last_write = Instant::now();
                    return Ok(());
                }
                // This run's own entry, from a write whose caller was cancelled (Ctrl-C) after
                // the store took it: catch up with it and write after it.
                Created::Other(found) if found.run_id == self.run_id => {
                    held.version = found.version;
                    held.manifest = Arc::new(found.manifest);
                    entry = self.entry(held.version + 1, kind, entry.manifest);
                }
                Created::Other(found) => break format!("run {}", found.run_id),
                Created::Superseded(latest) => break format!("run {}", latest.run_id),
            }
        };
        let why = format!(
            "run {} lost {} to {taker}: it went more than its lease ({} s, HSPQ_LOCK_TTL) without \
             writing (paused or stalled), so it stopped without changing the lake; run hspq ingest \
             again if the other run did not finish the work",
            self.run_id,
            self.lake.location(),
            self.opts.lock_ttl.as_secs()
        );
        held.lost = Some(why.clone());
        Err(LakeError::Lost(why))
    }
}

/// What became of an entry this run tried to create.
#[derive(Debug, PartialEq)]
enum Created {
    /// It is stored and it is the latest.
    Mine,
    /// Its version holds another entry (boxed: an entry holds a whole manifest).
    Other(Box<Entry>),
    /// It is stored, but newer versions exist: it went into a slot that a clean-up had freed
    /// (log entries are not kept forever), behind the entries of a run that took the lake.
    /// Readers take the newest, so it is never read.
    Superseded(Box<Entry>),
}

/// Creates `entry` unless its version exists (also recognising it after a write whose answer
/// was lost and which a retry found already done), then checks that nothing newer exists.
async fn create(lake: &Lake, entry: &Entry) -> Result<Created, LakeError> {
    let path = log::entry_path(entry.version);
    let stored = match lake.put_new(&path, log::encode(entry)).await {
        Ok(true) => None,
        Ok(false) => log::read(lake, entry.version).await?,
        Err(e) => match log::read(lake, entry.version).await {
            Ok(Some(found)) => Some(found),
            _ => return Err(e),
        },
    };
    if let Some(found) = stored {
        if found.nonce != entry.nonce {
            return Ok(Created::Other(Box::new(found)));
        }
    }
    match log::newer_than(lake, Some(entry.version)).await? {
        Some(latest) => Ok(Created::Superseded(Box::new(latest))),
        None => Ok(Created::Mine),
    }
}

/// Keeps the lease alive while the run is busy fetching: a refresh entry whenever the run has
/// not written for a third of the lease.
async fn heartbeat(inner: Arc<Inner>) {
    let ttl = inner.opts.lock_ttl;
    let every = (ttl / 6).max(Duration::from_millis(100));
    loop {
        tokio::time::sleep(every).await;
        let mut held = inner.held.lock().await;
        if held.lost.is_some() {
            return;
        }
        if held.last_write.elapsed() < ttl / 3 {
            continue;
        }
        let same = Manifest::clone(&held.manifest);
        match inner.write(&mut held, EntryKind::Refresh, same).await {
            Ok(()) => {}
            Err(LakeError::Lost(why)) => {
                warn!("{why}");
                return;
            }
            Err(e) => warn!("could not refresh the lease on the lake: {e}"),
        }
    }
}

fn locked(lake: &Lake, lease: &Lease) -> LakeError {
    LakeError::Locked(format!(
        "another hspq ingest (run {}, pid {} on {}, since {}) is writing to {}: wait for it to \
         finish; if it is gone, the lake frees itself at {} (its lease, HSPQ_LOCK_TTL)",
        lease.run_id,
        lease.owner.pid,
        lease.host,
        lease.acquired_at.format("%Y-%m-%d %H:%M:%SZ"),
        lake.location(),
        lease.expires_at.format("%Y-%m-%d %H:%M:%SZ"),
    ))
}

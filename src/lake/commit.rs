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
use tokio::sync::{Barrier, Mutex, Semaphore};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::layout::{epoch_of, history_path, FileNames, Partition, BOOKKEEPING, HISTORY, STAGING};
use super::log::{self, Ending, Entry, EntryKind, Lease, LEGACY_LOCK, LEGACY_MANIFEST};
use super::manifest::Manifest;
use super::pins;
use super::replica::eight_at_a_time;
use super::store::{Lake, LakeError};
use crate::process::{host_name, Owner};

/// How long a lease lives without a new entry, by default.
pub const DEFAULT_LOCK_TTL: Duration = Duration::from_secs(600);

/// How old a file of unknown origin must be before a clean-up deletes it, by default.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(3600);

/// How long retired files and the versions of finished syncs stay readable, by default.
pub const DEFAULT_VERSION_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Log entries kept behind the latest (older ones are never read again).
const KEEP_ENTRIES: u64 = 10;

/// Files deleted after one proof of the lease (on S3, one bulk request).
const DELETE_BATCH: usize = 1000;

/// How a run holds the lake.
#[derive(Clone, Debug)]
pub struct WriterOptions {
    /// The lease's lifetime: a run silent for longer (paused, stalled) can be taken over.
    pub lock_ttl: Duration,
    /// Unlisted files whose writer cannot be told apart from a live one are kept this long.
    pub retention: Duration,
    /// Files a sync retired, and the log entries that end runs, are kept this long under
    /// `_hspq/` for `--as-of` (zero: deleted at once).
    pub version_retention: Duration,
    /// Test hook: waited on between reading the log and taking the lake, so a test can make
    /// two runs interleave there.
    pub pause_before_take: Option<Arc<Barrier>>,
    /// Test hook: a clean-up stops here right after proving its lease, holding the run's state
    /// so that its heartbeat stops too, as a paused process's would.
    pub pause_after_proof: Option<Arc<Rendezvous>>,
    /// Test hook: a commit stops here once its entry is stored, before the run learns it (where
    /// a Ctrl-C can cancel it).
    pub pause_after_store: Option<Arc<Rendezvous>>,
}

/// A point where a run waits until a test lets it go on (see [`WriterOptions`]).
#[derive(Debug)]
pub struct Rendezvous {
    reached: Semaphore,
    resume: Semaphore,
}

impl Default for Rendezvous {
    fn default() -> Self {
        Rendezvous {
            reached: Semaphore::new(0),
            resume: Semaphore::new(0),
        }
    }
}

impl Rendezvous {
    /// The run's side: says it is here and waits to be let go.
    async fn pass(&self) {
        self.reached.add_permits(1);
        if let Ok(permit) = self.resume.acquire().await {
            permit.forget();
        }
    }

    /// The test's side: waits until a run is here.
    pub async fn reached(&self) {
        if let Ok(permit) = self.reached.acquire().await {
            permit.forget();
        }
    }

    /// The test's side: lets the run go on.
    pub fn resume(&self) {
        self.resume.add_permits(1);
    }
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            lock_ttl: DEFAULT_LOCK_TTL,
            retention: DEFAULT_RETENTION,
            version_retention: DEFAULT_VERSION_RETENTION,
            pause_before_take: None,
            pause_after_proof: None,
            pause_after_store: None,
        }
    }
}

impl WriterOptions {
    /// The settings from `HSPQ_LOCK_TTL`, `HSPQ_RETENTION` and `HSPQ_VERSION_RETENTION` (as
    /// `hspq ingest` reads them), for a writer that has no flags: a reader tidying after itself
    /// (see [`tidy`]). A setting that does not parse keeps its default.
    pub fn from_env() -> WriterOptions {
        let env =
            |name: &str, parse: fn(&str) -> Result<Duration, crate::duration::DurationError>| {
                std::env::var(name).ok().and_then(|v| parse(&v).ok())
            };
        let mut opts = WriterOptions::default();
        if let Some(d) = env("HSPQ_LOCK_TTL", crate::duration::parse) {
            opts.lock_ttl = d;
        }
        if let Some(d) = env("HSPQ_RETENTION", crate::duration::parse) {
            opts.retention = d;
        }
        if let Some(d) = env("HSPQ_VERSION_RETENTION", crate::duration::parse_or_zero) {
            opts.version_retention = d;
        }
        opts
    }
}

/// How the run id of a reader's tidying begins (`hspq log` lists it so).
const TIDY_RUN: &str = "tidy-";

/// After a reader's pin on an old version ends: if the lake is free and still keeps files in
/// the data folders that a sync replaced (kept for pins), takes it briefly and retires those no
/// pin needs any longer, as that sync's end would have, so that glob readers see each row once
/// again without waiting for the next sync. `None` when there was nothing to do, or another run
/// holds the lake (it retires them at its end).
pub async fn tidy(lake: &Lake, opts: WriterOptions) -> Result<Option<CleanUp>, LakeError> {
    let Some(latest) = log::latest(lake).await? else {
        return Ok(None);
    };
    if latest.manifest.dead.is_empty()
        || latest
            .lease
            .as_ref()
            .is_some_and(|l| l.stale(Utc::now()).is_none())
    {
        return Ok(None);
    }
    let needed = pins::needed(lake, latest.version, false).await?;
    if latest.manifest.dead.keys().all(|p| needed.keeps(p)) {
        return Ok(None);
    }
    let run_id = format!("{TIDY_RUN}{}", Utc::now().format("%Y%m%dT%H%M%S%3fZ"));
    let writer = match LakeWriter::acquire(lake, &run_id, opts).await {
        Ok(writer) => writer,
        Err(LakeError::Locked(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    writer.finish(Ending::Finished).await.map(Some)
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
    /// Files of past versions deleted from `_hspq/history/` after the version retention.
    pub expired: usize,
}

/// A run's hold on the lake.
pub struct LakeWriter {
    inner: Arc<Inner>,
    names: FileNames,
    heartbeat: JoinHandle<()>,
    /// The lake's sync state was lost (see [`log::Entry::state_lost`]): it starts empty.
    state_lost: bool,
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
    /// The sync object of the held entry, shared by the next entry if it keeps the state.
    sync_object: Option<String>,
    /// Why this run no longer holds the lake.
    lost: Option<String>,
    last_write: Instant,
    /// A write started and its caller never heard how it ended (cancelled by Ctrl-C): the
    /// store may have taken it, and the next write builds on it.
    in_flight: bool,
}

impl LakeWriter {
    /// Fails as [`LakeWriter::acquire`] would if a live run holds the lake now, naming it;
    /// takes nothing (a run asks before it opens the API's sessions, which the holder may have
    /// taken).
    pub async fn check_free(lake: &Lake) -> Result<(), LakeError> {
        let holder = log::latest(lake).await?.and_then(|e| e.lease);
        match holder {
            Some(lease) if lease.stale(Utc::now()).is_none() => Err(locked(lake, &lease)),
            _ => Ok(()),
        }
    }

    /// Takes the lake for `run_id`, or says who holds it and what to do.
    pub async fn acquire(
        lake: &Lake,
        run_id: &str,
        opts: WriterOptions,
    ) -> Result<LakeWriter, LakeError> {
        lake.check_create_if_absent(&format!("{BOOKKEEPING}/probe/{run_id}"))
            .await?;
        for _ in 0..5 {
            let latest = log::latest(lake).await?;
            let (version, manifest, holder, sync_object, state_lost) = match latest {
                // A lost sync object: this run's first entry stores the (empty) state anew.
                Some(e) if e.state_lost => (e.version, e.manifest, e.lease, None, true),
                Some(e) => (e.version, e.manifest, e.lease, e.sync_object, false),
                None => (0, Manifest::new(), None, None, false),
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
                    sync_object: None,
                    lost: None,
                    last_write: Instant::now(),
                    in_flight: false,
                }),
            };
            let mut entry = inner.entry(version + 1, EntryKind::Acquire, manifest);
            entry.sync_object = sync_object;
            if create(lake, &mut entry).await? != Created::Mine {
                // Another run took the lake first: look again.
                continue;
            }
            {
                let mut held = inner.held.lock().await;
                held.version = entry.version;
                held.manifest = Arc::new(entry.manifest);
                held.sync_object = entry.sync_object;
            }
            let inner = Arc::new(inner);
            let heartbeat = tokio::spawn(heartbeat(Arc::clone(&inner)));
            return Ok(LakeWriter {
                names: FileNames::new(entry.version, run_id),
                inner,
                heartbeat,
                state_lost,
            });
        }
        Err(LakeError::Locked(format!(
            "could not take {}: other runs keep taking it; try again",
            lake.location()
        )))
    }

    /// Whether the sync state the lake's newest entry named was gone when this run took the
    /// lake: this run starts from none (a sync then fetches everything again).
    pub fn state_lost(&self) -> bool {
        self.state_lost
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
        self.inner
            .write(&mut held, EntryKind::Commit, |m| {
                let mut next = Manifest::clone(m);
                edit(&mut next);
                next
            })
            .await
    }

    /// Writes an entry that changes nothing but the lease, right before deleting files, so
    /// that a run that lost the lake finds out first; returns the manifest.
    async fn prove(&self) -> Result<Arc<Manifest>, LakeError> {
        let mut held = self.inner.held.lock().await;
        self.inner
            .write(&mut held, EntryKind::Refresh, Manifest::clone)
            .await?;
        if let Some(pause) = &self.inner.opts.pause_after_proof {
            pause.pass().await;
        }
        Ok(Arc::clone(&held.manifest))
    }

    /// Deletes `paths` in batches, proving the lease before each.
    async fn delete_proven(&self, paths: &[String]) -> Result<(), LakeError> {
        for batch in paths.chunks(DELETE_BATCH) {
            self.prove().await?;
            self.inner.lake.delete_all(batch).await?;
        }
        Ok(())
    }

    /// Moves retired files to `_hspq/history/`, in batches after a proof of the lease each
    /// (one a run cut short moved already, or gone, is left as it is).
    async fn move_to_history(&self, paths: &[String]) -> Result<(), LakeError> {
        let lake = &self.inner.lake;
        for batch in paths.chunks(DELETE_BATCH) {
            self.prove().await?;
            let renames = batch.iter().cloned().map(|p| {
                let lake = lake.clone();
                async move { lake.rename(&p, &history_path(&p)).await }
            });
            eight_at_a_time(renames).await?;
        }
        Ok(())
    }

    /// Marks the lake lost, for a reason found outside the log.
    async fn lose(&self, why: String) -> LakeError {
        let mut held = self.inner.held.lock().await;
        held.lost = Some(why.clone());
        LakeError::Lost(why)
    }

    /// Deletes the files commits replaced, the files no manifest lists (as the module docs
    /// say which), and log entries no reader needs. Call it when no partition writer of this
    /// run is writing (at the start and the end of a sync): this run's own unlisted files go
    /// too.
    pub async fn clean_up(&self) -> Result<CleanUp, LakeError> {
        let lake = &self.inner.lake;
        let manifest = self.prove().await?;
        let version = self.version().await;
        // Files an hspq reader still reads stay until a later clean-up finds them free.
        let pinned = pins::needed(lake, version, true).await?;
        let mut done = CleanUp::default();
        let (kept, dead): (Vec<String>, Vec<String>) =
            manifest.dead.keys().cloned().partition(|p| pinned.keeps(p));
        done.pinned = kept.len();
        let keep_history = !self.inner.opts.version_retention.is_zero();
        // Staged chunks are in no version's files: no `--as-of` reads them, so they go.
        let (staged, data): (Vec<String>, Vec<String>) = dead
            .iter()
            .cloned()
            .partition(|p| p.starts_with(&format!("{STAGING}/")));
        self.delete_proven(&staged).await?;
        if keep_history {
            self.move_to_history(&data).await?;
        } else {
            self.delete_proven(&data).await?;
        }
        done.dead = dead.len();
        let now = Utc::now();
        let keep_for = chrono::Duration::from_std(self.inner.opts.version_retention)
            .unwrap_or(chrono::Duration::MAX);
        // History past the retention goes, but for what a pinned `--as-of` reader reads. A
        // file's time there is when it moved (see `Lake::rename`).
        let expired: Vec<String> = lake
            .list(HISTORY)
            .await?
            .into_iter()
            .filter(|l| now - l.modified > keep_for)
            .map(|l| l.path)
            .filter(|p| {
                p.strip_prefix(HISTORY)
                    .is_some_and(|data| !pinned.keeps(data.trim_start_matches('/')))
            })
            .collect();
        self.delete_proven(&expired).await?;
        done.expired = expired.len();
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
        // Whether another run took the lake after this one, asked once a file says so: after
        // the listing, so that a run taking the lake later cannot have files in it.
        let mut taken_over: Option<bool> = None;
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
            let newer = epoch_of(path).is_some_and(|e| e > epoch);
            if newer && taken_over.is_none() {
                let last = self.version().await;
                taken_over = Some(log::newer_than(lake, Some(last)).await?.is_some());
            }
            let fenced = match epoch_of(path) {
                // Newer than this run's, yet the log has no entry after this run's: no run
                // took the lake, and the file is left from a log that was moved aside (the lake
                // being rebuilt), so it goes.
                Some(_) if newer && taken_over == Some(false) => true,
                // A run that took the lake after this one wrote it: this run was paused
                // past its lease after proving it, and must touch nothing more.
                Some(e) if e > epoch => {
                    return Err(self
                        .lose(format!(
                            "run {} lost {}: it found {path}, written by a run that took the \
                             lake after it (it was paused past its lease, HSPQ_LOCK_TTL), so it \
                             stopped deleting; run hspq ingest again if the other run did not \
                             finish the work",
                            self.inner.run_id,
                            lake.location()
                        ))
                        .await);
                }
                // Written by this run or by one that the log fenced off before it.
                Some(_) => true,
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
        self.delete_proven(&orphans).await?;
        let mut old_entries = Vec::new();
        let mut named = std::collections::HashSet::new();
        for v in log::versions(lake, None).await? {
            let Some(head) = log::head(lake, v).await? else {
                continue;
            };
            // The state after each finished run stays readable (`--as-of`) for the retention.
            let ends_a_run = keep_history
                && head.kind == EntryKind::Release
                && now - head.written_at <= keep_for;
            if v + KEEP_ENTRIES >= version || pinned.versions.contains(&v) || ends_a_run {
                named.extend(head.sync);
            } else {
                old_entries.push(log::entry_path(v));
            }
        }
        self.delete_proven(&old_entries).await?;
        // Sync objects no kept entry names; those of versions after this clean-up's own may be
        // this run's commits, being stored meanwhile.
        let unnamed: Vec<String> = lake
            .list(log::SYNC_DIR)
            .await?
            .into_iter()
            .map(|l| l.path)
            .filter(|p| log::sync_version_of(p).is_some_and(|v| v <= version) && !named.contains(p))
            .collect();
        self.delete_proven(&unnamed).await?;
        if version > 0 {
            lake.delete(LEGACY_MANIFEST).await?;
            lake.delete(LEGACY_LOCK).await?;
        }
        if done.dead > 0 && keep_history && self.inner.run_id.starts_with(TIDY_RUN) {
            // A reader tidying after its pin: its output is the query's, and how long the
            // history keeps them is the next sync's --version-retention, not this reader's.
            tracing::debug!(
                "moved {} file(s) kept in place for readers that are done into {HISTORY}/",
                done.dead
            );
        } else if done.dead > 0 && keep_history {
            info!(
                "moved {} file(s) that newer commits superseded out of the data folders, into \
                 {HISTORY}/ (readable with --as-of for {})",
                done.dead,
                crate::duration::human(self.inner.opts.version_retention)
            );
        } else if done.dead > 0 {
            info!(
                "removed {} file(s) that newer commits superseded",
                done.dead
            );
        }
        if done.pinned > 0 {
            info!(
                "kept {} replaced file(s) in place: hspq readers still read version(s) {} of the \
                 lake; they go when those are done",
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

    /// Ends the run's hold on the lake, however its work went: removes what its commits
    /// replaced (a failure is only warned about: the next run does it) and gives the lake up.
    /// A run that lost the lake (found here or before) deletes only the files it wrote and
    /// never committed, and fails saying so. Call it once the run's writers stopped.
    pub async fn finish(&self, ending: Ending) -> Result<CleanUp, LakeError> {
        let mut done = CleanUp::default();
        let mut released = Ok(());
        if self.lost().await.is_none() {
            match self.clean_up().await {
                Ok(d) => done = d,
                Err(LakeError::Lost(_)) => {}
                Err(e) => {
                    warn!("could not delete the files this run replaced: {e} (the next run will)")
                }
            }
            if self.lost().await.is_none() {
                released = self.release(ending).await;
            }
        }
        if let Some(why) = self.lost().await {
            self.abandon().await;
            return Err(LakeError::Lost(why));
        }
        released.map(|_| done)
    }

    /// Gives the lake up (a last entry without a lease, saying how the run ended). A failed
    /// write is tried again a few times: a lake left held stays closed to other runs until the
    /// lease lapses.
    pub async fn release(&self, ending: Ending) -> Result<(), LakeError> {
        self.heartbeat.abort();
        let mut held = self.inner.held.lock().await;
        let mut tries = 0;
        loop {
            match self
                .inner
                .write_ending(&mut held, EntryKind::Release, Some(ending), Manifest::clone)
                .await
            {
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
            ending: None,
            manifest,
            sync_object: None,
            state_lost: false,
        }
    }

    /// Stores the manifest `next` makes of the current one as the next version, or finds the
    /// lake lost.
    async fn write(
        &self,
        held: &mut Held,
        kind: EntryKind,
        next: impl FnOnce(&Manifest) -> Manifest,
    ) -> Result<(), LakeError> {
        self.write_ending(held, kind, None, next).await
    }

    /// [`Inner::write`] of an entry that says how the run ended.
    async fn write_ending(
        &self,
        held: &mut Held,
        kind: EntryKind,
        ending: Option<Ending>,
        next: impl FnOnce(&Manifest) -> Manifest,
    ) -> Result<(), LakeError> {
        if let Some(why) = &held.lost {
            return Err(LakeError::Lost(why.clone()));
        }
        if held.in_flight {
            self.catch_up(held).await?;
        }
        let mut entry = self.entry(held.version + 1, kind, next(&held.manifest));
        entry.ending = ending;
        let (now, before) = (&entry.manifest, &held.manifest);
        if now.state == before.state && now.staged == before.staged {
            entry.sync_object.clone_from(&held.sync_object);
        }
        held.in_flight = true;
        let created = create(&self.lake, &mut entry).await?;
        if created == Created::Mine && kind == EntryKind::Commit {
            if let Some(pause) = &self.opts.pause_after_store {
                pause.pass().await;
            }
        }
        held.in_flight = false;
        let taker = match created {
            Created::Mine => {
                held.version = entry.version;
                held.manifest = Arc::new(entry.manifest);
                held.sync_object = entry.sync_object;
                held.last_write = Instant::now();
                return Ok(());
            }
            Created::Other(found) | Created::Superseded(found) => found.run_id,
        };
        let why = format!(
            "run {} lost {} to run {taker}: it went more than its lease ({} s, HSPQ_LOCK_TTL) \
             without writing (paused or stalled), so it stopped without changing the lake; run \
             hspq ingest again if the other run did not finish the work",
            self.run_id,
            self.lake.location(),
            self.opts.lock_ttl.as_secs()
        );
        held.lost = Some(why.clone());
        Err(LakeError::Lost(why))
    }

    /// After a write whose caller was cancelled: takes up this run's own entries the store
    /// took meanwhile, so the next write builds on them rather than undoing them.
    async fn catch_up(&self, held: &mut Held) -> Result<(), LakeError> {
        while let Some(found) = log::read(&self.lake, held.version + 1).await? {
            if found.run_id != self.run_id {
                // Another run's: the next create finds the lake lost.
                break;
            }
            held.version = found.version;
            held.manifest = Arc::new(found.manifest);
            held.sync_object = found.sync_object;
        }
        held.in_flight = false;
        Ok(())
    }
}

/// What became of an entry this run tried to create.
#[derive(Debug, PartialEq)]
enum Created {
    /// It is stored and it is the latest.
    Mine,
    /// Its version holds another entry (boxed: an entry holds a whole manifest).
    Other(Box<Entry>),
    /// It was stored, but newer versions exist: it went into a slot that a clean-up had freed
    /// (log entries are not kept forever), behind the entries of a run that took the lake. It
    /// is deleted again.
    Superseded(Box<Entry>),
}

/// Creates `entry` unless its version exists (also recognising it after a write whose answer
/// was lost and which a retry found already done), then checks that nothing newer exists.
async fn create(lake: &Lake, entry: &mut Entry) -> Result<Created, LakeError> {
    let path = log::entry_path(entry.version);
    let fresh_object = entry.sync_object.is_none();
    let bytes = log::prepare(lake, entry).await?;
    let stored = match lake.put_new(&path, bytes).await {
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
        Some(latest) => {
            // Never read as the newest, but `--as-of` and `hspq log` would show it: this run
            // lost the lake and leaves nothing of it (its sync object too, if it made one).
            let _ = lake.delete(&path).await;
            if let Some(object) = entry.sync_object.as_ref().filter(|_| fresh_object) {
                let _ = lake.delete(object).await;
            }
            Ok(Created::Superseded(Box::new(latest)))
        }
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
        match inner
            .write(&mut held, EntryKind::Refresh, Manifest::clone)
            .await
        {
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
        "another hspq run (run {}, pid {} on {}, since {}) is writing to {}: wait for it to \
         finish; if it is gone, the lake frees itself at {} (its lease, HSPQ_LOCK_TTL)",
        lease.run_id,
        lease.owner.pid,
        lease.host,
        lease.acquired_at.format("%Y-%m-%d %H:%M:%SZ"),
        lake.location(),
        lease.expires_at.format("%Y-%m-%d %H:%M:%SZ"),
    ))
}

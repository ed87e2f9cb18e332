//! One writer per lake: `_hspq/lock.json`, created with a conditional PUT (create-if-absent,
//! on S3 as on local disk), so a second `hspq ingest` on the same lake refuses to start.
//!
//! A lock left by a killed run is taken over once its owner is provably gone (same host, pid
//! no longer running) or it has expired. A running holder refreshes the expiry in the
//! background; before each commit it checks it still holds the lock.

use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tracing::warn;

use super::layout::LOCK;
use super::store::{Lake, LakeError};
use crate::process::{host_name, Owner};

/// How long a lock lives without a refresh.
const TTL: Duration = Duration::from_secs(600);
/// How often a holder refreshes it.
const REFRESH: Duration = Duration::from_secs(60);

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
struct LockInfo {
    run_id: String,
    host: String,
    owner: Owner,
    acquired_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

impl LockInfo {
    fn stale(&self, now: DateTime<Utc>) -> Option<&'static str> {
        if self.expires_at < now {
            Some("it expired")
        } else if self.host == host_name() && !self.owner.alive() {
            Some("its process is gone")
        } else {
            None
        }
    }
}

/// The lake's write lock, held until [`LakeLock::release`].
pub struct LakeLock {
    lake: Lake,
    run_id: String,
    heartbeat: JoinHandle<()>,
}

impl LakeLock {
    /// Takes the lock for `run_id`, or says who holds it and what to do.
    pub async fn acquire(lake: &Lake, run_id: &str) -> Result<LakeLock, LakeError> {
        for _ in 0..3 {
            let info = fresh(run_id);
            if lake.put_new(LOCK, encode(&info)).await? {
                let heartbeat = tokio::spawn(refresh_forever(lake.clone(), run_id.to_string()));
                return Ok(LakeLock {
                    lake: lake.clone(),
                    run_id: run_id.to_string(),
                    heartbeat,
                });
            }
            let Some(held) = read(lake).await? else {
                continue;
            };
            match held.stale(Utc::now()) {
                Some(why) => {
                    warn!(
                        "taking over the lake lock of run {} (pid {} on {}): {why}",
                        held.run_id, held.owner.pid, held.host
                    );
                    lake.delete(LOCK).await?;
                }
                None => {
                    return Err(LakeError::Locked(format!(
                        "another hspq ingest (run {}, pid {} on {}, since {}) is writing to {}: wait for it to finish; \
                         if it is gone, its lock expires at {} (or delete {}/{LOCK})",
                        held.run_id,
                        held.owner.pid,
                        held.host,
                        held.acquired_at.format("%Y-%m-%d %H:%M:%SZ"),
                        lake.location(),
                        held.expires_at.format("%Y-%m-%d %H:%M:%SZ"),
                        lake.location()
                    )))
                }
            }
        }
        Err(LakeError::Locked(format!(
            "could not take the lock of {}: other runs keep taking it; try again",
            lake.location()
        )))
    }

    /// Fails if another run took the lock over (so this one must not commit).
    pub async fn check(&self) -> Result<(), LakeError> {
        match read(&self.lake).await? {
            Some(info) if info.run_id == self.run_id => Ok(()),
            _ => Err(LakeError::Locked(format!(
                "run {} lost the lock of {} to another run (it was idle past the lock's expiry): \
                 nothing more was written; run hspq ingest again",
                self.run_id,
                self.lake.location()
            ))),
        }
    }

    /// Gives the lock up.
    pub async fn release(self) -> Result<(), LakeError> {
        self.heartbeat.abort();
        if let Some(info) = read(&self.lake).await? {
            if info.run_id == self.run_id {
                self.lake.delete(LOCK).await?;
            }
        }
        Ok(())
    }
}

impl Drop for LakeLock {
    fn drop(&mut self) {
        self.heartbeat.abort();
    }
}

fn fresh(run_id: &str) -> LockInfo {
    let now = Utc::now();
    LockInfo {
        run_id: run_id.to_string(),
        host: host_name(),
        owner: Owner::this_process(),
        acquired_at: now,
        expires_at: now + chrono::Duration::from_std(TTL).expect("small duration"),
    }
}

fn encode(info: &LockInfo) -> Bytes {
    Bytes::from(serde_json::to_vec_pretty(info).expect("lock info serializes"))
}

async fn read(lake: &Lake) -> Result<Option<LockInfo>, LakeError> {
    let Some(bytes) = lake.get(LOCK).await? else {
        return Ok(None);
    };
    // An unreadable lock (say, a truncated write by a foreign tool) counts as expired.
    Ok(Some(serde_json::from_slice(&bytes).unwrap_or_else(|_| {
        LockInfo {
            run_id: "unknown".into(),
            host: "unknown".into(),
            owner: Owner {
                pid: 0,
                started: None,
            },
            acquired_at: DateTime::<Utc>::MIN_UTC,
            expires_at: DateTime::<Utc>::MIN_UTC,
        }
    })))
}

async fn refresh_forever(lake: Lake, run_id: String) {
    let mut tick = tokio::time::interval(REFRESH);
    tick.tick().await;
    loop {
        tick.tick().await;
        match read(&lake).await {
            Ok(Some(mut info)) if info.run_id == run_id => {
                info.expires_at =
                    Utc::now() + chrono::Duration::from_std(TTL).expect("small duration");
                if let Err(e) = lake.put(LOCK, encode(&info)).await {
                    warn!("could not refresh the lake lock: {e}");
                }
            }
            Ok(_) => return,
            Err(e) => warn!("could not read the lake lock: {e}"),
        }
    }
}

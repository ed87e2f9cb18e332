//! An S3 lake's local copy (`~/.cache/hspq/lakes/<bucket>_<prefix>`), which hspq's readers
//! query: the newest version's files, fetched only when new, the versions pinned readers still
//! read, and the past versions `--as-of` asked for (in the copy's `_hspq/history/`). Readers
//! answer from it when S3 is unreachable; `hspq serve` keeps it from outside its sessions.

use std::path::PathBuf;

use futures_util::StreamExt;
use tracing::warn;

use super::layout::{history_path, HISTORY};
use super::log::{self, AsOf};
use super::pins;
use super::{Lake, LakeError, LakeLocation};

/// The local copy of the S3 lake `data`.
fn folder(data: &LakeLocation) -> PathBuf {
    let base = dirs::cache_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("hspq")
        .join("lakes");
    let name: String = data
        .to_string()
        .trim_start_matches("s3://")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    base.join(name)
}

/// Brings the version `as_of` names of the S3 lake `data` into its local copy: its log entry
/// (so that a pin can name it) and each of its files the copy lacks, fetched from the lake's
/// data folders or its history into the copy's `_hspq/history/`. Returns the copy.
pub async fn fetch_version(data: &LakeLocation, as_of: &AsOf) -> Result<PathBuf, LakeError> {
    let cache = folder(data);
    let local = Lake::open(&cache.as_path().into())?;
    let remote = Lake::open_quick(data)?;
    // The copy's newest log entry must be the version its data folders hold (plain readers
    // show it): a version newer than the copy's is brought in by a refresh, in place, never
    // into the history beside an older one.
    let newest_held = || async { log::latest(&local).await.ok().flatten().map(|e| e.version) };
    let mut entry = log::resolve(&remote, as_of).await?;
    let mut held = newest_held().await;
    for _ in 0..3 {
        if held.is_some_and(|v| v >= entry.version) {
            break;
        }
        sync(data).await?;
        entry = log::resolve(&remote, as_of).await?;
        held = newest_held().await;
    }
    if held == Some(entry.version) {
        return Ok(cache);
    }
    if held.is_none_or(|v| v < entry.version) {
        return Err(LakeError::Version(format!(
            "{data} is being synced again and again: v{} could not be brought into the local \
             copy; try again",
            entry.version
        )));
    }
    let missing: Vec<&String> = entry
        .manifest
        .files
        .keys()
        .filter(|p| !cache.join(p).is_file() && !cache.join(history_path(p)).is_file())
        .collect();
    let fetches = missing.into_iter().map(|path| {
        let (remote, local) = (remote.clone(), local.clone());
        async move {
            let body = match remote.get(path).await? {
                Some(body) => body,
                None => remote.get(&history_path(path)).await?.ok_or_else(|| {
                    LakeError::Version(format!(
                        "{data}/{path}, of the version asked for, is gone from the lake: its \
                         history was cleaned meanwhile; ask for a newer version"
                    ))
                })?,
            };
            local.put(&history_path(path), body).await
        }
    });
    eight_at_a_time(fetches).await?;
    local
        .put(&log::entry_path(entry.version), log::encode_whole(&entry))
        .await?;
    Ok(cache)
}

/// Brings an S3 lake's latest commit into the local cache (fetching only new files) and returns
/// the cache folder. Without network, the cache answers and says how old it is. Files a newer
/// commit no longer lists stay in the cache while another hspq process's pin (see
/// [`crate::lake::pins`]) still needs them. `hspq serve` keeps the replica
/// itself with this, as its sessions may not write.
pub async fn sync(data: &LakeLocation) -> Result<(PathBuf, Option<String>), LakeError> {
    let cache = folder(data);
    let local = Lake::open(&cache.as_path().into())?;
    let cached = log::latest(&local).await.ok().flatten();
    let remote = Lake::open_quick(data)?;
    let entry = match log::newer_than(&remote, cached.as_ref().map(|e| e.version)).await {
        Ok(Some(entry)) => entry,
        Ok(None) if cached.is_some() => return Ok((cache, None)),
        Ok(None) => return Err(LakeError::NoLake(data.to_string())),
        Err(e) => {
            let Some(cached) = cached else {
                return Err(e);
            };
            let age = std::fs::metadata(cache.join(log::entry_path(cached.version)))
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .map(|d| crate::duration::human(std::time::Duration::from_secs(d.as_secs())))
                .unwrap_or_else(|| "unknown".into());
            let notice = format!(
                "{data} is unreachable ({e}); answering from the local copy synced {age} ago"
            );
            return Ok((cache, Some(notice)));
        }
    };
    let previous = cached.map(|e| e.manifest.files).unwrap_or_default();
    // Only new or changed files, eight at a time.
    let changed: Vec<&String> = entry
        .manifest
        .files
        .iter()
        .filter(|(path, file)| previous.get(*path) != Some(*file) || !cache.join(path).is_file())
        .map(|(path, _)| path)
        .collect();
    let fetches = changed.into_iter().map(|path| {
        let (remote, local) = (remote.clone(), local.clone());
        async move {
            let body = remote.get(path).await?.ok_or_else(|| LakeError::Corrupt {
                path: format!("{data}/{path}"),
                detail: "listed in the lake's latest commit but missing".into(),
            })?;
            local.put(path, body).await
        }
    });
    eight_at_a_time(fetches).await?;
    // The commit last, so a cut-short copy leaves the previous one consistent.
    local
        .put(&log::entry_path(entry.version), log::encode_whole(&entry))
        .await?;
    // What another hspq process still reads from this copy stays: the versions its pins hold.
    let pinned = pins::needed(&local, entry.version, true).await?;
    for listed in local.list("").await? {
        let path = &listed.path;
        let stale = match log::version_of(path) {
            Some(v) => v < entry.version && !pinned.versions.contains(&v),
            // Fetched for an `--as-of` reader that is done.
            None if path.starts_with(HISTORY) => path
                .strip_prefix(HISTORY)
                .is_some_and(|p| !pinned.keeps(p.trim_start_matches('/'))),
            None => {
                !path.starts_with("_hspq/")
                    && !entry.manifest.files.contains_key(path)
                    && !pinned.keeps(path)
            }
        };
        if stale {
            if let Err(e) = local.delete(path).await {
                warn!("could not remove {path} from the cache: {e}");
            }
        }
    }
    Ok((cache, None))
}

/// Runs `jobs`, eight at a time; the first failure is the answer.
pub async fn eight_at_a_time<T>(
    jobs: impl IntoIterator<Item = impl std::future::Future<Output = Result<T, LakeError>>>,
) -> Result<Vec<T>, LakeError> {
    let results: Vec<Result<T, LakeError>> = futures_util::stream::iter(jobs)
        .buffer_unordered(8)
        .collect()
        .await;
    results.into_iter().collect()
}

//! Where the lake lives: a local folder or an S3 prefix, both through `object_store`, so every
//! other part of hspq sees one interface with paths relative to the lake root.
//!
//! Every object is published by a single atomic PUT (a rename on local disk), so a reader
//! never sees half an object.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use super::LakeLocation;

/// What went wrong with the lake's storage.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    /// `--data` cannot be used.
    #[error("{0}")]
    Location(String),
    /// The store refused or failed an operation.
    #[error("lake {op} {path}: {source}")]
    Store {
        /// What was being done.
        op: &'static str,
        /// Which object, relative to the lake root.
        path: String,
        /// The store's error.
        source: object_store::Error,
    },
    /// Writing Parquet failed.
    #[error("writing Parquet for {path}: {detail}")]
    Parquet {
        /// Which file.
        path: String,
        /// The writer's error.
        detail: String,
    },
    /// A bookkeeping file under `_hspq/` is unreadable.
    #[error("{path} is damaged ({detail}): move it aside and run `hspq ingest --full` to rebuild the lake")]
    Corrupt {
        /// Which file.
        path: String,
        /// What is wrong.
        detail: String,
    },
    /// Another ingest holds the lake.
    #[error("{0}")]
    Locked(String),
    /// This run's lease lapsed and another run took the lake over: it must stop without
    /// touching the manifest or any file.
    #[error("{0}")]
    Lost(String),
    /// There is no lake there.
    #[error("no lake at {0}: run `hspq ingest --data {0}` first (or pass --data)")]
    NoLake(String),
    /// `--as-of` names a version the lake does not have (any more).
    #[error("{0}")]
    Version(String),
    /// A data file already exists under the name a writer chose (names are never reused).
    #[error("refusing to overwrite {0}: lake files are never rewritten under their own name")]
    Exists(String),
}

/// An object found by [`Lake::list`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    /// Path relative to the lake root.
    pub path: String,
    /// Bytes.
    pub size: u64,
    /// When it was last written.
    pub modified: chrono::DateTime<chrono::Utc>,
}

/// The lake's storage.
#[derive(Clone, Debug)]
pub struct Lake {
    store: Arc<dyn ObjectStore>,
    root: Path,
    location: String,
    local: Option<PathBuf>,
}

impl Lake {
    /// Opens the lake at `location`: an S3 prefix (AWS settings from the environment, as the
    /// AWS CLI reads them) or a local folder, created if missing. S3 requests retry patiently (a
    /// sync should ride out a hiccup).
    pub fn open(location: &LakeLocation) -> Result<Lake, LakeError> {
        Lake::open_with(location, false)
    }

    /// Like [`Lake::open`], but S3 requests give up within seconds: for reads that have a
    /// local fallback (queries answer from the cache when S3 is unreachable).
    pub fn open_quick(location: &LakeLocation) -> Result<Lake, LakeError> {
        Lake::open_with(location, true)
    }

    fn open_with(location: &LakeLocation, quick: bool) -> Result<Lake, LakeError> {
        let dir = match location {
            LakeLocation::S3 { bucket, prefix } => {
                return Ok(Lake {
                    store: Arc::new(s3_store(location, bucket, quick)?),
                    root: Path::from(prefix.as_str()),
                    location: location.to_string(),
                    local: None,
                })
            }
            LakeLocation::Local(dir) => dir,
        };
        std::fs::create_dir_all(dir).map_err(|e| {
            LakeError::Location(format!(
                "cannot create the lake folder {}: {e}",
                dir.display()
            ))
        })?;
        let dir = dir.canonicalize().map_err(|e| {
            LakeError::Location(format!(
                "cannot open the lake folder {}: {e}",
                dir.display()
            ))
        })?;
        let store = LocalFileSystem::new_with_prefix(&dir).map_err(|e| {
            LakeError::Location(format!(
                "cannot open the lake folder {}: {e}",
                dir.display()
            ))
        })?;
        Ok(Lake {
            store: Arc::new(store),
            root: Path::default(),
            location: dir.display().to_string(),
            local: Some(dir),
        })
    }

    /// A lake over any `ObjectStore` (a wrapper that injects faults, say), named `location`;
    /// `local` is the folder behind it when there is one.
    pub fn from_store(store: Arc<dyn ObjectStore>, location: &str, local: Option<PathBuf>) -> Lake {
        Lake {
            store,
            root: Path::default(),
            location: location.to_string(),
            local,
        }
    }

    /// `--data` as the user can read it (a folder or `s3://bucket/prefix`).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The local folder, when the lake is on local disk.
    pub fn local_dir(&self) -> Option<&std::path::Path> {
        self.local.as_deref()
    }

    fn path(&self, rel: &str) -> Path {
        let mut p = self.root.clone();
        for part in rel.split('/').filter(|s| !s.is_empty()) {
            p = p.join(part);
        }
        p
    }

    fn rel(&self, full: &Path) -> String {
        let full = full.as_ref();
        let root = self.root.as_ref();
        if root.is_empty() {
            full.to_string()
        } else {
            full.strip_prefix(root)
                .map(|s| s.trim_start_matches('/').to_string())
                .unwrap_or_else(|| full.to_string())
        }
    }

    fn err(op: &'static str, rel: &str, source: object_store::Error) -> LakeError {
        LakeError::Store {
            op,
            path: rel.to_string(),
            source,
        }
    }

    /// Writes a new data file; fails with [`LakeError::Exists`] if the name is taken.
    pub async fn put_file(&self, rel: &str, bytes: Bytes) -> Result<(), LakeError> {
        match self.put_new(rel, bytes).await? {
            true => Ok(()),
            false => Err(LakeError::Exists(format!("{}/{rel}", self.location))),
        }
    }

    /// Writes an object whole (replacing any): for caches only, never for the lake's own files.
    pub async fn put(&self, rel: &str, bytes: Bytes) -> Result<(), LakeError> {
        self.store
            .put(&self.path(rel), PutPayload::from(bytes))
            .await
            .map(|_| ())
            .map_err(|e| Lake::err("write", rel, e))
    }

    /// Writes an object only if none exists (create-if-absent, atomic on S3 and on local disk
    /// alike); `Ok(false)` when one does.
    pub async fn put_new(&self, rel: &str, bytes: Bytes) -> Result<bool, LakeError> {
        let opts = PutOptions::from(PutMode::Create);
        match self
            .store
            .put_opts(&self.path(rel), PutPayload::from(bytes), opts)
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(Lake::err("create", rel, e)),
        }
    }

    /// Checks that the store refuses a second create of the same object, which fencing writers
    /// rests on (see [`super::commit`]): always so on local disk; on S3 it takes a server that
    /// honours `If-None-Match: *`, and some S3-compatible ones ignore it. `probe` names a
    /// scratch object, removed after.
    pub async fn check_create_if_absent(&self, probe: &str) -> Result<(), LakeError> {
        if self.local.is_some() {
            return Ok(());
        }
        // A first create whose answer was lost may be retried and refused: fine either way.
        self.put_new(probe, Bytes::from_static(b"1")).await?;
        let second = self.put_new(probe, Bytes::from_static(b"2")).await?;
        self.delete(probe).await?;
        if !second {
            return Ok(());
        }
        Err(LakeError::Location(format!(
            "{} does not refuse a second create of the same object (it ignores S3's \
             If-None-Match: *), so two syncs could both believe they hold the lake and overwrite \
             each other's commits: hspq writes only to stores that honour it (AWS S3, MinIO, \
             Ceph RGW, Cloudflare R2 do); point --data at one of those",
            self.location
        )))
    }

    /// Reads an object, or `None` when there is none.
    pub async fn get(&self, rel: &str) -> Result<Option<Bytes>, LakeError> {
        match self.store.get(&self.path(rel)).await {
            Ok(r) => r
                .bytes()
                .await
                .map(Some)
                .map_err(|e| Lake::err("read", rel, e)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(Lake::err("read", rel, e)),
        }
    }

    /// Moves an object (a rename on local disk, a server-side copy and a delete on S3);
    /// `Ok(false)` when there is none at `from`.
    pub async fn rename(&self, from: &str, to: &str) -> Result<bool, LakeError> {
        match self.store.rename(&self.path(from), &self.path(to)).await {
            Ok(()) => {
                // On S3 a move is a copy, dated when made; a rename keeps the file's date.
                // Listings date objects by when they arrived (the history's retention counts
                // from the move), so here too.
                if let Some(root) = &self.local {
                    let moved = std::fs::File::options()
                        .write(true)
                        .open(root.join(to))
                        .and_then(|f| f.set_modified(std::time::SystemTime::now()));
                    if let Err(e) = moved {
                        return Err(Lake::err(
                            "move",
                            to,
                            object_store::Error::Generic {
                                store: "LocalFileSystem",
                                source: Box::new(e),
                            },
                        ));
                    }
                }
                Ok(true)
            }
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(Lake::err("move", from, e)),
        }
    }

    /// Deletes an object; a missing one is fine.
    pub async fn delete(&self, rel: &str) -> Result<(), LakeError> {
        match self.store.delete(&self.path(rel)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(Lake::err("delete", rel, e)),
        }
    }

    /// Deletes every path of `rels` (absent ones count as deleted): on S3 as bulk requests of
    /// up to 1,000 keys, so the end of a sync that replaced hundreds of files, when glob
    /// readers may miss a file, lasts a request or two rather than a request per file.
    pub async fn delete_all(&self, rels: &[String]) -> Result<(), LakeError> {
        let locations: Vec<object_store::Result<Path>> =
            rels.iter().map(|r| Ok(self.path(r))).collect();
        let mut deleted = self
            .store
            .delete_stream(futures_util::stream::iter(locations).boxed());
        while let Some(result) = deleted.next().await {
            match result {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(Lake::err("delete", &format!("{} files", rels.len()), e)),
            }
        }
        Ok(())
    }

    /// Every object under `prefix`, relative to the lake root.
    pub async fn list(&self, prefix: &str) -> Result<Vec<Listed>, LakeError> {
        let p = self.path(prefix);
        let found: Vec<_> = self
            .store
            .list(Some(&p))
            .try_collect()
            .await
            .map_err(|e| Lake::err("list", prefix, e))?;
        Ok(found.into_iter().map(|m| self.listed(m)).collect())
    }

    /// The objects under `prefix` whose path sorts after `after` (a cheap "anything new?" on
    /// S3, where the server skips the rest).
    pub async fn list_after(&self, prefix: &str, after: &str) -> Result<Vec<Listed>, LakeError> {
        let found: Vec<_> = self
            .store
            .list_with_offset(Some(&self.path(prefix)), &self.path(after))
            .try_collect()
            .await
            .map_err(|e| Lake::err("list", prefix, e))?;
        Ok(found.into_iter().map(|m| self.listed(m)).collect())
    }

    /// Uploads to local disk cut short before their rename (`x.parquet#N`), which the local
    /// store's listing hides; none on S3, where an object appears whole or not at all.
    pub fn unfinished_uploads(&self) -> Vec<Listed> {
        fn walk(dir: &std::path::Path, root: &std::path::Path, out: &mut Vec<Listed>) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let Ok(meta) = entry.metadata() else { continue };
                if meta.is_dir() {
                    walk(&path, root, out);
                } else if path.to_string_lossy().contains(".parquet#") {
                    let Ok(rel) = path.strip_prefix(root) else {
                        continue;
                    };
                    out.push(Listed {
                        path: rel.to_string_lossy().into_owned(),
                        size: meta.len(),
                        modified: meta.modified().map(Into::into).unwrap_or_default(),
                    });
                }
            }
        }
        let mut out = Vec::new();
        if let Some(root) = &self.local {
            walk(root, root, &mut out);
        }
        out
    }

    /// Deletes a local upload cut short (see [`Lake::unfinished_uploads`]).
    pub fn delete_unfinished_upload(&self, rel: &str) -> Result<(), LakeError> {
        let Some(root) = &self.local else {
            return Ok(());
        };
        match std::fs::remove_file(root.join(rel)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(LakeError::Location(format!(
                "cannot delete {}: {e}",
                root.join(rel).display()
            ))),
        }
    }

    fn listed(&self, m: object_store::ObjectMeta) -> Listed {
        Listed {
            path: self.rel(&m.location),
            size: m.size,
            modified: m.last_modified,
        }
    }
}

/// The S3 store of `bucket`, configured from the AWS_* environment.
fn s3_store(
    location: &LakeLocation,
    bucket: &str,
    quick: bool,
) -> Result<object_store::aws::AmazonS3, LakeError> {
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    if quick {
        builder = builder
            .with_retry(object_store::RetryConfig {
                max_retries: 2,
                retry_timeout: std::time::Duration::from_secs(10),
                ..Default::default()
            })
            // A config key, not `with_client_options`, which would drop the AWS_* settings.
            .with_config(
                object_store::aws::AmazonS3ConfigKey::Client(
                    object_store::ClientConfigKey::ConnectTimeout,
                ),
                "5s",
            );
    }
    if std::env::var_os("AWS_REGION").is_none() && std::env::var_os("AWS_DEFAULT_REGION").is_none()
    {
        builder = builder.with_region("us-east-1");
    }
    builder.build().map_err(|e| {
        LakeError::Location(format!(
            "cannot use {location}: {e} (set AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, and AWS_ENDPOINT_URL with AWS_ALLOW_HTTP=true for an S3-compatible server)"
        ))
    })
}

//! Storage faults: syncs over a store that fails or slows PUTs and DELETEs at random points
//! (manifest writes included, and writes that succeed but whose answer is lost). Every run
//! either commits or leaves the lake as it was, a rerun completes, and nothing published is
//! lost.

mod common;

use std::fmt;
use std::ops::Range;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use common::lake::*;
use common::*;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use hspq::ingest::IngestOptions;
use hspq::lake::Lake;
use hspq::sim::Partnership;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};
use rand::{RngExt, SeedableRng};

/// A store that fails a share of writes and deletes, seeded so a failing case can be rerun.
#[derive(Debug)]
struct FaultyStore {
    inner: Arc<dyn ObjectStore>,
    rng: Mutex<rand::rngs::StdRng>,
    /// Share of PUTs that fail without writing.
    put_fails: f64,
    /// Share of PUTs that write, then answer with an error (the answer was lost).
    put_lost: f64,
    /// Share of DELETEs that fail.
    delete_fails: f64,
    /// Faults injected so far.
    injected: Mutex<usize>,
}

impl fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyStore({})", self.inner)
    }
}

impl FaultyStore {
    fn roll(&self, p: f64) -> bool {
        let hit = self.rng.lock().unwrap().random_bool(p);
        if hit {
            *self.injected.lock().unwrap() += 1;
        }
        hit
    }

    async fn jitter(&self) {
        let ms = self.rng.lock().unwrap().random_range(0..5);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }

    fn fault(what: &str) -> object_store::Error {
        object_store::Error::Generic {
            store: "faulty",
            source: format!("injected {what} failure").into(),
        }
    }
}

#[async_trait]
impl ObjectStore for FaultyStore {
    async fn put_opts(
        &self,
        location: &ObjectPath,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.jitter().await;
        if self.roll(self.put_fails) {
            return Err(FaultyStore::fault("PUT"));
        }
        let result = self.inner.put_opts(location, payload, opts).await?;
        if self.roll(self.put_lost) {
            return Err(FaultyStore::fault("PUT answer"));
        }
        Ok(result)
    }

    async fn put_multipart_opts(
        &self,
        location: &ObjectPath,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &ObjectPath, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &ObjectPath, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<ObjectPath>>,
    ) -> BoxStream<'static, Result<ObjectPath>> {
        let fails: Vec<bool> = (0..64).map(|_| self.roll(self.delete_fails)).collect();
        let inner = Arc::clone(&self.inner);
        locations
            .enumerate()
            .then(move |(i, location)| {
                let inner = Arc::clone(&inner);
                let fail = fails[i % fails.len()];
                async move {
                    let location = location?;
                    if fail {
                        return Err(FaultyStore::fault("DELETE"));
                    }
                    inner.delete(&location).await.map(|_| location)
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&ObjectPath>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&ObjectPath>,
        offset: &ObjectPath,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&ObjectPath>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &ObjectPath,
        to: &ObjectPath,
        options: CopyOptions,
    ) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

fn faulty_lake(dir: &Path, seed: u64, rate: f64) -> (Lake, Arc<FaultyStore>) {
    let store = Arc::new(FaultyStore {
        inner: Arc::new(LocalFileSystem::new_with_prefix(dir).unwrap()),
        rng: Mutex::new(rand::rngs::StdRng::seed_from_u64(seed)),
        put_fails: rate,
        put_lost: rate / 2.0,
        delete_fails: rate,
        injected: Mutex::new(0),
    });
    let lake = Lake::from_store(
        store.clone(),
        &dir.display().to_string(),
        Some(dir.to_path_buf()),
    );
    (lake, store)
}

fn options(sim: &hspq::sim::Simulator, dir: &Path) -> IngestOptions {
    ingest_options(sim, dir, MSSP_KEY, 2)
}

/// What the newest commit lists is on storage, whole; the lake is free for the next run.
fn assert_consistent(dir: &Path, context: &str) {
    if latest_entry(dir).is_none() {
        return;
    }
    let result = std::panic::catch_unwind(|| assert_listed_files_intact(dir));
    assert!(
        result.is_ok(),
        "{context}: a listed file is missing or damaged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syncs_over_a_failing_store_commit_or_change_nothing_and_a_rerun_completes() {
    let sim = sim(|c| c.companies = 12).await;
    let mut injected = 0;
    let mut failed_runs = 0;
    for seed in 0..10u64 {
        let dir = tempfile::tempdir().unwrap();
        // A first sync and an incremental one, both over a store failing 3 % of writes.
        for attempt in 0..2 {
            let (lake, store) = faulty_lake(dir.path(), seed * 10 + attempt, 0.03);
            let before = latest_manifest(dir.path());
            let outcome = hspq::ingest::run_on(lake, options(&sim, dir.path())).await;
            injected += *store.injected.lock().unwrap();
            let context = format!("seed {seed}, run {attempt}: {outcome:?}");
            assert_consistent(dir.path(), &context);
            if outcome.is_err() {
                failed_runs += 1;
                // Whatever the failed run committed is whole; what it had published before
                // (every file the previous commit listed and this one still lists) is there.
                if let (Some(before), Some(after)) = (before, latest_manifest(dir.path())) {
                    for path in before["files"].as_object().unwrap().keys() {
                        if after["files"].get(path).is_some() {
                            assert!(dir.path().join(path).exists(), "{context}: {path} lost");
                        }
                    }
                }
            }
        }
        // A rerun on a healthy store completes, and the lake is the simulator's data.
        let (lake, _) = faulty_lake(dir.path(), seed, 0.0);
        hspq::ingest::run_on(lake, options(&sim, dir.path()))
            .await
            .unwrap_or_else(|e| panic!("seed {seed}: the rerun failed: {e}"));
        assert_lake_matches_world(dir.path(), sim.world(), Partnership::Mssp, true);
        assert_eq!(
            parquet_files(dir.path()),
            manifest_files(dir.path()),
            "seed {seed}"
        );
        assert_listed_files_intact(dir.path());
        assert!(lake_is_free(dir.path()));
    }
    assert!(injected > 20, "only {injected} faults were injected");
    assert!(
        failed_runs > 3,
        "only {failed_runs} runs met a fault that failed them"
    );
}

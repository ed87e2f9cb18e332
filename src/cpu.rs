//! CPU-heavy steps inside async code: decoding a large page, encoding a Parquet file, the
//! simulator building a large answer.

/// Runs `f` on the current thread, telling a multi-thread tokio runtime first so it moves this
/// worker's queued tasks (the next request's I/O among them) to another thread meanwhile. The
/// API and the simulator time request arrivals to the millisecond, so nothing may sit behind a
/// long computation. Unlike `spawn_blocking`, memory stays in this thread's allocator arena,
/// which keeps a sync's peak memory from growing with the number of threads that touched it.
pub fn heavy<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

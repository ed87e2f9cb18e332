//! The Parquet lake: declared schemas, the Hive partition layout, the writer, the manifest and
//! the lock, over local disk or S3.
//!
//! Nothing here knows the API: `ingest` turns API answers into Arrow batches and hands them to
//! a [`PartitionWriter`], then commits whole partitions through the [`Manifest`].

pub mod layout;
pub mod lock;
pub mod manifest;
pub mod schema;
pub mod store;
pub mod writer;

pub use layout::Partition;
pub use lock::LakeLock;
pub use manifest::{CustomerState, FileEntry, Manifest, PeriodState, SyncState};
pub use schema::{Dataset, Partitioning};
pub use store::{Lake, LakeError};
pub use writer::{PartitionWriter, WrittenFile};

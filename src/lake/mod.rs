//! The Parquet lake: declared schemas, the Hive partition layout, the writer, the manifest,
//! the commit log and its one writer, over local disk or S3.
//!
//! Nothing here knows the API: `ingest` turns API answers into Arrow batches and hands them to
//! a [`PartitionWriter`], then commits whole partitions through the run's [`LakeWriter`].
//! Readers take the latest [`Manifest`] from the [`log`]. Customers' staged chunks are merged
//! into their partitions by [`staged`], reading files back through [`read`]; an S3 lake's
//! local copy for readers is [`replica`].

pub mod commit;
pub mod layout;
pub mod location;
pub mod log;
pub mod manifest;
pub mod pins;
pub mod read;
pub mod replica;
pub mod schema;
pub mod staged;
pub mod store;
pub mod writer;

pub use commit::{CleanUp, LakeWriter, WriterOptions};
pub use layout::{FileNames, Partition};
pub use location::LakeLocation;
pub use manifest::{CustomerState, FileEntry, Manifest, PeriodState, StagedChunk, SyncState};
pub use schema::{Dataset, Partitioning, RowsError};
pub use store::{Lake, LakeError, Listed};
pub use writer::{PartitionWriter, WrittenFile};

//! The manifest: the lake's list of live files (size, rows, checksum), the files a sync has
//! replaced and will retire when it finishes, and the sync state. Each entry of the commit log
//! (see [`super::log`]) holds the manifest as of its version.
//!
//! A commit swaps whole partitions: the new files are already written (under names never used
//! before); the commit makes them live and the old ones dead. Dead files stay on storage until
//! the sync ends, so a reader that is part-way through a query on the previous version does not
//! lose its files under it.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::layout::Partition;
use super::store::{Lake, LakeError};
use super::writer::WrittenFile;

/// A live data file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileEntry {
    /// Bytes.
    pub size: u64,
    /// Rows.
    pub rows: u64,
    /// SHA-256, hex.
    pub sha256: String,
    /// The run that wrote it.
    pub run_id: String,
    /// Its partition holds each key once (the writer dropped repeats), so readers need not
    /// deduplicate. Absent in files of writers that did not promise it.
    #[serde(default)]
    pub unique_keys: bool,
}

/// What a period looked like when it was last fetched (the `periods` dataset is rebuilt from
/// this, so closed periods that are not fetched again keep their rows).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PeriodState {
    /// `mssp` or `reseller`.
    pub report_type: String,
    /// Label year.
    pub year: i64,
    /// Label month, `"02"`.
    pub period: String,
    /// First day.
    pub from: NaiveDate,
    /// Last reported day.
    pub to: NaiveDate,
    /// Held the last report day when fetched.
    pub is_current: bool,
    /// Incomplete when fetched.
    pub is_partial: bool,
    /// Companies in the report.
    pub eligible_company_count: Option<i64>,
    /// Products in the report.
    pub products: Vec<String>,
    /// Unknown fields of the period, as JSON.
    pub extra: Option<String>,
    /// When it was fetched.
    pub ingested_at: DateTime<Utc>,
}

/// How far a customer's engagement and churn indicators have been fetched.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CustomerState {
    /// The first day fetched.
    pub from: NaiveDate,
    /// The last day fetched (the `to` sent).
    pub to: NaiveDate,
}

/// Where each dataset's sync stands.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct SyncState {
    /// By `report_type/year/period`.
    pub periods: BTreeMap<String, PeriodState>,
    /// By `report_type/security_center_id`.
    pub customers: BTreeMap<String, CustomerState>,
    /// Runs that started and have not recorded their end, by run id, with their `sync_runs`
    /// row as JSON: a later run marks them interrupted.
    #[serde(default)]
    pub open_runs: BTreeMap<String, serde_json::Value>,
}

/// One chunk of customers' engagement and churn, fetched and staged under `_hspq/staging/`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct StagedChunk {
    /// `mssp` or `reseller`.
    pub report_type: String,
    /// Each customer's re-fetched range: its rows in that range are replaced by the staged ones
    /// (rows the API no longer lists go).
    pub windows: BTreeMap<String, (NaiveDate, NaiveDate)>,
    /// The staged files, by the partition they merge into.
    pub files: BTreeMap<String, Vec<String>>,
}

impl FileEntry {
    /// The entry of a file hspq's partition writer wrote for `run_id`.
    pub fn written(f: &WrittenFile, run_id: &str) -> FileEntry {
        FileEntry {
            size: f.size,
            rows: f.rows,
            sha256: f.sha256.clone(),
            run_id: run_id.to_string(),
            unique_keys: f.unique_keys,
        }
    }
}

impl SyncState {
    /// The key of a period.
    pub fn period_key(report_type: &str, year: i64, period: &str) -> String {
        format!("{report_type}/{year:04}/{period}")
    }

    /// The key of a customer.
    pub fn customer_key(report_type: &str, id: &str) -> String {
        format!("{report_type}/{id}")
    }
}

/// The lake's manifest.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// Format version.
    pub version: u32,
    /// Live files by path.
    pub files: BTreeMap<String, FileEntry>,
    /// Files a commit replaced, with when: deleted when the sync ends, by the run that holds
    /// the lake.
    #[serde(default)]
    pub dead: BTreeMap<String, DateTime<Utc>>,
    /// Customer rows fetched chunk by chunk and not yet merged into their month partitions,
    /// oldest first (a killed run's chunks are merged by the next run).
    #[serde(default)]
    pub staged: Vec<StagedChunk>,
    /// Sync state (absent from a stored entry: its sync object holds it, see [`super::log`]).
    #[serde(default)]
    pub state: SyncState,
}

impl Manifest {
    /// An empty manifest, for a new lake.
    pub fn new() -> Manifest {
        Manifest {
            version: 1,
            ..Manifest::default()
        }
    }

    /// The lake's latest manifest, or an empty one for a new lake.
    pub async fn load(lake: &Lake) -> Result<Manifest, LakeError> {
        Ok(super::log::latest(lake)
            .await?
            .map_or_else(Manifest::new, |e| e.manifest))
    }

    /// Live files of a partition.
    pub fn files_in(&self, partition: &Partition) -> Vec<String> {
        let prefix = format!("{}/", partition.dir);
        self.files
            .range(prefix.clone()..)
            .take_while(|(p, _)| p.starts_with(&prefix))
            .filter(|(p, _)| !p[prefix.len()..].contains('/'))
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// Makes `written` the whole content of `partition`; the files it replaced become dead.
    pub fn replace(&mut self, partition: &Partition, written: &[WrittenFile], run_id: &str) {
        let old = self.files_in(partition);
        for p in &old {
            self.files.remove(p);
        }
        self.add(written, run_id);
        let now = Utc::now();
        for p in old {
            if !self.files.contains_key(&p) {
                self.dead.insert(p, now);
            }
        }
    }

    /// Adds files next to a partition's others.
    pub fn add(&mut self, written: &[WrittenFile], run_id: &str) {
        for f in written {
            self.files
                .insert(f.path.clone(), FileEntry::written(f, run_id));
        }
    }

    /// Whether the manifest knows the file: live, dead or staged.
    pub fn lists(&self, path: &str) -> bool {
        self.files.contains_key(path)
            || self.dead.contains_key(path)
            || self
                .staged
                .iter()
                .any(|c| c.files.values().flatten().any(|p| p == path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lake::schema::Dataset;

    fn written(path: &str) -> WrittenFile {
        WrittenFile {
            path: path.into(),
            size: 1,
            rows: 1,
            sha256: "x".into(),
            unique_keys: true,
        }
    }

    #[test]
    fn replace_swaps_a_whole_partition_and_nothing_else() {
        let mut m = Manifest::default();
        let p = Partition::period(Dataset::Billing, "mssp", 2026, "02");
        let q = Partition::period(Dataset::Billing, "mssp", 2026, "12");
        m.replace(
            &p,
            &[written(&p.file(1, "a", 0)), written(&p.file(1, "a", 1))],
            "a",
        );
        m.replace(&q, &[written(&q.file(1, "a", 0))], "a");
        m.replace(&p, &[written(&p.file(2, "b", 0))], "b");
        assert_eq!(
            m.dead.keys().cloned().collect::<Vec<_>>(),
            vec![p.file(1, "a", 0), p.file(1, "a", 1)]
        );
        assert_eq!(m.files_in(&p), vec![p.file(2, "b", 0)]);
        assert_eq!(m.files_in(&q), vec![q.file(1, "a", 0)]);
        // A partition whose name is a prefix of another's is not confused with it.
        let r = Partition::report(Dataset::Me, "mssp");
        m.replace(&r, &[written(&r.file(1, "a", 0))], "a");
        assert_eq!(
            m.files_in(&Partition::report(Dataset::Me, "mss")),
            Vec::<String>::new()
        );
    }
}

//! Where each file goes (CONTRACT §2): pure functions from a record's own report type and
//! period or month to a Hive-partitioned folder, and file names that are never used twice.
//!
//! A data file's name carries the epoch of the run that wrote it: the log version at which
//! that run took the lake (see [`super::log`]). While a run holds the lake, a file of an
//! older epoch that no manifest lists was left by a run that can never commit again, so it can
//! go at once; a file of a newer epoch means this run has lost the lake.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::schema::{Dataset, Partitioning};

/// The folder of bookkeeping files (commit log, staged rows).
pub const BOOKKEEPING: &str = "_hspq";

/// Where rows wait to be merged into their partition (invisible to glob readers).
pub const STAGING: &str = "_hspq/staging";

/// Where files a sync retired are kept for `--as-of` (invisible to glob readers).
pub const HISTORY: &str = "_hspq/history";

/// Where the data file `path` goes when it is retired.
pub fn history_path(path: &str) -> String {
    format!("{HISTORY}/{path}")
}

/// Names the data files of one run: `part-e<epoch>-<run id>-<n>.parquet`, `n` counting every
/// file the run writes, so no two files are ever given the same name.
#[derive(Clone, Debug)]
pub struct FileNames {
    epoch: u64,
    run_id: String,
    next: Arc<AtomicU64>,
    given: Arc<Mutex<Vec<String>>>,
}

impl FileNames {
    /// Names for the run `run_id`, which took the lake at log version `epoch`.
    pub fn new(epoch: u64, run_id: &str) -> FileNames {
        FileNames {
            epoch,
            run_id: run_id.to_string(),
            next: Arc::new(AtomicU64::new(0)),
            given: Arc::default(),
        }
    }

    /// Every path handed out so far.
    pub fn given(&self) -> Vec<String> {
        self.given.lock().map(|g| g.clone()).unwrap_or_default()
    }

    /// The log version at which the run took the lake.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// A new file's path in `partition`.
    pub fn next(&self, partition: &Partition) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.give(partition.file(self.epoch, &self.run_id, n))
    }

    /// A new staged file's path: under `_hspq/staging/`, to be merged into `partition`.
    pub fn next_staged(&self, partition: &Partition) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.give(format!(
            "{STAGING}/{}",
            partition.file(self.epoch, &self.run_id, n)
        ))
    }

    fn give(&self, path: String) -> String {
        if let Ok(mut given) = self.given.lock() {
            given.push(path.clone());
        }
        path
    }
}

/// The epoch in a data file's name, or `None` for a name hspq did not give (or an older
/// hspq's, which carried no epoch).
pub fn epoch_of(path: &str) -> Option<u64> {
    let name = path.rsplit('/').next()?;
    let rest = name.strip_prefix("part-e")?;
    let (digits, _) = rest.split_once('-')?;
    digits.parse().ok()
}

/// One partition of a dataset: the folder its files live in.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Partition {
    /// The dataset.
    pub dataset: Dataset,
    /// `billing/report_type=mssp/year=2026/period=02`.
    pub dir: String,
}

impl Partition {
    /// `<dataset>/report_type=R`.
    pub fn report(dataset: Dataset, report_type: &str) -> Partition {
        debug_assert_eq!(dataset.partitioning(), Partitioning::ReportType);
        Partition {
            dataset,
            dir: format!("{}/report_type={report_type}", dataset.name()),
        }
    }

    /// `<dataset>/report_type=R/year=YYYY/period=PP`.
    pub fn period(dataset: Dataset, report_type: &str, year: i64, period: &str) -> Partition {
        debug_assert_eq!(dataset.partitioning(), Partitioning::Period);
        Partition {
            dataset,
            dir: format!(
                "{}/report_type={report_type}/year={year:04}/period={period}",
                dataset.name()
            ),
        }
    }

    /// `<dataset>/report_type=R/month=YYYY-MM`.
    pub fn month(dataset: Dataset, report_type: &str, month: &str) -> Partition {
        debug_assert_eq!(dataset.partitioning(), Partitioning::Month);
        Partition {
            dataset,
            dir: format!("{}/report_type={report_type}/month={month}", dataset.name()),
        }
    }

    /// `sync_runs`.
    pub fn sync_runs() -> Partition {
        Partition {
            dataset: Dataset::SyncRuns,
            dir: Dataset::SyncRuns.name().to_string(),
        }
    }

    /// The path of the `n`-th file written by run `run_id` of epoch `epoch`, in this partition.
    pub fn file(&self, epoch: u64, run_id: &str, n: u64) -> String {
        format!("{}/part-e{epoch:06}-{run_id}-{n:05}.parquet", self.dir)
    }

    /// The partition a data file belongs to, from its path.
    pub fn of_file(path: &str) -> Option<Partition> {
        let (dir, _) = path.rsplit_once('/')?;
        let dataset = Dataset::from_name(dir.split('/').next()?)?;
        Some(Partition {
            dataset,
            dir: dir.to_string(),
        })
    }
}

/// `YYYY-MM` of a date.
pub fn month_of(date: chrono::NaiveDate) -> String {
    use chrono::Datelike;
    // Called per row: plain integer formatting, not a strftime pattern parsed each time.
    format!("{:04}-{:02}", date.year(), date.month())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_contract() {
        let p = Partition::period(Dataset::DailyUsage, "mssp", 2026, "02");
        assert_eq!(p.dir, "daily_usage/report_type=mssp/year=2026/period=02");
        let path = p.file(12, "20260312T101500Z-ab12", 0);
        assert_eq!(
            path,
            "daily_usage/report_type=mssp/year=2026/period=02/part-e000012-20260312T101500Z-ab12-00000.parquet"
        );
        assert_eq!(epoch_of(&path), Some(12));
        assert_eq!(
            epoch_of("billing/part-20260312T101500Z-ab12-000.parquet"),
            None
        );
        assert_eq!(Partition::of_file(&p.file(1, "r", 1)), Some(p.clone()));
        let names = FileNames::new(3, "r");
        assert_ne!(names.next(&p), names.clone().next(&p));
        let m = Partition::month(Dataset::Churn, "reseller", "2025-11");
        assert_eq!(m.dir, "churn/report_type=reseller/month=2025-11");
        assert_eq!(
            Partition::report(Dataset::Me, "mssp").dir,
            "me/report_type=mssp"
        );
        assert_eq!(
            Partition::sync_runs().file(1, "r", 0),
            "sync_runs/part-e000001-r-00000.parquet"
        );
        assert_eq!(Partition::of_file("_hspq/manifest.json"), None);
        let d = chrono::NaiveDate::from_ymd_opt(2026, 1, 31).unwrap();
        assert_eq!(month_of(d), "2026-01");
    }
}

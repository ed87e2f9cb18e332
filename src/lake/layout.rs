//! Where each file goes (CONTRACT §2): pure functions from a record's own report type and
//! period or month to a Hive-partitioned folder, and unique file names per run.

use super::schema::{Dataset, Partitioning};

/// The folder of bookkeeping files (manifest, sync state, lock).
pub const BOOKKEEPING: &str = "_hspq";

/// The manifest's path.
pub const MANIFEST: &str = "_hspq/manifest.json";

/// The lock's path.
pub const LOCK: &str = "_hspq/lock.json";

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

    /// The path of the `seq`-th file written into this partition by run `run_id`.
    pub fn file(&self, run_id: &str, seq: usize) -> String {
        format!("{}/part-{run_id}-{seq:03}.parquet", self.dir)
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
    date.format("%Y-%m").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_contract() {
        let p = Partition::period(Dataset::DailyUsage, "mssp", 2026, "02");
        assert_eq!(p.dir, "daily_usage/report_type=mssp/year=2026/period=02");
        assert_eq!(
            p.file("20260312T101500Z-ab12", 0),
            "daily_usage/report_type=mssp/year=2026/period=02/part-20260312T101500Z-ab12-000.parquet"
        );
        assert_eq!(Partition::of_file(&p.file("r", 1)), Some(p));
        let m = Partition::month(Dataset::Churn, "reseller", "2025-11");
        assert_eq!(m.dir, "churn/report_type=reseller/month=2025-11");
        assert_eq!(
            Partition::report(Dataset::Me, "mssp").dir,
            "me/report_type=mssp"
        );
        assert_eq!(
            Partition::sync_runs().file("r", 0),
            "sync_runs/part-r-000.parquet"
        );
        assert_eq!(Partition::of_file("_hspq/manifest.json"), None);
        let d = chrono::NaiveDate::from_ymd_opt(2026, 1, 31).unwrap();
        assert_eq!(month_of(d), "2026-01");
    }
}

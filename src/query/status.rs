//! What the lake holds, for `hspq status` and the shell's `.status`: read through the views
//! everyone else reads (`lake_files`, `periods`, `sync_runs`), plus the two facts only the
//! commit itself knows (a sync holding the lake, customer data staged for the next merge).

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use serde::Serialize;

use super::{Engine, QueryError};
use crate::lake::Dataset;

/// The lake at a glance. Serialised as is by `hspq status --format json`.
#[derive(Clone, Debug, Serialize)]
pub struct LakeStatus {
    /// `--data` as given.
    pub lake: String,
    /// Files, rows and bytes of each dataset.
    pub datasets: BTreeMap<String, DatasetSize>,
    /// The periods of each report type.
    pub reports: Vec<ReportPeriods>,
    /// The newest sync that succeeded.
    pub last_success: Option<LastSuccess>,
    /// The newest sync that failed or was interrupted.
    pub last_failure: Option<LastFailure>,
    /// The sync that holds the lake now, if one does.
    pub sync_running: Option<Holder>,
    /// Chunks of customer data fetched and not merged yet (the next sync merges them).
    pub staged_chunks: usize,
    /// The version shown (`hspq log`'s), when the lake has a log.
    pub version: Option<u64>,
    /// When that version was written.
    pub version_written_at: Option<chrono::DateTime<chrono::Utc>>,
    /// It is a past version (`--as-of`), not the newest.
    pub as_of: bool,
}

/// A dataset's live files.
#[derive(Clone, Debug, Default, Serialize)]
pub struct DatasetSize {
    /// Files.
    pub files: u64,
    /// Rows.
    pub rows: u64,
    /// Bytes.
    pub bytes: u64,
}

/// The periods of one report type.
#[derive(Clone, Debug, Serialize)]
pub struct ReportPeriods {
    /// `mssp` or `reseller`.
    pub report_type: String,
    /// Periods held.
    pub periods: u64,
    /// Of which closed (final).
    pub closed: u64,
    /// The first, `YYYY-PP`.
    pub first: String,
    /// The last, `YYYY-PP`.
    pub last: String,
}

/// The newest successful sync.
#[derive(Clone, Debug, Serialize)]
pub struct LastSuccess {
    /// Its run id.
    pub run_id: String,
    /// When it finished (UTC).
    pub finished_at: String,
    /// How long ago, in seconds.
    pub age_seconds: Option<u64>,
}

/// The newest failed or interrupted sync.
#[derive(Clone, Debug, Serialize)]
pub struct LastFailure {
    /// Its run id.
    pub run_id: String,
    /// `failed` or `interrupted`.
    pub status: String,
    /// When it started (UTC).
    pub started_at: String,
    /// Why.
    pub error: String,
}

/// The sync holding the lake.
#[derive(Clone, Debug, Serialize)]
pub struct Holder {
    /// Its run id.
    pub run_id: String,
    /// Its machine.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// Since when.
    pub since: chrono::DateTime<chrono::Utc>,
    /// When its lease lapses unless it commits again.
    pub lease_expires_at: chrono::DateTime<chrono::Utc>,
    /// Why it no longer protects the lake (expired, process gone): the next sync takes over.
    pub stale: Option<&'static str>,
}

impl LakeStatus {
    /// Reads the status of the lake `engine` shows, which the user named `lake`.
    pub fn read(engine: &Engine, lake: &str) -> Result<LakeStatus, QueryError> {
        let commit = engine.commit()?;
        let conn = engine.connection();
        let mut datasets: BTreeMap<String, DatasetSize> = Dataset::ALL
            .iter()
            .map(|d| (d.name().to_string(), DatasetSize::default()))
            .collect();
        let mut stmt = conn.prepare(
            "select dataset, count(*) as files, sum(rows) as rows, sum(bytes) as bytes \
             from lake_files group by dataset",
        )?;
        let sizes = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>("dataset")?,
                DatasetSize {
                    files: r.get::<_, i64>("files")? as u64,
                    rows: r.get::<_, i64>("rows")? as u64,
                    bytes: r.get::<_, i64>("bytes")? as u64,
                },
            ))
        })?;
        for size in sizes {
            let (name, size) = size?;
            datasets.insert(name, size);
        }
        let mut stmt = conn.prepare(
            "select report_type, count(*) as periods, count(*) filter (where not is_partial) as closed, \
                    min(year || '-' || period) as first, max(year || '-' || period) as last \
             from periods group by report_type order by report_type",
        )?;
        let reports = stmt
            .query_map([], |r| {
                Ok(ReportPeriods {
                    report_type: r.get("report_type")?,
                    periods: r.get::<_, i64>("periods")? as u64,
                    closed: r.get::<_, i64>("closed")? as u64,
                    first: r.get("first")?,
                    last: r.get("last")?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut stmt = conn.prepare(
            "select run_id, strftime(finished_at at time zone 'UTC', '%Y-%m-%d %H:%M:%SZ') as finished_at, \
                    cast(epoch(now() - finished_at) as bigint) as age_seconds \
             from sync_runs where status = 'succeeded' order by finished_at desc limit 1",
        )?;
        let last_success = stmt
            .query_map([], |r| {
                Ok(LastSuccess {
                    run_id: r.get("run_id")?,
                    finished_at: r.get("finished_at")?,
                    age_seconds: r
                        .get::<_, Option<i64>>("age_seconds")?
                        .map(|s| s.max(0) as u64),
                })
            })?
            .next()
            .transpose()?;
        let mut stmt = conn.prepare(
            "select run_id, status, strftime(started_at at time zone 'UTC', '%Y-%m-%d %H:%M:%SZ') as started_at, \
                    coalesce(error, '') as error \
             from sync_runs where status in ('failed', 'interrupted') order by started_at desc limit 1",
        )?;
        let last_failure = stmt
            .query_map([], |r| {
                Ok(LastFailure {
                    run_id: r.get("run_id")?,
                    status: r.get("status")?,
                    started_at: r.get("started_at")?,
                    error: r.get("error")?,
                })
            })?
            .next()
            .transpose()?;
        let now = chrono::Utc::now();
        let as_of = engine.is_past();
        let sync_running = commit
            .as_ref()
            // A past version's lease is history, not who holds the lake now.
            .filter(|_| !as_of)
            .and_then(|c| c.lease.as_ref())
            .map(|l| Holder {
                run_id: l.run_id.clone(),
                host: l.host.clone(),
                pid: l.owner.pid,
                since: l.acquired_at,
                lease_expires_at: l.expires_at,
                stale: l.stale(now),
            });
        Ok(LakeStatus {
            lake: lake.to_string(),
            datasets,
            reports,
            last_success,
            last_failure,
            sync_running,
            staged_chunks: commit
                .as_ref()
                .filter(|_| !as_of)
                .map_or(0, |c| c.manifest.staged.len()),
            version: commit.as_ref().map(|c| c.version),
            version_written_at: commit.as_ref().map(|c| c.written_at),
            as_of,
        })
    }

    /// Which version is shown, as ` (v42 of 2026-12-07 13:52:40Z)`; empty without a log.
    pub fn version_shown(&self) -> String {
        let (Some(v), Some(at)) = (self.version, self.version_written_at) else {
            return String::new();
        };
        let past = if self.as_of {
            ", a past version (--as-of)"
        } else {
            ""
        };
        format!(" (v{v} of {}{past})", at.format("%Y-%m-%d %H:%M:%SZ"))
    }

    /// The lines before the datasets table: where, who holds it, the periods.
    pub fn heading(&self) -> String {
        let mut out = format!("lake: {}{}\n", self.lake, self.version_shown());
        if let Some(h) = &self.sync_running {
            out.push_str(&format!(
                "  a sync holds the lake: run {} (pid {} on {}) since {}, lease until {}{}\n",
                h.run_id,
                h.pid,
                h.host,
                h.since.format("%Y-%m-%d %H:%M:%SZ"),
                h.lease_expires_at.format("%Y-%m-%d %H:%M:%SZ"),
                h.stale
                    .map(|why| format!(" ({why}: the next sync takes the lake over)"))
                    .unwrap_or_default()
            ));
        }
        if self.staged_chunks > 0 {
            out.push_str(&format!(
                "  {} chunk(s) of customer data fetched and not merged yet: the next hspq ingest merges them\n",
                self.staged_chunks
            ));
        }
        for r in &self.reports {
            out.push_str(&format!(
                "  {} report: {} periods ({} closed), {} to {}\n",
                r.report_type, r.periods, r.closed, r.first, r.last
            ));
        }
        out
    }

    /// The lines after the datasets table: the last sync that succeeded and the last that did
    /// not.
    pub fn footing(&self) -> String {
        let mut out = match &self.last_success {
            Some(s) => format!(
                "last successful sync: {} ({} ago), run {}\n",
                s.finished_at,
                crate::duration::human(std::time::Duration::from_secs(s.age_seconds.unwrap_or(0))),
                s.run_id
            ),
            None => "last successful sync: none\n".to_string(),
        };
        if let Some(f) = &self.last_failure {
            out.push_str(&format!(
                "last {} run: {} at {}: {}\n",
                f.status, f.run_id, f.started_at, f.error
            ));
        }
        out
    }

    /// The datasets as a result, for the printer.
    pub fn datasets(&self) -> (SchemaRef, RecordBatch) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("dataset", DataType::Utf8, false),
            Field::new("files", DataType::Int64, false),
            Field::new("rows", DataType::Int64, false),
            Field::new("bytes", DataType::Int64, false),
        ]));
        let column = |f: fn(&DatasetSize) -> i64| {
            Arc::new(Int64Array::from_iter_values(self.datasets.values().map(f)))
        };
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from_iter_values(self.datasets.keys())),
                column(|d| d.files as i64),
                column(|d| d.rows as i64),
                column(|d| d.bytes as i64),
            ],
        )
        .expect("columns match the schema");
        (schema, batch)
    }
}

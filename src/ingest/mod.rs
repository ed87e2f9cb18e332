//! `hspq ingest`: mirrors what the key's scopes allow into the lake, incrementally.
//!
//! A run takes the lake (a [`LakeWriter`]), deletes what killed runs left, then fetches period
//! by period and customer chunk by customer chunk. Each unit is converted to Arrow as its pages
//! arrive, written to new files and committed (a log entry) on its own, so a run killed
//! anywhere loses at most the unit in flight, and the next run does not fetch the finished
//! ones again. Files the run replaced are deleted when it ends. Pacing, retries and sessions
//! live in the API client; layout, files, commits and deletion in the lake; this module decides
//! what to fetch and in what order.

pub mod history;
pub mod plan;
pub mod progress;
pub mod rows;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use arrow::array::{AsArray, BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use arrow::datatypes::Date32Type;
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use futures_util::{stream, StreamExt};
use tracing::{info, warn};

use crate::api::models::{
    BillingTotals, ChurnRisk, Company, Customer, Engagement, Me, PeriodDetail, PeriodList,
    PeriodSummary, UsageCompany,
};
use crate::api::{ApiError, Client, ClientConfig, Credentials, MAX_PAGE};
use crate::lake::layout::month_of;
use crate::lake::{
    CustomerState, Dataset, FileNames, Lake, LakeError, LakeLocation, LakeWriter, Manifest,
    Partition, PartitionWriter, StagedChunk, SyncState, WriterOptions, WrittenFile,
};
use plan::Windows;
use progress::Progress;
use rows::{PeriodContext, RunRow};

/// Customers whose engagement and churn are committed together.
const CUSTOMER_CHUNK: usize = 200;

/// Everything a sync needs.
pub struct IngestOptions {
    /// `--data`: the lake.
    pub data: LakeLocation,
    /// How to reach the API.
    pub client: ClientConfig,
    /// The key pair.
    pub creds: Credentials,
    /// History, lookback, `--full`.
    pub windows: Windows,
    /// Print the plan, fetch nothing else, write nothing.
    pub dry_run: bool,
    /// No progress bar even on a terminal.
    pub quiet: bool,
    /// The lease on the lake and the retention of unlisted files.
    pub lake: WriterOptions,
}

/// What a run did.
#[derive(Clone, Debug, Default)]
pub struct IngestSummary {
    /// The run's id.
    pub run_id: String,
    /// `mssp` or `reseller`.
    pub report_type: String,
    /// Periods fetched.
    pub periods_fetched: usize,
    /// Customers whose engagement and churn were fetched.
    pub customers_fetched: usize,
    /// Requests sent (session calls included).
    pub requests: u64,
    /// Retries.
    pub retries: u64,
    /// 429s seen.
    pub rate_limited: u64,
    /// Rows written.
    pub rows_written: u64,
    /// Bytes written.
    pub bytes_written: u64,
    /// Customers skipped and other non-fatal problems.
    pub warnings: Vec<String>,
    /// Wall time.
    pub elapsed: Duration,
    /// The plan, for `--dry-run`.
    pub plan: Option<String>,
}

/// Why a sync failed.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The API refused or failed.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The lake's storage failed.
    #[error(transparent)]
    Lake(#[from] LakeError),
    /// An answer could not be turned into rows.
    #[error("converting {endpoint}: {detail}; nothing of it was written")]
    Convert {
        /// Which request.
        endpoint: String,
        /// What failed.
        detail: String,
    },
    /// The key can read no report.
    #[error("the API key has neither mssp-report:read nor reseller-report:read: create a key for a partnership under Settings → API")]
    NoReportScope,
    /// Ctrl-C.
    #[error("interrupted: what was committed is kept; run hspq ingest again to go on")]
    Interrupted,
}

/// Runs one sync. Ctrl-C stops it cleanly: sessions invalidated, lock released, the run
/// recorded as interrupted.
pub async fn run(opts: IngestOptions) -> Result<IngestSummary, IngestError> {
    let lake = Lake::open(&opts.data)?;
    run_on(lake, opts).await
}

/// [`run`] on an opened lake (`opts.data` only names it).
pub async fn run_on(lake: Lake, opts: IngestOptions) -> Result<IngestSummary, IngestError> {
    let started = Instant::now();
    let run_id = new_run_id();
    let client = Client::connect(opts.client.clone(), opts.creds.clone()).await?;
    if opts.dry_run {
        let result = dry_run(&lake, &client, &opts).await;
        client.close().await;
        return result;
    }
    let writer = match LakeWriter::acquire(&lake, &run_id, opts.lake.clone()).await {
        Ok(writer) => writer,
        Err(e) => {
            client.close().await;
            return Err(e.into());
        }
    };
    let progress = Progress::new(opts.quiet);
    let mut sync = Sync {
        lake: lake.clone(),
        writer: &writer,
        client: client.clone(),
        run_id: run_id.clone(),
        ingested_at: Utc::now(),
        windows: opts.windows,
        sessions: opts.client.sessions,
        summary: IngestSummary {
            run_id: run_id.clone(),
            ..IngestSummary::default()
        },
        progress: &progress,
        planned: 0,
        listed: None,
    };
    let outcome = tokio::select! {
        r = sync.run() => r,
        _ = tokio::signal::ctrl_c() => Err(IngestError::Interrupted),
    };
    progress.finish();
    client.close().await;
    let mut summary = sync.summary.clone();
    let stats = client.stats();
    summary.requests = stats.requests + stats.sessions_created;
    summary.retries = stats.retries;
    summary.rate_limited = stats.rate_limited;
    summary.elapsed = started.elapsed();
    // Record how the run ended; a failure to record must not hide the run's own error.
    let status = match &outcome {
        Ok(()) => "succeeded",
        Err(IngestError::Interrupted) => "interrupted",
        Err(_) => "failed",
    };
    if let Some(lost) = lost_lake(&writer).await {
        return Err(lost);
    }
    let error = outcome.as_ref().err().map(|e| e.to_string());
    let recorded = sync.record_run(status, error, &summary).await;
    // Replaced files, and those of a unit that failed before its commit, go now: after this
    // run no reader sees two versions of a row (but for what readers still read).
    let finished = writer.finish().await;
    // Having lost the lake on the way says more than whatever else failed.
    if let Err(lost @ LakeError::Lost(_)) = finished {
        return Err(lost.into());
    }
    outcome?;
    recorded?;
    finished?;
    Ok(summary)
}

/// If another run took the lake over: deletes what this run wrote and never committed (all it
/// may still touch), and says so.
async fn lost_lake(writer: &LakeWriter) -> Option<IngestError> {
    let why = writer.lost().await?;
    writer.abandon().await;
    Some(LakeError::Lost(why).into())
}

fn new_run_id() -> String {
    let suffix: u32 = rand::random();
    format!("{}-{suffix:08x}", Utc::now().format("%Y%m%dT%H%M%S%.3fZ")).replace('.', "")
}

/// The report a key reads, and whether it reads customers.
fn scopes(me: &Me) -> Result<(&'static str, bool), IngestError> {
    let has = |s: &str| me.scopes.iter().any(|x| x == s);
    let report = if has("mssp-report:read") {
        "mssp"
    } else if has("reseller-report:read") {
        "reseller"
    } else {
        return Err(IngestError::NoReportScope);
    };
    Ok((report, has("customers:read")))
}

async fn dry_run(
    lake: &Lake,
    client: &Client,
    opts: &IngestOptions,
) -> Result<IngestSummary, IngestError> {
    let manifest = Manifest::load(lake).await?;
    let me: Me = client.get("me").await?;
    let (rt, customers_scope) = scopes(&me)?;
    let list: PeriodList = client.get(&format!("{rt}-report")).await?;
    let todo = plan::periods_to_fetch(rt, &list.results, &manifest.state, opts.windows.full);
    let mut lines = vec![format!("plan for {} ({rt} report):", lake.location())];
    let mut total = 3u64; // session, /me, period list
    let mut period_requests = 0u64;
    for p in &todo {
        let known = manifest
            .state
            .periods
            .get(&SyncState::period_key(rt, p.year as i64, &p.period))
            .and_then(|s| s.eligible_company_count)
            .unwrap_or(1) as u64;
        let pages = known.div_ceil(MAX_PAGE as u64).max(1);
        let n = 1 + 2 * pages + u64::from(rt == "mssp");
        period_requests += n;
        lines.push(format!(
            "  period {}-{} ({} to {}{}): {n} requests",
            p.year,
            p.period,
            p.from,
            p.to,
            if p.is_partial { ", partial" } else { "" }
        ));
    }
    let skipped = list.results.len() - todo.len();
    lines.push(format!(
        "  {skipped} closed period(s) already in the lake are not fetched again"
    ));
    total += period_requests;
    if customers_scope {
        let customers: Vec<Customer> = client.get_all("customers", MAX_PAGE).await?;
        let last_day = plan::api_today(&list.results).map(|t| t - chrono::Days::new(1));
        let mut windows = 0u64;
        if let Some(last_day) = last_day {
            for c in &customers {
                let key = SyncState::customer_key(rt, &c.security_center_id);
                windows += plan::customer_windows(
                    last_day,
                    manifest.state.customers.get(&key),
                    opts.windows,
                )
                .len() as u64;
            }
        }
        let pages = (customers.len() as u64).div_ceil(MAX_PAGE as u64).max(1);
        lines.push(format!(
            "  customers: {pages} request(s) for the list, {} for engagement and churn risk of {} customers",
            2 * windows,
            customers.len()
        ));
        total += pages + 2 * windows;
    } else {
        lines.push("  customers: skipped (the key has no customers:read scope)".into());
    }
    let per_second = opts.client.rate * client.sessions() as f64;
    let seconds = if per_second > 0.0 {
        total as f64 / per_second
    } else {
        0.0
    };
    lines.push(format!(
        "  about {total} requests: {} at {} request(s)/s on {} session(s)",
        human_duration(Duration::from_secs_f64(seconds)),
        opts.client.rate,
        client.sessions()
    ));
    Ok(IngestSummary {
        report_type: rt.to_string(),
        plan: Some(lines.join("\n")),
        ..IngestSummary::default()
    })
}

/// "1 h 02 min", "3 min 20 s", "12 s".
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 86_400 && s.is_multiple_of(86_400) {
        format!("{} day{}", s / 86_400, if s == 86_400 { "" } else { "s" })
    } else if s >= 3600 {
        format!("{} h {:02} min", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{} min {:02} s", s / 60, s % 60)
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// One customer's fetched indicators.
struct CustomerData {
    id: String,
    range: (NaiveDate, NaiveDate),
    engagement: Vec<RecordBatch>,
    churn: Vec<RecordBatch>,
}

/// A running sync.
struct Sync<'a> {
    lake: Lake,
    writer: &'a LakeWriter,
    client: Client,
    run_id: String,
    ingested_at: DateTime<Utc>,
    windows: Windows,
    sessions: usize,
    summary: IngestSummary,
    progress: &'a Progress,
    planned: u64,
    /// The customer list this run fetched (id, name) and the API's day it was fetched on, for
    /// `customer_history`, which only a successful run advances.
    listed: Option<(NaiveDate, Vec<(String, String)>)>,
}

impl Sync<'_> {
    fn ts(&self) -> String {
        self.ingested_at
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    }

    fn tick(&self) {
        let s = self.client.stats();
        self.progress.requests(s.requests, self.planned);
    }

    async fn run(&mut self) -> Result<(), IngestError> {
        let cleaned = self.writer.clean_up().await?;
        if cleaned.orphans > 0 {
            info!(
                "removed {} file(s) an interrupted run left behind",
                cleaned.orphans
            );
        }
        self.close_dead_runs().await?;
        self.record_run("running", None, &self.summary.clone())
            .await?;

        let me: Me = self.client.get("me").await?;
        let (rt, customers_scope) = scopes(&me)?;
        self.summary.report_type = rt.to_string();

        let list: PeriodList = self.client.get(&format!("{rt}-report")).await?;
        let state = self.writer.snapshot().await;
        let todo: Vec<PeriodSummary> =
            plan::periods_to_fetch(rt, &list.results, &state.state, self.windows.full)
                .into_iter()
                .cloned()
                .collect();
        self.planned = 3 + todo.len() as u64 * (3 + u64::from(rt == "mssp"));
        self.sync_periods(rt, &todo).await?;
        self.write_periods(rt, &list.results).await?;

        if customers_scope {
            let today = plan::api_today(&list.results);
            if let Some(today) = today {
                let fetched = self.sync_customers(rt, today - chrono::Days::new(1)).await;
                // What was staged is merged even when a chunk failed, unless the lake is lost.
                if !matches!(fetched, Err(IngestError::Lake(LakeError::Lost(_)))) {
                    self.merge_staged(rt).await?;
                }
                fetched?;
            }
        } else {
            info!("customers skipped: the API key has no customers:read scope");
        }
        // Last, so a run that fails earlier leaves the snapshot and the history as they were.
        let batch = rows::me(rt, &me, &self.ts()).map_err(|detail| convert("/v1/me", detail))?;
        let mut last = vec![
            self.write(Partition::report(Dataset::Me, rt), vec![batch])
                .await?,
        ];
        if let Some(history) = self.advance_history(rt).await? {
            last.push(history);
        }
        self.commit(last, |_| {}).await
    }

    /// The report type's `customer_history` advanced by the customer list this run fetched,
    /// written (not yet committed); `None` when the run fetched no list.
    async fn advance_history(
        &mut self,
        rt: &str,
    ) -> Result<Option<(Partition, Vec<WrittenFile>)>, IngestError> {
        let Some((day, listed)) = self.listed.take() else {
            return Ok(None);
        };
        let partition = Partition::report(Dataset::CustomerHistory, rt);
        let mut batches = Vec::new();
        for path in self.writer.snapshot().await.files_in(&partition) {
            for b in lake_batches(&self.lake, &path).await? {
                batches.push(b?);
            }
        }
        let before = history::from_batches(&batches).map_err(|d| convert("customer_history", d))?;
        let names: Vec<(&str, &str)> = listed
            .iter()
            .map(|(id, name)| (id.as_str(), name.as_str()))
            .collect();
        let Some(after) = history::advance(before.clone(), &names, day) else {
            let warning = format!(
                "customer_history not advanced: the API's day {day} is before the last sync's"
            );
            warn!("{warning}");
            self.summary.warnings.push(warning);
            return Ok(None);
        };
        let (left, arrived) = history::changes(&before, &after);
        if left + arrived > 0 {
            info!("customer list: {left} customer(s) gone since the last sync, {arrived} new");
        }
        let batch = rows::customer_history(rt, &after, &self.ts())
            .map_err(|d| convert("customer_history", d))?;
        Ok(Some(self.write(partition, vec![batch]).await?))
    }

    async fn sync_periods(&mut self, rt: &str, todo: &[PeriodSummary]) -> Result<(), IngestError> {
        let (client, lake) = (self.client.clone(), self.lake.clone());
        let names = self.writer.names().clone();
        let (ts, ingested_at) = (self.ts(), self.ingested_at);
        let fetches = todo.iter().map(|p| {
            let (client, lake, names, ts) =
                (client.clone(), lake.clone(), names.clone(), ts.clone());
            let rt = rt.to_string();
            async move { fetch_period(&client, &lake, &names, &rt, p, ts, ingested_at).await }
        });
        // Periods are fetched on all sessions at once and committed one by one, in order.
        let mut results = stream::iter(fetches).buffered(self.sessions.max(1));
        while let Some(result) = results.next().await {
            let (state, written) = result?;
            self.progress
                .step(&format!("committed period {}-{}", state.year, state.period));
            let key = SyncState::period_key(rt, state.year, &state.period);
            self.commit(written, |m| {
                m.state.periods.insert(key, state);
            })
            .await?;
            self.summary.periods_fetched += 1;
            self.tick();
        }
        Ok(())
    }

    /// Rewrites the `periods` dataset from the sync state, with `is_current` of closed periods
    /// not fetched again kept in step with the API's list.
    async fn write_periods(&mut self, rt: &str, list: &[PeriodSummary]) -> Result<(), IngestError> {
        let mut state = self.writer.snapshot().await.state.clone();
        update_period_flags(&mut state, rt, list);
        let states: Vec<_> = state
            .periods
            .values()
            .filter(|p| p.report_type == rt)
            .collect();
        let batch = rows::periods(&states).map_err(|d| convert("periods", d))?;
        let written = self
            .write(Partition::report(Dataset::Periods, rt), vec![batch])
            .await?;
        self.commit(vec![written], |m| {
            update_period_flags(&mut m.state, rt, list)
        })
        .await
    }

    async fn sync_customers(&mut self, rt: &str, last_day: NaiveDate) -> Result<(), IngestError> {
        self.progress.step("listing customers");
        let customers: Vec<Customer> = self.client.get_all("customers", MAX_PAGE).await?;
        // The API's today: run() passes the day before it.
        self.listed = Some((
            last_day + chrono::Days::new(1),
            customers
                .iter()
                .map(|c| (c.security_center_id.clone(), c.company_name.clone()))
                .collect(),
        ));
        let batch =
            rows::customers(rt, &customers, &self.ts()).map_err(|d| convert("/v1/customers", d))?;
        self.replace(Partition::report(Dataset::Customers, rt), vec![batch])
            .await?;
        let state = self.writer.snapshot().await;
        let mut work: Vec<(String, Vec<(NaiveDate, NaiveDate)>)> = Vec::new();
        // Customers the lake already holds past the API's last day: nothing to fetch.
        let mut ahead: Vec<(&str, NaiveDate)> = Vec::new();
        for c in &customers {
            let key = SyncState::customer_key(rt, &c.security_center_id);
            let known = state.state.customers.get(&key);
            let windows = plan::customer_windows(last_day, known, self.windows);
            match (windows.is_empty(), known) {
                (true, Some(k)) => ahead.push((&c.security_center_id, k.to)),
                (true, None) => {}
                (false, _) => work.push((c.security_center_id.clone(), windows)),
            }
        }
        if let Some(latest) = ahead.iter().map(|(_, to)| *to).max() {
            // Another key, a lagging API or a moved clock: the lake is ahead of this API.
            let warning = format!(
                "{} customer(s) skipped (first: {}): the lake holds their engagement up to {latest}, \
                 past this API's last day {last_day}; nothing of theirs was changed",
                ahead.len(),
                ahead[0].0
            );
            warn!("{warning}");
            self.summary.warnings.push(warning);
        }
        self.planned += work.iter().map(|(_, w)| 2 * w.len() as u64).sum::<u64>();
        let total = work.len();
        for (n, chunk) in work.chunks(CUSTOMER_CHUNK).enumerate() {
            self.progress.step(&format!(
                "customers {}-{} of {total}: engagement, churn risk",
                n * CUSTOMER_CHUNK + 1,
                n * CUSTOMER_CHUNK + chunk.len()
            ));
            let (client, ts) = (self.client.clone(), self.ts());
            let fetches = chunk.iter().map(|(id, windows)| {
                let (client, ts, rt) = (client.clone(), ts.clone(), rt.to_string());
                async move { fetch_customer(&client, &rt, id, windows, &ts).await }
            });
            let mut fetched = Vec::new();
            let mut results = stream::iter(fetches).buffer_unordered(2 * self.sessions.max(1));
            while let Some(r) = results.next().await {
                match r {
                    Ok(data) => fetched.push(data),
                    Err(CustomerError::Skipped(warning)) => {
                        warn!("{warning}");
                        self.summary.warnings.push(warning);
                    }
                    // Ends the run; the chunks staged so far are merged all the same.
                    Err(CustomerError::Fatal(e)) => return Err(e),
                }
                self.tick();
            }
            self.stage_customers(rt, fetched).await?;
        }
        Ok(())
    }

    /// Stages a chunk's rows under `_hspq/staging/`, one sorted file per month partition, and
    /// commits them with the customers' new sync state, so a killed run loses at most the
    /// chunk in flight. Readers see them once [`Sync::merge_staged`] has run.
    async fn stage_customers(
        &mut self,
        rt: &str,
        fetched: Vec<CustomerData>,
    ) -> Result<(), IngestError> {
        if fetched.is_empty() {
            return Ok(());
        }
        let windows: BTreeMap<String, (NaiveDate, NaiveDate)> =
            fetched.iter().map(|c| (c.id.clone(), c.range)).collect();
        let mut staged = Vec::new();
        for dataset in [Dataset::Engagement, Dataset::Churn] {
            let mut by_month: BTreeMap<String, Vec<RecordBatch>> = BTreeMap::new();
            for c in &fetched {
                let batches = if dataset == Dataset::Engagement {
                    &c.engagement
                } else {
                    &c.churn
                };
                for b in batches {
                    for (month, part) in split_by_month(b) {
                        by_month.entry(month).or_default().push(part);
                    }
                }
            }
            for (month, batches) in by_month {
                let partition = Partition::month(dataset, rt, &month);
                let mut writer =
                    PartitionWriter::new(&self.lake, partition, self.writer.names()).staged();
                for b in batches {
                    writer.push(b).await?;
                }
                staged.push(writer.finish().await?);
            }
        }
        let chunk = StagedChunk {
            report_type: rt.to_string(),
            windows: windows.clone(),
            files: staged
                .iter()
                .map(|(p, files)| {
                    (
                        p.dir.clone(),
                        files.iter().map(|f| f.path.clone()).collect(),
                    )
                })
                .collect(),
        };
        self.count(&staged);
        self.writer
            .commit(|m| {
                m.staged.push(chunk);
                for (id, (from, to)) in windows {
                    let key = SyncState::customer_key(rt, &id);
                    let from = m
                        .state
                        .customers
                        .get(&key)
                        .map_or(from, |s| s.from.min(from));
                    m.state.customers.insert(key, CustomerState { from, to });
                }
            })
            .await?;
        self.summary.customers_fetched += fetched.len();
        Ok(())
    }

    /// Merges every staged chunk of `rt` into its month partitions, each partition rewritten
    /// once: the old rows outside every re-fetched range, and each chunk's rows outside the
    /// ranges of the chunks staged after it.
    async fn merge_staged(&mut self, rt: &str) -> Result<(), IngestError> {
        let state = self.writer.snapshot().await;
        let chunks: Vec<&StagedChunk> = state
            .staged
            .iter()
            .filter(|c| c.report_type == rt)
            .collect();
        if chunks.is_empty() {
            return Ok(());
        }
        self.progress.step(&format!(
            "merging {} staged chunk(s) of engagement and churn",
            chunks.len()
        ));
        let mut months: BTreeSet<String> = BTreeSet::new();
        for (from, to) in chunks.iter().flat_map(|c| c.windows.values()) {
            let mut d = NaiveDate::from_ymd_opt(from.year(), from.month(), 1).expect("valid");
            while d <= *to {
                months.insert(month_of(d));
                d = d + chrono::Months::new(1);
            }
        }
        let refetched = Refetched::of(&chunks);
        let mut written = Vec::new();
        for dataset in [Dataset::Engagement, Dataset::Churn] {
            for month in &months {
                let partition = Partition::month(dataset, rt, month);
                let mut writer =
                    PartitionWriter::new(&self.lake, partition.clone(), self.writer.names());
                for (k, chunk) in chunks.iter().enumerate() {
                    for path in chunk.files.get(&partition.dir).into_iter().flatten() {
                        push_file(&self.lake, path, &mut writer, &refetched, Some(k)).await?;
                    }
                }
                for path in state.files_in(&partition) {
                    push_file(&self.lake, &path, &mut writer, &refetched, None).await?;
                }
                written.push(writer.finish().await?);
            }
        }
        let merged: Vec<String> = chunks
            .iter()
            .flat_map(|c| c.files.values().flatten().cloned())
            .collect();
        self.commit(written, |m| {
            m.staged.retain(|c| c.report_type != rt);
            let now = Utc::now();
            for path in merged {
                m.dead.insert(path, now);
            }
        })
        .await
    }

    fn count(&mut self, written: &[(Partition, Vec<WrittenFile>)]) {
        for (_, files) in written {
            for f in files {
                self.summary.rows_written += f.rows;
                self.summary.bytes_written += f.size;
            }
        }
    }

    /// Writes `batches` as the whole content of `partition` and commits it.
    async fn replace(
        &mut self,
        partition: Partition,
        batches: Vec<RecordBatch>,
    ) -> Result<(), IngestError> {
        let written = self.write(partition, batches).await?;
        self.commit(vec![written], |_| {}).await
    }

    /// Writes `batches` into new files of `partition`.
    async fn write(
        &self,
        partition: Partition,
        batches: Vec<RecordBatch>,
    ) -> Result<(Partition, Vec<WrittenFile>), IngestError> {
        let mut writer = PartitionWriter::new(&self.lake, partition, self.writer.names());
        for b in batches {
            writer.push(b).await?;
        }
        Ok(writer.finish().await?)
    }

    /// Makes the written partitions live, with `edit` to the sync state, in one log entry.
    /// What they replaced is deleted when the run ends.
    async fn commit(
        &mut self,
        written: Vec<(Partition, Vec<WrittenFile>)>,
        edit: impl FnOnce(&mut Manifest),
    ) -> Result<(), IngestError> {
        let run_id = self.run_id.clone();
        self.writer
            .commit(|m| {
                for (partition, files) in &written {
                    m.replace(partition, files, &run_id);
                }
                edit(m);
            })
            .await?;
        self.count(&written);
        Ok(())
    }

    /// Writes this run's `sync_runs` row with `status`.
    async fn record_run(
        &mut self,
        status: &str,
        error: Option<String>,
        summary: &IngestSummary,
    ) -> Result<(), IngestError> {
        let row = RunRow {
            run_id: self.run_id.clone(),
            report_type: (!summary.report_type.is_empty()).then(|| summary.report_type.clone()),
            started_at: self.ts(),
            finished_at: (status != "running")
                .then(|| Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
            status: status.to_string(),
            requests: summary.requests as i64,
            retries: summary.retries as i64,
            rate_limited: summary.rate_limited as i64,
            rows_written: summary.rows_written as i64,
            bytes_written: summary.bytes_written as i64,
            error,
            warnings: summary.warnings.clone(),
            ingested_at: self.ts(),
            extra: None,
        };
        let run_id = self.run_id.clone();
        let open = (status == "running")
            .then(|| serde_json::to_value(&row).expect("a run row serializes"));
        self.write_run_rows(vec![row], move |m| match open {
            Some(json) => {
                m.state.open_runs.insert(run_id, json);
            }
            None => {
                m.state.open_runs.remove(&run_id);
            }
        })
        .await
    }

    /// Rewrites `sync_runs` as one file with `rows` in place of those runs' earlier rows.
    async fn write_run_rows(
        &mut self,
        rows: Vec<RunRow>,
        edit: impl FnOnce(&mut Manifest),
    ) -> Result<(), IngestError> {
        let partition = Partition::sync_runs();
        // New rows first: the writer keeps the first version of a key it sees.
        let mut batches = Vec::new();
        for row in &rows {
            batches.push(rows::sync_run(row).map_err(|d| convert("sync_runs", d))?);
        }
        let state = self.writer.snapshot().await;
        for path in state.files_in(&partition) {
            for batch in lake_batches(&self.lake, &path).await? {
                batches.push(batch?);
            }
        }
        let (partition, files) = self.write(partition, batches).await?;
        // Bookkeeping, not data fetched: not counted in the run's rows and bytes.
        let run_id = self.run_id.clone();
        self.writer
            .commit(|m| {
                m.replace(&partition, &files, &run_id);
                edit(m);
            })
            .await?;
        Ok(())
    }

    /// Runs that began but never recorded an end (killed, or taken over): recorded as
    /// interrupted.
    async fn close_dead_runs(&mut self) -> Result<(), IngestError> {
        let state = self.writer.snapshot().await;
        let open = &state.state.open_runs;
        let dead: Vec<String> = open
            .keys()
            .filter(|id| **id != self.run_id)
            .cloned()
            .collect();
        if dead.is_empty() {
            return Ok(());
        }
        let rows: Vec<RunRow> = dead
            .iter()
            .filter_map(|id| serde_json::from_value::<RunRow>(open[id].clone()).ok())
            .map(|mut row| {
                row.status = "interrupted".into();
                row.error = Some(
                    "the run ended without recording its end (killed, crashed or taken over)"
                        .into(),
                );
                row
            })
            .collect();
        self.write_run_rows(rows, |m| {
            for id in &dead {
                m.state.open_runs.remove(id);
            }
        })
        .await
    }
}

/// Keeps `is_current` of closed periods not fetched again in step with the API's list.
fn update_period_flags(state: &mut SyncState, rt: &str, list: &[PeriodSummary]) {
    for p in list {
        let key = SyncState::period_key(rt, p.year as i64, &p.period);
        if let Some(s) = state.periods.get_mut(&key) {
            if !s.is_partial {
                s.is_current = p.is_current;
            }
        }
    }
}

fn convert(endpoint: &str, detail: String) -> IngestError {
    IngestError::Convert {
        endpoint: endpoint.to_string(),
        detail,
    }
}

/// Fetches one period: detail, companies, bulk usage (billing + daily) and, for MSSP, the
/// billing totals; writes them into new files of the period's partitions.
async fn fetch_period(
    client: &Client,
    lake: &Lake,
    names: &FileNames,
    rt: &str,
    p: &PeriodSummary,
    ts: String,
    ingested_at: DateTime<Utc>,
) -> Result<(crate::lake::PeriodState, Vec<(Partition, Vec<WrittenFile>)>), IngestError> {
    let base = format!("{rt}-report/{}/{}", p.year, p.period);
    let detail: PeriodDetail = client.get(&base).await?;
    let ctx = PeriodContext {
        report_type: rt.to_string(),
        year: detail.year as i64,
        period: detail.period.clone(),
        from: detail.from,
        to: detail.to,
        is_partial: detail.is_partial,
        ingested_at: ts,
    };
    let part = |d: Dataset| Partition::period(d, rt, ctx.year, &ctx.period);
    let mut written = Vec::new();

    let mut companies = PartitionWriter::new(lake, part(Dataset::Companies), names);
    let mut pages = client.pages::<Company>(&format!("{base}/companies"), MAX_PAGE);
    while let Some(page) = pages.next_page().await? {
        let batch = rows::companies(&ctx, &page.results)
            .map_err(|d| convert(&format!("/v1/{base}/companies"), d))?;
        companies.push(batch).await?;
    }
    written.push(companies.finish().await?);

    let mut billing = PartitionWriter::new(lake, part(Dataset::Billing), names);
    let mut daily = PartitionWriter::new(lake, part(Dataset::DailyUsage), names);
    let mut pages = client.pages::<UsageCompany>(&format!("{base}/usage"), MAX_PAGE);
    while let Some(page) = pages.next_page().await? {
        let (b, d) = rows::usage(&ctx, &page.results)
            .map_err(|d| convert(&format!("/v1/{base}/usage"), d))?;
        billing.push(b).await?;
        daily.push(d).await?;
    }
    written.push(billing.finish().await?);
    written.push(daily.finish().await?);

    if rt == "mssp" {
        let totals: BillingTotals = client.get(&format!("{base}/usage/billing")).await?;
        let batch = rows::totals(&ctx, &totals)
            .map_err(|d| convert(&format!("/v1/{base}/usage/billing"), d))?;
        let mut w = PartitionWriter::new(lake, part(Dataset::BillingTotals), names);
        w.push(batch).await?;
        written.push(w.finish().await?);
    }
    Ok((rows::period_state(rt, &detail, ingested_at), written))
}

/// Why a customer's indicators are missing from this run.
enum CustomerError {
    /// Not accessible or no longer active (403/404): left out with a warning kept in
    /// `sync_runs`.
    Skipped(String),
    /// Anything else ends the run.
    Fatal(IngestError),
}

/// Fetches one customer's engagement and churn risk over `windows`. A 403/404 skips the
/// customer; any other failure ends the run.
async fn fetch_customer(
    client: &Client,
    rt: &str,
    id: &str,
    windows: &[(NaiveDate, NaiveDate)],
    ts: &str,
) -> Result<CustomerData, CustomerError> {
    let (Some(first), Some(last)) = (windows.first(), windows.last()) else {
        return Err(CustomerError::Skipped(format!(
            "customer {id} skipped: no dates to fetch"
        )));
    };
    let result: Result<CustomerData, ApiError> = async {
        let mut data = CustomerData {
            id: id.to_string(),
            range: (first.0, last.1),
            engagement: Vec::new(),
            churn: Vec::new(),
        };
        let encoded = url::form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>();
        for (from, to) in windows {
            let e: Engagement = client
                .get(&format!(
                    "customers/{encoded}/engagement?from={from}&to={to}"
                ))
                .await?;
            let c: ChurnRisk = client
                .get(&format!(
                    "customers/{encoded}/churn-risk?from={from}&to={to}"
                ))
                .await?;
            data.engagement
                .push(
                    rows::engagement(rt, id, &e, ts).map_err(|detail| ApiError::Decode {
                        path: format!("/v1/customers/{encoded}/engagement"),
                        field: "metrics".into(),
                        detail,
                    })?,
                );
            data.churn.push(
                rows::churn(rt, id, &c, ts).map_err(|detail| ApiError::Decode {
                    path: format!("/v1/customers/{encoded}/churn-risk"),
                    field: "indicators".into(),
                    detail,
                })?,
            );
        }
        Ok(data)
    }
    .await;
    match result {
        Ok(data) => Ok(data),
        Err(e @ (ApiError::NotFound { .. } | ApiError::Forbidden { .. })) => Err(
            CustomerError::Skipped(format!("customer {id} skipped: {e}")),
        ),
        Err(e) => Err(CustomerError::Fatal(e.into())),
    }
}

/// Splits a batch with a `month` column into one batch per month.
fn split_by_month(batch: &RecordBatch) -> Vec<(String, RecordBatch)> {
    let Some(col) = batch.column_by_name("month") else {
        return Vec::new();
    };
    let months = col.as_string::<i32>();
    let distinct: BTreeSet<&str> = months.iter().flatten().collect();
    distinct
        .into_iter()
        .map(|m| {
            let mask: BooleanArray = months.iter().map(|v| Some(v == Some(m))).collect();
            let part = filter_record_batch(batch, &mask).expect("mask has the batch's length");
            (m.to_string(), part)
        })
        .collect()
}

/// A customer's re-fetched ranges: `(chunk index, from, to)`.
type Ranges = Vec<(usize, NaiveDate, NaiveDate)>;

/// The date ranges each staged chunk re-fetched, by customer.
struct Refetched(std::collections::HashMap<String, Ranges>);

impl Refetched {
    fn of(chunks: &[&StagedChunk]) -> Refetched {
        let mut map: std::collections::HashMap<String, Ranges> = std::collections::HashMap::new();
        for (j, chunk) in chunks.iter().enumerate() {
            for (id, (from, to)) in &chunk.windows {
                map.entry(id.clone()).or_default().push((j, *from, *to));
            }
        }
        Refetched(map)
    }
}

/// Pushes the rows of the lake file `path` into `writer`, batch by batch, without those a
/// chunk newer than `source` re-fetched (`source`: the staged chunk the file belongs to;
/// `None` for a live file, older than every chunk).
async fn push_file(
    lake: &Lake,
    path: &str,
    writer: &mut PartitionWriter,
    refetched: &Refetched,
    source: Option<usize>,
) -> Result<(), IngestError> {
    for batch in lake_batches(lake, path).await? {
        writer
            .push(drop_refetched(&batch?, refetched, source))
            .await?;
    }
    Ok(())
}

/// The rows of `batch` outside every re-fetched (customer, date range).
fn drop_refetched(
    batch: &RecordBatch,
    refetched: &Refetched,
    source: Option<usize>,
) -> RecordBatch {
    let ids = batch
        .column_by_name("security_center_id")
        .expect("key column")
        .as_string::<i32>();
    let dates = batch
        .column_by_name("date")
        .expect("key column")
        .as_primitive::<Date32Type>();
    // Rows come sorted by customer: look each customer up once, not once per row.
    let mut current: Option<(&str, Option<&Ranges>)> = None;
    let mask: BooleanArray = (0..batch.num_rows())
        .map(|i| {
            let id = ids.value(i);
            let ranges = match current {
                Some((c, ranges)) if c == id => ranges,
                _ => {
                    let ranges = refetched.0.get(id);
                    current = Some((id, ranges));
                    ranges
                }
            };
            let dropped = ranges.is_some_and(|ranges| {
                let date = Date32Type::to_naive_date_opt(dates.value(i));
                ranges.iter().any(|(j, from, to)| {
                    source.is_none_or(|k| *j > k) && date.is_some_and(|d| *from <= d && d <= *to)
                })
            });
            Some(!dropped)
        })
        .collect();
    if mask.true_count() == batch.num_rows() {
        return batch.clone();
    }
    filter_record_batch(batch, &mask).expect("mask has the batch's length")
}

/// The batches of a lake file the manifest lists, read one at a time.
async fn lake_batches(
    lake: &Lake,
    path: &str,
) -> Result<impl Iterator<Item = Result<RecordBatch, IngestError>>, IngestError> {
    let location = format!("{}/{path}", lake.location());
    let corrupt = move |detail: String| LakeError::Corrupt {
        path: location.clone(),
        detail,
    };
    let bytes = lake
        .get(path)
        .await?
        .ok_or_else(|| corrupt("listed in the manifest but missing".into()))?;
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
        .and_then(|b| b.with_batch_size(8_192).build())
        .map_err(|e| corrupt(e.to_string()))?;
    Ok(reader.map(move |b| b.map_err(|e| corrupt(e.to_string()).into())))
}

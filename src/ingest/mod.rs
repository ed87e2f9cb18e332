//! `hspq ingest`: mirrors what the key's scopes allow into the lake, incrementally.
//!
//! A run takes the lake (a [`LakeWriter`]), deletes what killed runs left, then fetches period
//! by period and customer chunk by customer chunk. Each unit is converted to Arrow as its pages
//! arrive, written to new files and committed (a log entry) on its own, so a run killed
//! anywhere loses at most the unit in flight, and the next run does not fetch the finished
//! ones again. Files the run replaced are deleted when it ends. Pacing, retries and sessions
//! live in the API client; layout, files, commits and deletion in the lake; this module decides
//! what to fetch and in what order.
//!
//! Where things live: options, the summary and the entry points here; a run's steps (history,
//! periods, its own row) in [`run`]; customers and their staged merge in [`customers`]; what
//! to fetch in [`plan`] and [`history`]; API answers to Arrow rows in [`rows`].

mod customers;
pub mod history;
pub mod plan;
pub mod progress;
pub mod rows;
mod run;

use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};

use crate::api::models::{Customer, Me, PeriodList, PeriodSummary};
use crate::api::{ApiError, Client, ClientConfig, Credentials, MAX_PAGE};
use crate::config::Config;
use crate::lake::log::Ending;
use crate::lake::{Lake, LakeError, LakeLocation, LakeWriter, Manifest, SyncState, WriterOptions};
use plan::Windows;
use progress::Progress;

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

impl IngestOptions {
    /// What a sync of `config`'s lake needs, with the key pair `creds`.
    pub fn new(config: &Config, creds: Credentials) -> IngestOptions {
        IngestOptions {
            data: config.lake.clone(),
            client: config.api.clone(),
            creds,
            windows: config.sync.windows,
            dry_run: config.sync.dry_run,
            quiet: config.sync.quiet,
            lake: config.sync.lake.clone(),
        }
    }
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
    #[error("converting {endpoint}: {source}; nothing of it was written")]
    Convert {
        /// Which request.
        endpoint: String,
        /// What failed.
        source: crate::lake::RowsError,
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
    if !opts.dry_run {
        // Before the API's sessions: a run holding the lake may hold them all.
        LakeWriter::check_free(&lake).await?;
    }
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
    let mut windows = opts.windows;
    if writer.state_lost() && !windows.full {
        tracing::warn!(
            "the lake's sync state is gone (its newest log entry names a sync object that is \
             not there or unreadable): this sync fetches everything again, as --full does; the \
             lake's files are kept"
        );
        windows.full = true;
    }
    let progress = Progress::new(opts.quiet);
    let mut sync = Sync {
        lake: lake.clone(),
        writer: &writer,
        client: client.clone(),
        run_id: run_id.clone(),
        ingested_at: Utc::now(),
        windows,
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
    let ending = match &outcome {
        Ok(()) => Ending::Finished,
        Err(IngestError::Interrupted) => Ending::Interrupted,
        Err(_) => Ending::Failed,
    };
    let finished = writer.finish(ending).await;
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
        crate::duration::human(Duration::from_secs_f64(seconds)),
        opts.client.rate,
        client.sessions()
    ));
    Ok(IngestSummary {
        report_type: rt.to_string(),
        plan: Some(lines.join("\n")),
        ..IngestSummary::default()
    })
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

fn convert(endpoint: &str, source: crate::lake::RowsError) -> IngestError {
    IngestError::Convert {
        endpoint: endpoint.to_string(),
        source,
    }
}

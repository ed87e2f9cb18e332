//! A sync's steps: history first, then each report type's periods, then its customers, each
//! unit written and committed on its own; and the run's own row in the lake.

use arrow::array::RecordBatch;
use chrono::{DateTime, Utc};
use futures_util::{stream, StreamExt};
use tracing::{info, warn};

use super::rows::{PeriodContext, RunRow};
use crate::api::models::{
    BillingTotals, Company, Me, PeriodDetail, PeriodList, PeriodSummary, UsageCompany,
};
use crate::api::{Client, MAX_PAGE};
use crate::lake::{
    Dataset, FileNames, Lake, LakeError, Manifest, Partition, PartitionWriter, SyncState,
    WrittenFile,
};

use super::{
    convert, history, plan, rows, scopes, update_period_flags, IngestError, IngestSummary, Sync,
};
use crate::lake::read;

impl Sync<'_> {
    pub(super) fn ts(&self) -> String {
        self.ingested_at
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    }

    pub(super) fn tick(&self) {
        let s = self.client.stats();
        self.progress.requests(s.requests, self.planned);
    }

    pub(super) async fn run(&mut self) -> Result<(), IngestError> {
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
            for b in read::batches(&self.lake, &path).await? {
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

    pub(super) fn count(&mut self, written: &[(Partition, Vec<WrittenFile>)]) {
        for (_, files) in written {
            for f in files {
                self.summary.rows_written += f.rows;
                self.summary.bytes_written += f.size;
            }
        }
    }

    /// Writes `batches` as the whole content of `partition` and commits it.
    pub(super) async fn replace(
        &mut self,
        partition: Partition,
        batches: Vec<RecordBatch>,
    ) -> Result<(), IngestError> {
        let written = self.write(partition, batches).await?;
        self.commit(vec![written], |_| {}).await
    }

    /// Writes `batches` into new files of `partition`.
    pub(super) async fn write(
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
    pub(super) async fn commit(
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
    pub(super) async fn record_run(
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
            for batch in read::batches(&self.lake, &path).await? {
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

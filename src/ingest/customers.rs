//! Customers: fetched in chunks, each chunk's engagement and churn staged and committed on its
//! own, then merged with what the lake held (a re-fetched range replaces its old rows).

use std::collections::{BTreeMap, BTreeSet};

use arrow::array::{AsArray, BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use chrono::NaiveDate;
use futures_util::{stream, StreamExt};
use tracing::warn;

use crate::api::models::{ChurnRisk, Customer, Engagement};
use crate::api::{ApiError, Client, MAX_PAGE};
use crate::lake::{
    staged, CustomerState, Dataset, Partition, PartitionWriter, StagedChunk, SyncState,
};

use super::{convert, plan, rows, IngestError, Sync, CUSTOMER_CHUNK};

/// One customer's fetched indicators.
struct CustomerData {
    id: String,
    range: (NaiveDate, NaiveDate),
    engagement: Vec<RecordBatch>,
    churn: Vec<RecordBatch>,
}

impl Sync<'_> {
    pub(super) async fn sync_customers(
        &mut self,
        rt: &str,
        last_day: NaiveDate,
    ) -> Result<(), IngestError> {
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

    /// Merges the staged chunks of `rt` into the live engagement and churn partitions (see
    /// [`crate::lake::staged`]).
    pub(super) async fn merge_staged(&mut self, rt: &str) -> Result<(), IngestError> {
        let progress = &self.progress;
        let written = staged::merge(&self.lake, self.writer, rt, &self.run_id, |chunks| {
            progress.step(&format!(
                "merging {chunks} staged chunk(s) of engagement and churn"
            ))
        })
        .await?;
        self.count(&written);
        Ok(())
    }
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
                        detail: detail.to_string(),
                    })?,
                );
            data.churn.push(
                rows::churn(rt, id, &c, ts).map_err(|detail| ApiError::Decode {
                    path: format!("/v1/customers/{encoded}/churn-risk"),
                    field: "indicators".into(),
                    detail: detail.to_string(),
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

//! One declared Arrow schema per dataset (CONTRACT §3): the writer, the views and the docs all
//! read these, so a column is named and typed in exactly one place.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// How a dataset's files are partitioned (CONTRACT §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Partitioning {
    /// `<dataset>/report_type=R/*.parquet`: a snapshot replaced whole.
    ReportType,
    /// `<dataset>/report_type=R/year=YYYY/period=PP/*.parquet`.
    Period,
    /// `<dataset>/report_type=R/month=YYYY-MM/*.parquet`.
    Month,
    /// `<dataset>/*.parquet`.
    None,
}

/// A dataset of the lake.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dataset {
    /// Reporting periods of a report.
    Periods,
    /// Companies of a period.
    Companies,
    /// Per-company, per-product billing values of a period.
    Billing,
    /// Billing totals per product (MSSP only).
    BillingTotals,
    /// Daily usage rows.
    DailyUsage,
    /// Active customers (snapshot).
    Customers,
    /// One row per continuous presence of a customer in the customer list, kept across syncs.
    CustomerHistory,
    /// Engagement metrics per customer and day.
    Engagement,
    /// Churn indicators per customer, day and indicator.
    Churn,
    /// The key's identity (snapshot, never a key).
    Me,
    /// One row per `hspq ingest` run.
    SyncRuns,
    /// The churn model `hspq churn fit` fitted on the lake's own history, per report type.
    ChurnWeights,
}

/// Rows that do not fit a dataset's schema (an API answer of a shape hspq does not know, a
/// lake file written otherwise).
#[derive(Debug, thiserror::Error)]
pub enum RowsError {
    /// Arrow refused a value or a column.
    #[error("{dataset}: {source}")]
    Arrow {
        /// The dataset.
        dataset: &'static str,
        /// Arrow's error.
        source: arrow::error::ArrowError,
    },
    /// A column is missing or has another type.
    #[error("{dataset} has no {kind} column {column}")]
    Column {
        /// The dataset.
        dataset: &'static str,
        /// The type wanted (`text`, `date`).
        kind: &'static str,
        /// The column.
        column: String,
    },
    /// A value that must be there is not, or cannot be read.
    #[error("{dataset}: {detail}")]
    Value {
        /// The dataset.
        dataset: &'static str,
        /// What is wrong.
        detail: String,
    },
}

impl Dataset {
    /// Every dataset, in lake order.
    pub const ALL: [Dataset; 12] = [
        Dataset::Periods,
        Dataset::Companies,
        Dataset::Billing,
        Dataset::BillingTotals,
        Dataset::DailyUsage,
        Dataset::Customers,
        Dataset::CustomerHistory,
        Dataset::Engagement,
        Dataset::Churn,
        Dataset::Me,
        Dataset::SyncRuns,
        Dataset::ChurnWeights,
    ];

    /// The folder and view name.
    pub fn name(self) -> &'static str {
        match self {
            Dataset::Periods => "periods",
            Dataset::Companies => "companies",
            Dataset::Billing => "billing",
            Dataset::BillingTotals => "billing_totals",
            Dataset::DailyUsage => "daily_usage",
            Dataset::Customers => "customers",
            Dataset::CustomerHistory => "customer_history",
            Dataset::Engagement => "engagement",
            Dataset::Churn => "churn",
            Dataset::Me => "me",
            Dataset::SyncRuns => "sync_runs",
            Dataset::ChurnWeights => "churn_weights",
        }
    }

    /// Parses a folder name.
    pub fn from_name(name: &str) -> Option<Dataset> {
        Dataset::ALL.into_iter().find(|d| d.name() == name)
    }

    /// How its files are laid out.
    pub fn partitioning(self) -> Partitioning {
        match self {
            Dataset::Periods
            | Dataset::Customers
            | Dataset::CustomerHistory
            | Dataset::Me
            | Dataset::ChurnWeights => Partitioning::ReportType,
            Dataset::Companies
            | Dataset::Billing
            | Dataset::BillingTotals
            | Dataset::DailyUsage => Partitioning::Period,
            Dataset::Engagement | Dataset::Churn => Partitioning::Month,
            Dataset::SyncRuns => Partitioning::None,
        }
    }

    /// The columns that identify a row (the view holds one row per key); files are sorted by
    /// them.
    pub fn key(self) -> &'static [&'static str] {
        match self {
            Dataset::Periods => &["report_type", "year", "period"],
            Dataset::Companies => &["report_type", "year", "period", "security_center_id"],
            Dataset::Billing => &[
                "report_type",
                "year",
                "period",
                "security_center_id",
                "product",
            ],
            Dataset::BillingTotals => &["report_type", "year", "period", "product"],
            Dataset::DailyUsage => &[
                "report_type",
                "year",
                "period",
                "security_center_id",
                "product",
                "date",
            ],
            Dataset::Customers => &["report_type", "security_center_id"],
            Dataset::CustomerHistory => &["report_type", "security_center_id", "seen_from"],
            Dataset::Engagement => &["report_type", "security_center_id", "date"],
            Dataset::Churn => &[
                "report_type",
                "security_center_id",
                "indicator",
                "date",
                "product",
            ],
            Dataset::Me => &["report_type", "api_key_prefix"],
            Dataset::SyncRuns => &["run_id"],
            Dataset::ChurnWeights => &["report_type", "components", "component"],
        }
    }

    /// Rows as one batch of the declared schema, each checked against it through arrow-json: a
    /// value that does not fit fails loudly instead of being coerced.
    pub fn batch<T: serde::Serialize>(
        self,
        rows: &[T],
    ) -> Result<arrow::array::RecordBatch, RowsError> {
        let schema = self.schema();
        if rows.is_empty() {
            return Ok(arrow::array::RecordBatch::new_empty(schema));
        }
        let arrow = |source| RowsError::Arrow {
            dataset: self.name(),
            source,
        };
        let mut decoder = arrow::json::ReaderBuilder::new(schema.clone())
            .with_batch_size(rows.len())
            .build_decoder()
            .map_err(arrow)?;
        decoder.serialize(rows).map_err(arrow)?;
        Ok(decoder
            .flush()
            .map_err(arrow)?
            .unwrap_or_else(|| arrow::array::RecordBatch::new_empty(schema)))
    }

    /// The declared schema.
    pub fn schema(self) -> SchemaRef {
        let f = |name: &str, t: DataType| Field::new(name, t, true);
        let key = |name: &str, t: DataType| Field::new(name, t, false);
        let utf8 = || DataType::Utf8;
        let date = || DataType::Date32;
        let i64 = || DataType::Int64;
        let i32 = || DataType::Int32;
        let list = || DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)));
        let ts = || DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        let tail = || vec![f("ingested_at", ts()), f("extra", utf8())];
        let period_keys = || {
            vec![
                key("report_type", utf8()),
                key("year", i64()),
                key("period", utf8()),
            ]
        };
        let mut fields: Vec<Field> = match self {
            Dataset::Periods => {
                let mut v = period_keys();
                v.extend([
                    f("period_from", date()),
                    f("period_to", date()),
                    f("is_current", DataType::Boolean),
                    f("is_partial", DataType::Boolean),
                    f("eligible_company_count", i32()),
                    f("products", list()),
                ]);
                v
            }
            Dataset::Companies => {
                let mut v = period_keys();
                v.extend([
                    key("security_center_id", utf8()),
                    f("company_name", utf8()),
                    f("status", utf8()),
                    f("products", list()),
                ]);
                v
            }
            Dataset::Billing => {
                let mut v = period_keys();
                v.extend([
                    f("period_from", date()),
                    f("period_to", date()),
                    f("is_partial", DataType::Boolean),
                    key("security_center_id", utf8()),
                    f("company_name", utf8()),
                    key("product", utf8()),
                    f("billing_value", i64()),
                    f("billing_date", date()),
                    f("last_scan_date", date()),
                    f("null_reason", utf8()),
                ]);
                v
            }
            Dataset::BillingTotals => {
                let mut v = period_keys();
                v.extend([
                    key("product", utf8()),
                    f("billing_total", i64()),
                    f("company_count", i32()),
                    f("null_company_count", i32()),
                    f("eligible_company_count", i32()),
                ]);
                v
            }
            Dataset::DailyUsage => {
                let mut v = period_keys();
                v.extend([
                    key("security_center_id", utf8()),
                    f("company_name", utf8()),
                    key("product", utf8()),
                    key("date", date()),
                    f("usage_value", i64()),
                ]);
                v
            }
            Dataset::Customers => vec![
                key("report_type", utf8()),
                key("security_center_id", utf8()),
                f("company_name", utf8()),
                f("products", list()),
            ],
            Dataset::CustomerHistory => vec![
                key("report_type", utf8()),
                key("security_center_id", utf8()),
                f("company_name", utf8()),
                key("seen_from", date()),
                f("seen_to", date()),
                f("gone_at", date()),
            ],
            Dataset::Engagement => {
                let mut v = vec![
                    key("report_type", utf8()),
                    key("security_center_id", utf8()),
                    key("date", date()),
                    key("month", utf8()),
                ];
                for m in ENGAGEMENT_METRICS {
                    v.push(f(m, i64()));
                }
                v
            }
            Dataset::Churn => vec![
                key("report_type", utf8()),
                key("security_center_id", utf8()),
                key("indicator", utf8()),
                key("date", date()),
                key("month", utf8()),
                f("product", utf8()),
                f("usage_value", i64()),
                f("total_succeeded", i64()),
                f("total_failed", i64()),
                f("failure_ratio", DataType::Float64),
                f("probes_active", i64()),
                f("probes_inactive", i64()),
                f("has_scans", DataType::Boolean),
                f("has_api_calls", DataType::Boolean),
            ],
            Dataset::Me => vec![
                key("report_type", utf8()),
                f("partner_name", utf8()),
                f("api_key_name", utf8()),
                key("api_key_prefix", utf8()),
                f("scopes", list()),
                f("allowed_origins", list()),
                f("timezone", utf8()),
            ],
            Dataset::SyncRuns => vec![
                key("run_id", utf8()),
                f("report_type", utf8()),
                f("started_at", ts()),
                f("finished_at", ts()),
                f("status", utf8()),
                f("requests", i64()),
                f("retries", i64()),
                f("rate_limited", i64()),
                f("rows_written", i64()),
                f("bytes_written", i64()),
                f("error", utf8()),
                // Skipped customers and other non-fatal problems, one line each.
                f("warnings", list()),
            ],
            Dataset::ChurnWeights => vec![
                key("report_type", utf8()),
                // Which components the model covers, as churn_scores names them.
                key("components", utf8()),
                // A component of churn_scores, or "intercept".
                key("component", utf8()),
                f("weight", DataType::Float64),
                // What it was fitted on: the leavers among the scorings at the cut-offs.
                f("events", i64()),
                f("scorings", i64()),
                f("cutoffs", i32()),
                f("fitted_horizon_days", i32()),
                f("fitted_window_days", i32()),
            ],
        };
        fields.extend(tail());
        Arc::new(Schema::new(fields))
    }
}

/// Engagement metric columns, in the order of the API's arrays.
pub const ENGAGEMENT_METRICS: [&str; 9] = [
    "sns_scans_succeeded",
    "sns_scans_failed",
    "was_scans_succeeded",
    "was_scans_failed",
    "cs_scans_succeeded",
    "cs_scans_failed",
    "probes_active",
    "probes_inactive",
    "api_calls",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_column_is_in_the_schema_and_every_dataset_has_ingested_at_and_extra() {
        for d in Dataset::ALL {
            let schema = d.schema();
            for k in d.key() {
                assert!(schema.field_with_name(k).is_ok(), "{} key {k}", d.name());
            }
            assert!(schema.field_with_name("ingested_at").is_ok());
            assert!(schema.field_with_name("extra").is_ok());
            assert_eq!(Dataset::from_name(d.name()), Some(d));
        }
    }

    #[test]
    fn year_is_bigint_and_period_is_text() {
        let s = Dataset::Billing.schema();
        assert_eq!(
            s.field_with_name("year").unwrap().data_type(),
            &DataType::Int64
        );
        assert_eq!(
            s.field_with_name("period").unwrap().data_type(),
            &DataType::Utf8
        );
    }
}

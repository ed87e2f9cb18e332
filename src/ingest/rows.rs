//! API answers → rows of the lake's datasets → Arrow batches against the declared schemas.
//!
//! Pure functions: one row struct per dataset mirrors its schema (CONTRACT §3), and
//! [`to_batch`] checks every row against that schema through arrow-json, so a value that does
//! not fit fails loudly instead of being coerced. Fields the contract does not name go into
//! `extra` as a JSON object (NULL when there are none); unknown metric or indicator types become
//! rows of their own kind, so nothing the API sends is lost.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::RecordBatch;
use chrono::NaiveDate;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::api::models::{
    BillingTotals, ChurnRisk, Company, Customer, Engagement, Extra, Me, PeriodDetail, UsageCompany,
};
use crate::lake::layout::month_of;
use crate::lake::manifest::PeriodState;
use crate::lake::{Dataset, RowsError};

/// Rows of `rows` as one batch of `dataset`'s schema (see [`Dataset::batch`]).
pub fn to_batch<T: Serialize>(dataset: Dataset, rows: &[T]) -> Result<RecordBatch, RowsError> {
    dataset.batch(rows)
}

/// The unknown fields of a record as a JSON object text, or `None` when there are none.
pub fn extra_json(parts: &[&Extra]) -> Option<String> {
    let mut merged = Map::new();
    for part in parts {
        for (k, v) in part.iter() {
            merged.insert(k.clone(), v.clone());
        }
    }
    (!merged.is_empty()).then(|| Value::Object(merged).to_string())
}

/// What every row of one period's report shares.
#[derive(Clone, Debug)]
pub struct PeriodContext {
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
    /// Incomplete.
    pub is_partial: bool,
    /// The sync's time, RFC 3339.
    pub ingested_at: String,
}

#[derive(Serialize)]
struct PeriodRow<'a> {
    report_type: &'a str,
    year: i64,
    period: &'a str,
    period_from: NaiveDate,
    period_to: NaiveDate,
    is_current: bool,
    is_partial: bool,
    eligible_company_count: Option<i64>,
    products: &'a [String],
    ingested_at: String,
    extra: Option<&'a str>,
}

/// The `periods` rows of a report, from the sync state.
pub fn periods(states: &[&PeriodState]) -> Result<RecordBatch, RowsError> {
    let rows: Vec<PeriodRow> = states
        .iter()
        .map(|p| PeriodRow {
            report_type: &p.report_type,
            year: p.year,
            period: &p.period,
            period_from: p.from,
            period_to: p.to,
            is_current: p.is_current,
            is_partial: p.is_partial,
            eligible_company_count: p.eligible_company_count,
            products: &p.products,
            ingested_at: p
                .ingested_at
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            extra: p.extra.as_deref(),
        })
        .collect();
    to_batch(Dataset::Periods, &rows)
}

/// The sync state of a fetched period.
pub fn period_state(
    report_type: &str,
    d: &PeriodDetail,
    ingested_at: chrono::DateTime<chrono::Utc>,
) -> PeriodState {
    let mut extra = d.extra.clone();
    // Navigation, not data.
    for k in ["links", "timezone", "report_type"] {
        extra.remove(k);
    }
    PeriodState {
        report_type: report_type.to_string(),
        year: d.year as i64,
        period: d.period.clone(),
        from: d.from,
        to: d.to,
        is_current: d.is_current,
        is_partial: d.is_partial,
        eligible_company_count: Some(d.eligible_company_count),
        products: d.products.clone(),
        extra: extra_json(&[&extra]),
        ingested_at,
    }
}

#[derive(Serialize)]
struct CompanyRow<'a> {
    report_type: &'a str,
    year: i64,
    period: &'a str,
    security_center_id: &'a str,
    company_name: &'a str,
    status: Option<&'a str>,
    products: &'a [String],
    ingested_at: &'a str,
    extra: Option<String>,
}

/// `companies` rows of one period.
pub fn companies(ctx: &PeriodContext, list: &[Company]) -> Result<RecordBatch, RowsError> {
    let rows: Vec<CompanyRow> = list
        .iter()
        .map(|c| CompanyRow {
            report_type: &ctx.report_type,
            year: ctx.year,
            period: &ctx.period,
            security_center_id: &c.security_center_id,
            company_name: &c.company_name,
            status: c.status.as_deref().or(c.order_status.as_deref()),
            products: &c.products,
            ingested_at: &ctx.ingested_at,
            extra: extra_json(&[&c.extra]),
        })
        .collect();
    to_batch(Dataset::Companies, &rows)
}

/// `billing` and `daily_usage` rows of a page of the bulk `/usage` answer. A company's own
/// unknown fields go into each of its rows' `extra`.
///
/// The hot path of a sync (one row per company, product and day), so it fills Arrow builders
/// directly instead of going through serde rows like the other datasets: three times faster.
pub fn usage(
    ctx: &PeriodContext,
    page: &[UsageCompany],
) -> Result<(RecordBatch, RecordBatch), RowsError> {
    use arrow::array::{
        ArrayRef, BooleanArray, Date32Array, Date32Builder, Int64Array, Int64Builder, StringArray,
        StringBuilder, TimestampMicrosecondArray,
    };
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
    let day = |d: NaiveDate| (d - epoch).num_days() as i32;
    let ts = chrono::DateTime::parse_from_rfc3339(&ctx.ingested_at)
        .map_err(|e| RowsError::Value {
            dataset: "billing",
            detail: format!("ingested_at {:?}: {e}", ctx.ingested_at),
        })?
        .timestamp_micros();
    let constant = |n: usize| -> (ArrayRef, ArrayRef, ArrayRef, ArrayRef) {
        (
            Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
                ctx.report_type.as_str(),
                n,
            ))),
            Arc::new(Int64Array::from_value(ctx.year, n)),
            Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
                ctx.period.as_str(),
                n,
            ))),
            Arc::new(TimestampMicrosecondArray::from_value(ts, n).with_timezone("UTC")),
        )
    };

    let n_billing: usize = page.iter().map(|c| c.billing.len()).sum();
    let (mut id, mut name, mut product) = (
        StringBuilder::with_capacity(n_billing, n_billing * 10),
        StringBuilder::with_capacity(n_billing, n_billing * 24),
        StringBuilder::with_capacity(n_billing, n_billing * 4),
    );
    let mut value = Int64Builder::with_capacity(n_billing);
    let (mut billing_date, mut last_scan) = (
        Date32Builder::with_capacity(n_billing),
        Date32Builder::with_capacity(n_billing),
    );
    let mut null_reason = StringBuilder::new();
    let mut extra = StringBuilder::new();
    for c in page {
        for b in &c.billing {
            id.append_value(&c.security_center_id);
            name.append_value(&c.company_name);
            product.append_value(&b.product);
            value.append_option(b.billing_value);
            billing_date.append_option(b.billing_date.map(day));
            last_scan.append_option(b.last_scan_date.map(day));
            null_reason.append_option(b.null_reason.as_deref());
            extra.append_option(extra_json(&[&c.extra, &b.extra]));
        }
    }
    let (rt, year, period, ingested) = constant(n_billing);
    let billing = RecordBatch::try_new(
        Dataset::Billing.schema(),
        vec![
            rt,
            year,
            period,
            Arc::new(Date32Array::from_value(day(ctx.from), n_billing)),
            Arc::new(Date32Array::from_value(day(ctx.to), n_billing)),
            Arc::new(BooleanArray::from(vec![ctx.is_partial; n_billing])),
            Arc::new(id.finish()),
            Arc::new(name.finish()),
            Arc::new(product.finish()),
            Arc::new(value.finish()),
            Arc::new(billing_date.finish()),
            Arc::new(last_scan.finish()),
            Arc::new(null_reason.finish()),
            ingested,
            Arc::new(extra.finish()),
        ],
    )
    .map_err(|source| RowsError::Arrow {
        dataset: "billing",
        source,
    })?;

    let n_daily: usize = page.iter().map(|c| c.daily.len()).sum();
    let (mut id, mut name, mut product) = (
        StringBuilder::with_capacity(n_daily, n_daily * 10),
        StringBuilder::with_capacity(n_daily, n_daily * 24),
        StringBuilder::with_capacity(n_daily, n_daily * 4),
    );
    let (mut date, mut value) = (
        Date32Builder::with_capacity(n_daily),
        Int64Builder::with_capacity(n_daily),
    );
    let mut extra = StringBuilder::new();
    for c in page {
        let company_extra = extra_json(&[&c.extra]);
        for d in &c.daily {
            id.append_value(&c.security_center_id);
            name.append_value(&c.company_name);
            product.append_value(&d.product);
            date.append_value(day(d.date));
            value.append_value(d.usage_value);
            if d.extra.is_empty() {
                extra.append_option(company_extra.as_deref());
            } else {
                extra.append_option(extra_json(&[&c.extra, &d.extra]));
            }
        }
    }
    let (rt, year, period, ingested) = constant(n_daily);
    let daily = RecordBatch::try_new(
        Dataset::DailyUsage.schema(),
        vec![
            rt,
            year,
            period,
            Arc::new(id.finish()),
            Arc::new(name.finish()),
            Arc::new(product.finish()),
            Arc::new(date.finish()),
            Arc::new(value.finish()),
            ingested,
            Arc::new(extra.finish()),
        ],
    )
    .map_err(|source| RowsError::Arrow {
        dataset: "daily_usage",
        source,
    })?;
    Ok((billing, daily))
}

#[derive(Serialize)]
struct TotalRow<'a> {
    report_type: &'a str,
    year: i64,
    period: &'a str,
    product: &'a str,
    billing_total: i64,
    company_count: i64,
    null_company_count: i64,
    eligible_company_count: i64,
    ingested_at: &'a str,
    extra: Option<String>,
}

/// `billing_totals` rows of one period.
pub fn totals(ctx: &PeriodContext, t: &BillingTotals) -> Result<RecordBatch, RowsError> {
    let rows: Vec<TotalRow> = t
        .totals
        .iter()
        .map(|x| TotalRow {
            report_type: &ctx.report_type,
            year: ctx.year,
            period: &ctx.period,
            product: &x.product,
            billing_total: x.billing_total,
            company_count: x.company_count,
            null_company_count: x.null_company_count,
            eligible_company_count: t.eligible_company_count,
            ingested_at: &ctx.ingested_at,
            extra: extra_json(&[&x.extra]),
        })
        .collect();
    to_batch(Dataset::BillingTotals, &rows)
}

#[derive(Serialize)]
struct CustomerRow<'a> {
    report_type: &'a str,
    security_center_id: &'a str,
    company_name: &'a str,
    products: &'a [String],
    ingested_at: &'a str,
    extra: Option<String>,
}

/// `customers` rows.
pub fn customers(
    report_type: &str,
    list: &[Customer],
    ingested_at: &str,
) -> Result<RecordBatch, RowsError> {
    let rows: Vec<CustomerRow> = list
        .iter()
        .map(|c| {
            let mut extra = c.extra.clone();
            extra.remove("url");
            CustomerRow {
                report_type,
                security_center_id: &c.security_center_id,
                company_name: &c.company_name,
                products: &c.products,
                ingested_at,
                extra: extra_json(&[&extra]),
            }
        })
        .collect();
    to_batch(Dataset::Customers, &rows)
}

#[derive(Serialize)]
struct PresenceRow<'a> {
    report_type: &'a str,
    security_center_id: &'a str,
    company_name: &'a str,
    seen_from: NaiveDate,
    seen_to: NaiveDate,
    gone_at: Option<NaiveDate>,
    ingested_at: &'a str,
    extra: Option<String>,
}

/// `customer_history` rows of one report type.
pub fn customer_history(
    report_type: &str,
    history: &[super::history::Presence],
    ingested_at: &str,
) -> Result<RecordBatch, RowsError> {
    let rows: Vec<PresenceRow> = history
        .iter()
        .map(|p| PresenceRow {
            report_type,
            security_center_id: &p.security_center_id,
            company_name: &p.company_name,
            seen_from: p.seen_from,
            seen_to: p.seen_to,
            gone_at: p.gone_at,
            ingested_at,
            extra: None,
        })
        .collect();
    to_batch(Dataset::CustomerHistory, &rows)
}

#[derive(Serialize)]
struct MeRow<'a> {
    report_type: &'a str,
    partner_name: &'a str,
    api_key_name: &'a str,
    api_key_prefix: &'a str,
    scopes: &'a [String],
    allowed_origins: &'a [String],
    timezone: Option<&'a str>,
    ingested_at: &'a str,
    extra: Option<String>,
}

/// The `me` row (the organization key was dropped when decoding).
pub fn me(report_type: &str, me: &Me, ingested_at: &str) -> Result<RecordBatch, RowsError> {
    let row = MeRow {
        report_type,
        partner_name: &me.partner_name,
        api_key_name: &me.api_key_name,
        api_key_prefix: &me.api_key_prefix,
        scopes: &me.scopes,
        allowed_origins: &me.allowed_origins,
        timezone: me.timezone.as_deref(),
        ingested_at,
        extra: extra_json(&[&me.extra]),
    };
    to_batch(Dataset::Me, &[row])
}

#[derive(Serialize, Default)]
struct EngagementRow {
    report_type: String,
    security_center_id: String,
    date: Option<NaiveDate>,
    month: String,
    sns_scans_succeeded: Option<i64>,
    sns_scans_failed: Option<i64>,
    was_scans_succeeded: Option<i64>,
    was_scans_failed: Option<i64>,
    cs_scans_succeeded: Option<i64>,
    cs_scans_failed: Option<i64>,
    probes_active: Option<i64>,
    probes_inactive: Option<i64>,
    api_calls: Option<i64>,
    ingested_at: String,
    #[serde(skip)]
    extra_parts: Map<String, Value>,
    extra: Option<String>,
}

/// One column's values, typed: what [`columns_batch`] turns into an Arrow array.
enum Column<'a> {
    Text(Vec<Option<&'a str>>),
    Date(Vec<Option<NaiveDate>>),
    Int(Vec<Option<i64>>),
    Float(Vec<Option<f64>>),
    Bool(Vec<Option<bool>>),
}

/// A batch of `dataset` from named columns, built straight into Arrow arrays (rows of
/// engagement and churn come by the million: no detour through JSON). `ingested_at` is the
/// same for every row.
fn columns_batch(
    dataset: Dataset,
    rows: usize,
    ingested_at: &str,
    mut columns: BTreeMap<&'static str, Column<'_>>,
) -> Result<RecordBatch, RowsError> {
    use arrow::array::{
        ArrayRef, BooleanArray, Date32Array, Float64Array, Int64Array, StringArray,
        TimestampMicrosecondArray,
    };
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
    let ts = chrono::DateTime::parse_from_rfc3339(ingested_at)
        .map_err(|e| RowsError::Value {
            dataset: dataset.name(),
            detail: format!("ingested_at {ingested_at:?}: {e}"),
        })?
        .timestamp_micros();
    let schema = dataset.schema();
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let name = field.name().as_str();
        let array: ArrayRef = match columns.remove(name) {
            _ if name == "ingested_at" => {
                Arc::new(TimestampMicrosecondArray::from_value(ts, rows).with_timezone("UTC"))
            }
            Some(Column::Text(v)) => Arc::new(StringArray::from(v)),
            Some(Column::Date(v)) => Arc::new(Date32Array::from(
                v.into_iter()
                    .map(|d| d.map(|d| (d - epoch).num_days() as i32))
                    .collect::<Vec<_>>(),
            )),
            Some(Column::Int(v)) => Arc::new(Int64Array::from(v)),
            Some(Column::Float(v)) => Arc::new(Float64Array::from(v)),
            Some(Column::Bool(v)) => Arc::new(BooleanArray::from(v)),
            None => {
                return Err(RowsError::Value {
                    dataset: dataset.name(),
                    detail: format!("no values for column {name}"),
                })
            }
        };
        arrays.push(array);
    }
    RecordBatch::try_new(schema, arrays).map_err(|source| RowsError::Arrow {
        dataset: dataset.name(),
        source,
    })
}

/// A dated record of an unknown metric or indicator type: its date and its other fields.
fn dated(v: &Value) -> Option<(NaiveDate, Map<String, Value>)> {
    let obj = v.as_object()?;
    let date = obj.get("date")?.as_str()?.parse().ok()?;
    let mut rest = obj.clone();
    rest.remove("date");
    Some((date, rest))
}

/// `engagement` rows of one customer: one per date any metric array lists; a metric its array
/// did not list for that date stays NULL.
pub fn engagement(
    report_type: &str,
    id: &str,
    e: &Engagement,
    ingested_at: &str,
) -> Result<RecordBatch, RowsError> {
    let mut by_date: BTreeMap<NaiveDate, EngagementRow> = BTreeMap::new();
    let new_row = |date: NaiveDate| EngagementRow {
        report_type: report_type.to_string(),
        security_center_id: id.to_string(),
        date: Some(date),
        month: month_of(date),
        ingested_at: ingested_at.to_string(),
        ..EngagementRow::default()
    };
    macro_rules! row {
        ($date:expr) => {
            by_date.entry($date).or_insert_with(|| new_row($date))
        };
    }
    for s in &e.metrics.scan_activity {
        let r = row!(s.date);
        r.sns_scans_succeeded = s.sns_scans_succeeded;
        r.sns_scans_failed = s.sns_scans_failed;
        r.was_scans_succeeded = s.was_scans_succeeded;
        r.was_scans_failed = s.was_scans_failed;
        r.cs_scans_succeeded = s.cs_scans_succeeded;
        r.cs_scans_failed = s.cs_scans_failed;
        r.extra_parts.extend(s.extra.clone());
    }
    for s in &e.metrics.scanner_health {
        let r = row!(s.date);
        r.probes_active = s.probes_active;
        r.probes_inactive = s.probes_inactive;
        r.extra_parts.extend(s.extra.clone());
    }
    for s in &e.metrics.api_usage {
        let r = row!(s.date);
        r.api_calls = s.api_calls;
        r.extra_parts.extend(s.extra.clone());
    }
    // A metric type the contract does not know: its values go into that date's `extra`.
    for (kind, values) in &e.metrics.extra {
        for (date, rest) in values.as_array().into_iter().flatten().filter_map(dated) {
            row!(date)
                .extra_parts
                .insert(kind.clone(), Value::Object(rest));
        }
    }
    let rows: Vec<EngagementRow> = by_date
        .into_values()
        .map(|mut r| {
            r.extra = extra_json(&[&r.extra_parts]);
            r
        })
        .collect();
    let ints = |f: fn(&EngagementRow) -> Option<i64>| Column::Int(rows.iter().map(f).collect());
    let columns = BTreeMap::from([
        (
            "report_type",
            Column::Text(vec![Some(report_type); rows.len()]),
        ),
        (
            "security_center_id",
            Column::Text(vec![Some(id); rows.len()]),
        ),
        ("date", Column::Date(rows.iter().map(|r| r.date).collect())),
        (
            "month",
            Column::Text(rows.iter().map(|r| Some(r.month.as_str())).collect()),
        ),
        ("sns_scans_succeeded", ints(|r| r.sns_scans_succeeded)),
        ("sns_scans_failed", ints(|r| r.sns_scans_failed)),
        ("was_scans_succeeded", ints(|r| r.was_scans_succeeded)),
        ("was_scans_failed", ints(|r| r.was_scans_failed)),
        ("cs_scans_succeeded", ints(|r| r.cs_scans_succeeded)),
        ("cs_scans_failed", ints(|r| r.cs_scans_failed)),
        ("probes_active", ints(|r| r.probes_active)),
        ("probes_inactive", ints(|r| r.probes_inactive)),
        ("api_calls", ints(|r| r.api_calls)),
        (
            "extra",
            Column::Text(rows.iter().map(|r| r.extra.as_deref()).collect()),
        ),
    ]);
    columns_batch(Dataset::Engagement, rows.len(), ingested_at, columns)
}

#[derive(Serialize, Default)]
struct ChurnRow<'a> {
    report_type: &'a str,
    security_center_id: &'a str,
    indicator: &'a str,
    date: Option<NaiveDate>,
    month: String,
    product: Option<&'a str>,
    usage_value: Option<i64>,
    total_succeeded: Option<i64>,
    total_failed: Option<i64>,
    failure_ratio: Option<f64>,
    probes_active: Option<i64>,
    probes_inactive: Option<i64>,
    has_scans: Option<bool>,
    has_api_calls: Option<bool>,
    ingested_at: &'a str,
    extra: Option<String>,
}

/// `churn` rows of one customer: one per indicator entry.
pub fn churn(
    report_type: &str,
    id: &str,
    c: &ChurnRisk,
    ingested_at: &str,
) -> Result<RecordBatch, RowsError> {
    let base = |indicator: &'static str, date: NaiveDate| ChurnRow {
        report_type,
        security_center_id: id,
        indicator,
        date: Some(date),
        month: month_of(date),
        ingested_at,
        ..ChurnRow::default()
    };
    let i = &c.indicators;
    let mut rows = Vec::new();
    for u in &i.usage_trend {
        rows.push(ChurnRow {
            product: Some(&u.product),
            usage_value: u.usage_value,
            extra: extra_json(&[&u.extra]),
            ..base("usage_trend", u.date)
        });
    }
    for s in &i.scan_failures {
        rows.push(ChurnRow {
            total_succeeded: s.total_succeeded,
            total_failed: s.total_failed,
            failure_ratio: s.failure_ratio,
            extra: extra_json(&[&s.extra]),
            ..base("scan_failures", s.date)
        });
    }
    for s in &i.inactive_scanners {
        rows.push(ChurnRow {
            probes_active: s.probes_active,
            probes_inactive: s.probes_inactive,
            extra: extra_json(&[&s.extra]),
            ..base("inactive_scanners", s.date)
        });
    }
    for z in &i.zero_activity {
        rows.push(ChurnRow {
            has_scans: z.has_scans,
            has_api_calls: z.has_api_calls,
            extra: extra_json(&[&z.extra]),
            ..base("zero_activity", z.date)
        });
    }
    // An indicator type the contract does not know becomes rows of that indicator.
    for (kind, values) in &i.extra {
        for (date, rest) in values.as_array().into_iter().flatten().filter_map(dated) {
            rows.push(ChurnRow {
                indicator: kind.as_str(),
                extra: extra_json(&[&rest]),
                ..base("", date)
            });
        }
    }
    let ints = |f: fn(&ChurnRow) -> Option<i64>| Column::Int(rows.iter().map(f).collect());
    let columns = BTreeMap::from([
        (
            "report_type",
            Column::Text(vec![Some(report_type); rows.len()]),
        ),
        (
            "security_center_id",
            Column::Text(vec![Some(id); rows.len()]),
        ),
        (
            "indicator",
            Column::Text(rows.iter().map(|r| Some(r.indicator)).collect()),
        ),
        ("date", Column::Date(rows.iter().map(|r| r.date).collect())),
        (
            "month",
            Column::Text(rows.iter().map(|r| Some(r.month.as_str())).collect()),
        ),
        (
            "product",
            Column::Text(rows.iter().map(|r| r.product).collect()),
        ),
        ("usage_value", ints(|r| r.usage_value)),
        ("total_succeeded", ints(|r| r.total_succeeded)),
        ("total_failed", ints(|r| r.total_failed)),
        (
            "failure_ratio",
            Column::Float(rows.iter().map(|r| r.failure_ratio).collect()),
        ),
        ("probes_active", ints(|r| r.probes_active)),
        ("probes_inactive", ints(|r| r.probes_inactive)),
        (
            "has_scans",
            Column::Bool(rows.iter().map(|r| r.has_scans).collect()),
        ),
        (
            "has_api_calls",
            Column::Bool(rows.iter().map(|r| r.has_api_calls).collect()),
        ),
        (
            "extra",
            Column::Text(rows.iter().map(|r| r.extra.as_deref()).collect()),
        ),
    ]);
    columns_batch(Dataset::Churn, rows.len(), ingested_at, columns)
}

/// One `sync_runs` row.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct RunRow {
    /// The run.
    pub run_id: String,
    /// `mssp` or `reseller`, once known.
    pub report_type: Option<String>,
    /// RFC 3339.
    pub started_at: String,
    /// RFC 3339, when finished.
    pub finished_at: Option<String>,
    /// running, succeeded, failed, interrupted.
    pub status: String,
    /// Requests sent.
    pub requests: i64,
    /// Retries.
    pub retries: i64,
    /// 429s seen.
    pub rate_limited: i64,
    /// Rows written.
    pub rows_written: i64,
    /// Bytes written.
    pub bytes_written: i64,
    /// Why it failed.
    pub error: Option<String>,
    /// Skipped customers and other non-fatal problems.
    pub warnings: Vec<String>,
    /// RFC 3339.
    pub ingested_at: String,
    /// Always NULL: the row is hspq's own.
    pub extra: Option<String>,
}

/// The `sync_runs` row of one run.
pub fn sync_run(row: &RunRow) -> Result<RecordBatch, RowsError> {
    to_batch(Dataset::SyncRuns, std::slice::from_ref(row))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::Int64Type;

    fn ctx() -> PeriodContext {
        PeriodContext {
            report_type: "mssp".into(),
            year: 2026,
            period: "02".into(),
            from: "2026-01-26".parse().unwrap(),
            to: "2026-02-25".parse().unwrap(),
            is_partial: false,
            ingested_at: "2026-03-12T10:00:00.000000Z".into(),
        }
    }

    #[test]
    fn usage_keeps_nulls_and_unknown_fields() {
        let page: Vec<UsageCompany> = serde_json::from_str(
            r#"[{"security_center_id":"SE-1","company_name":"Å, \"B\"","tier":"gold",
                "billing":[{"product":"SNS","billing_value":null,"billing_date":null,"last_scan_date":null,
                            "null_reason":"product_not_enabled_for_company"},
                           {"product":"WAS","billing_value":5,"billing_date":"2026-02-01","last_scan_date":"2026-02-03","x":1}],
                "daily":[{"product":"WAS","date":"2026-01-26","usage_value":4}]}]"#,
        )
        .unwrap();
        let (billing, daily) = usage(&ctx(), &page).unwrap();
        assert_eq!(billing.num_rows(), 2);
        let values = billing
            .column_by_name("billing_value")
            .unwrap()
            .as_primitive::<Int64Type>();
        assert!(values.is_null(0));
        assert_eq!(values.value(1), 5);
        let extra = billing.column_by_name("extra").unwrap().as_string::<i32>();
        assert_eq!(extra.value(0), r#"{"tier":"gold"}"#);
        assert_eq!(extra.value(1), r#"{"tier":"gold","x":1}"#);
        assert_eq!(daily.num_rows(), 1);
        assert_eq!(daily.schema(), Dataset::DailyUsage.schema());
    }

    #[test]
    fn engagement_rows_cover_every_listed_date_with_nulls_for_unlisted_metrics() {
        let e: Engagement = serde_json::from_str(
            r#"{"from":"2026-02-01","to":"2026-02-03","metrics":{
                "scan_activity":[{"date":"2026-02-01","sns_scans_succeeded":3,"sns_scans_failed":0,
                   "was_scans_succeeded":0,"was_scans_failed":0,"cs_scans_succeeded":0,"cs_scans_failed":0}],
                "api_usage":[{"date":"2026-02-02","api_calls":7}],
                "new_metric":[{"date":"2026-02-03","value":9}]}}"#,
        )
        .unwrap();
        let b = engagement("mssp", "SE-1", &e, "2026-03-12T10:00:00Z").unwrap();
        assert_eq!(b.num_rows(), 3);
        let api = b
            .column_by_name("api_calls")
            .unwrap()
            .as_primitive::<Int64Type>();
        assert!(api.is_null(0) && api.value(1) == 7 && api.is_null(2));
        let extra = b.column_by_name("extra").unwrap().as_string::<i32>();
        assert_eq!(extra.value(2), r#"{"new_metric":{"value":9}}"#);
        assert_eq!(
            b.column_by_name("month")
                .unwrap()
                .as_string::<i32>()
                .value(0),
            "2026-02"
        );
    }

    #[test]
    fn churn_rows_one_per_entry_with_product_only_for_usage_trend() {
        let c: ChurnRisk = serde_json::from_str(
            r#"{"from":"2026-02-01","to":"2026-02-03","indicators":{
                "usage_trend":[{"product":"SNS","date":"2026-02-01","usage_value":88}],
                "scan_failures":[{"date":"2026-02-01","total_succeeded":20,"total_failed":3,"failure_ratio":0.13}],
                "zero_activity":[{"date":"2026-02-02","has_scans":false,"has_api_calls":true}],
                "brand_new":[{"date":"2026-02-03","score":1}]}}"#,
        )
        .unwrap();
        let b = churn("mssp", "SE-1", &c, "2026-03-12T10:00:00Z").unwrap();
        assert_eq!(b.num_rows(), 4);
        let product = b.column_by_name("product").unwrap().as_string::<i32>();
        assert_eq!(product.value(0), "SNS");
        assert!(product.is_null(1) && product.is_null(2));
        let indicator = b.column_by_name("indicator").unwrap().as_string::<i32>();
        assert_eq!(indicator.value(3), "brand_new");
    }

    #[test]
    fn a_value_that_does_not_fit_the_schema_is_an_error() {
        #[derive(Serialize)]
        struct Bad {
            report_type: &'static str,
            security_center_id: Option<&'static str>,
        }
        let err = to_batch(
            Dataset::Customers,
            &[Bad {
                report_type: "mssp",
                security_center_id: None,
            }],
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                RowsError::Arrow {
                    dataset: "customers",
                    ..
                }
            ),
            "{err}"
        );
    }
}

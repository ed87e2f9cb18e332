//! Typed answers of the Partner Portal API, written from the vendor docs.
//!
//! Every record keeps the fields it does not name in `extra`, so a field the API adds later is
//! never lost (CONTRACT §3). A named field of another type than documented fails decoding with
//! its path (see [`super::ApiError::Decode`]).

use chrono::NaiveDate;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use super::secret::Secret;

/// Unknown fields of a record.
pub type Extra = Map<String, Value>;

/// `POST /v1/auth/session` → 201.
#[derive(Debug, Deserialize)]
pub struct SessionCreated {
    /// `pps_...`.
    pub session_token: Secret,
    /// Lifetime in seconds.
    pub valid_for_seconds: Option<u64>,
    /// Scopes of the session.
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// A paged list: `count`, `next`, `previous`, `results`, plus whatever else the answer holds
/// (`reporting_period`, `eligible_company_count`, ...).
#[derive(Debug, Deserialize)]
pub struct Page<T> {
    /// Records in the whole list.
    pub count: u64,
    /// `None`: the answer has no `next` field (page on by offset); `Some(None)`: last page.
    #[serde(default, deserialize_with = "present")]
    pub next: Option<Option<String>>,
    /// The previous page's link.
    #[serde(default, deserialize_with = "present")]
    pub previous: Option<Option<String>>,
    /// This page's records.
    pub results: Vec<T>,
    /// The rest of the answer.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Tells a missing field (`None`) from an explicit `null` (`Some(None)`).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// `GET /v1/me`. The organization key it returns is dropped on purpose: it is half of the
/// credential pair and must never be stored.
#[derive(Debug, Deserialize)]
pub struct Me {
    /// The partner's name.
    pub partner_name: String,
    /// The key's label.
    pub api_key_name: String,
    /// The key's public prefix.
    pub api_key_prefix: String,
    /// Scopes of the key.
    pub scopes: Vec<String>,
    /// Allowed origins of the key.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// `Europe/Stockholm`.
    pub timezone: Option<String>,
    /// Unknown fields (the organization key is removed).
    #[serde(flatten, deserialize_with = "without_org_key")]
    pub extra: Extra,
}

fn without_org_key<'de, D: Deserializer<'de>>(d: D) -> Result<Extra, D::Error> {
    let mut m = Extra::deserialize(d)?;
    m.remove("organization_key");
    Ok(m)
}

/// `GET /v1/{report}`.
#[derive(Debug, Deserialize)]
pub struct PeriodList {
    /// `Europe/Stockholm`.
    pub timezone: Option<String>,
    /// The periods, in no promised order.
    pub results: Vec<PeriodSummary>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One period of a report's list.
#[derive(Clone, Debug, Deserialize)]
pub struct PeriodSummary {
    /// Label year.
    pub year: i32,
    /// Label month, `"02"`.
    pub period: String,
    /// First day.
    pub from: NaiveDate,
    /// Last reported day.
    pub to: NaiveDate,
    /// Holds the last report day.
    pub is_current: bool,
    /// Not complete yet.
    pub is_partial: bool,
    /// Unknown fields (`url` included).
    #[serde(flatten)]
    pub extra: Extra,
}

/// `GET /v1/{report}/{y}/{p}`.
#[derive(Clone, Debug, Deserialize)]
pub struct PeriodDetail {
    /// Label year.
    pub year: i32,
    /// Label month.
    pub period: String,
    /// First day.
    pub from: NaiveDate,
    /// Last reported day.
    pub to: NaiveDate,
    /// Holds the last report day.
    pub is_current: bool,
    /// Not complete yet.
    pub is_partial: bool,
    /// Companies in the report.
    pub eligible_company_count: i64,
    /// Products in the report.
    #[serde(default)]
    pub products: Vec<String>,
    /// Unknown fields (`links`, `timezone` included).
    #[serde(flatten)]
    pub extra: Extra,
}

/// A company of a period's `companies` list.
#[derive(Clone, Debug, Deserialize)]
pub struct Company {
    /// `SE-ARN1001`.
    pub security_center_id: String,
    /// Display name.
    pub company_name: String,
    /// MSSP `status`.
    pub status: Option<String>,
    /// Reseller `order_status`.
    pub order_status: Option<String>,
    /// Enabled products.
    #[serde(default)]
    pub products: Vec<String>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Defines a record decoded by hand rather than with `#[serde(flatten)]`: flatten makes serde
/// buffer every record (and everything inside it) before decoding it again, which halved the
/// conversion speed of the bulk `/usage` pages. Unknown keys still land in `extra`.
macro_rules! record {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$fmeta:meta])* $kind:ident $field:ident : $ty:ty, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: record!(@type $kind $ty), )*
            /// Unknown fields.
            pub extra: Extra,
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> serde::de::Visitor<'de> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str(concat!("a ", stringify!($name), " object"))
                    }
                    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<$name, A::Error> {
                        $( let mut $field: Option<record!(@type $kind $ty)> = None; )*
                        let mut extra = Extra::new();
                        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                            match key.as_ref() {
                                $( stringify!($field) => $field = Some(map.next_value()?), )*
                                _ => {
                                    let value: Value = map.next_value()?;
                                    extra.insert(key.into_owned(), value);
                                }
                            }
                        }
                        Ok($name {
                            $( $field: record!(@finish $kind $field), )*
                            extra,
                        })
                    }
                }
                d.deserialize_map(V)
            }
        }
    };
    (@type req $ty:ty) => { $ty };
    (@type opt $ty:ty) => { Option<$ty> };
    (@type list $ty:ty) => { Vec<$ty> };
    (@finish req $field:ident) => { $field.ok_or_else(|| serde::de::Error::missing_field(stringify!($field)))? };
    (@finish opt $field:ident) => { $field.flatten() };
    (@finish list $field:ident) => { $field.unwrap_or_default() };
}

record! {
    /// A per-product billing value.
    pub struct BillingEntry {
        /// Product code.
        req product: String,
        /// The value; null when the product is not enabled.
        opt billing_value: i64,
        /// When the value was reached.
        opt billing_date: NaiveDate,
        /// Last scan in the period.
        opt last_scan_date: NaiveDate,
        /// Why the value is null.
        opt null_reason: String,
    }
}

record! {
    /// One day of one product's usage.
    pub struct DailyRow {
        /// Product code.
        req product: String,
        /// The day.
        req date: NaiveDate,
        /// Usage that day.
        req usage_value: i64,
    }
}

record! {
    /// A company of the bulk `/usage` answer: billing and daily rows together.
    pub struct UsageCompany {
        /// `SE-ARN1001`.
        req security_center_id: String,
        /// Display name.
        req company_name: String,
        /// Billing values.
        list billing: BillingEntry,
        /// Daily rows.
        list daily: DailyRow,
    }
}

/// A product total of `/usage/billing`.
#[derive(Clone, Debug, Deserialize)]
pub struct BillingTotal {
    /// Product code.
    pub product: String,
    /// Sum of the per-company values.
    pub billing_total: i64,
    /// Companies with a value.
    pub company_count: i64,
    /// Companies with a null value.
    pub null_company_count: i64,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `/usage/billing` with `group_by=product`.
#[derive(Clone, Debug, Deserialize)]
pub struct BillingTotals {
    /// Companies in the report.
    pub eligible_company_count: i64,
    /// Totals per product.
    pub totals: Vec<BillingTotal>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A customer of `/v1/customers`.
#[derive(Clone, Debug, Deserialize)]
pub struct Customer {
    /// `SE-ARN1001`.
    pub security_center_id: String,
    /// Display name.
    pub company_name: String,
    /// Enabled products.
    #[serde(default)]
    pub products: Vec<String>,
    /// Unknown fields (`url` included).
    #[serde(flatten)]
    pub extra: Extra,
}

/// `/v1/customers/{id}/engagement`.
#[derive(Clone, Debug, Deserialize)]
pub struct Engagement {
    /// Effective range start.
    pub from: NaiveDate,
    /// Effective range end.
    pub to: NaiveDate,
    /// Metric arrays by type; each lists only days with non-zero data.
    pub metrics: EngagementMetrics,
    /// Unknown fields (`company` included).
    #[serde(flatten)]
    pub extra: Extra,
}

/// The metric arrays.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct EngagementMetrics {
    /// Scans per product.
    #[serde(default)]
    pub scan_activity: Vec<ScanActivity>,
    /// Scanner states.
    #[serde(default)]
    pub scanner_health: Vec<ScannerHealth>,
    /// API calls.
    #[serde(default)]
    pub api_usage: Vec<ApiUsage>,
    /// Unknown metric types.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One day of scans.
#[derive(Clone, Debug, Deserialize)]
#[allow(missing_docs)]
pub struct ScanActivity {
    pub date: NaiveDate,
    pub sns_scans_succeeded: Option<i64>,
    pub sns_scans_failed: Option<i64>,
    pub was_scans_succeeded: Option<i64>,
    pub was_scans_failed: Option<i64>,
    pub cs_scans_succeeded: Option<i64>,
    pub cs_scans_failed: Option<i64>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// One day of scanner health.
#[derive(Clone, Debug, Deserialize)]
#[allow(missing_docs)]
pub struct ScannerHealth {
    pub date: NaiveDate,
    pub probes_active: Option<i64>,
    pub probes_inactive: Option<i64>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// One day of API calls.
#[derive(Clone, Debug, Deserialize)]
#[allow(missing_docs)]
pub struct ApiUsage {
    pub date: NaiveDate,
    pub api_calls: Option<i64>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `/v1/customers/{id}/churn-risk`.
#[derive(Clone, Debug, Deserialize)]
pub struct ChurnRisk {
    /// Effective range start.
    pub from: NaiveDate,
    /// Effective range end.
    pub to: NaiveDate,
    /// Indicator arrays by type.
    pub indicators: ChurnIndicators,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The indicator arrays.
#[derive(Clone, Debug, Default, Deserialize)]
#[allow(missing_docs)]
pub struct ChurnIndicators {
    #[serde(default)]
    pub usage_trend: Vec<UsageTrend>,
    #[serde(default)]
    pub scan_failures: Vec<ScanFailures>,
    #[serde(default)]
    pub inactive_scanners: Vec<ScannerHealth>,
    #[serde(default)]
    pub zero_activity: Vec<ZeroActivity>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// One day of one product's usage, as a churn indicator.
#[derive(Clone, Debug, Deserialize)]
#[allow(missing_docs)]
pub struct UsageTrend {
    pub product: String,
    pub date: NaiveDate,
    pub usage_value: Option<i64>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// One day of scan outcomes.
#[derive(Clone, Debug, Deserialize)]
#[allow(missing_docs)]
pub struct ScanFailures {
    pub date: NaiveDate,
    pub total_succeeded: Option<i64>,
    pub total_failed: Option<i64>,
    pub failure_ratio: Option<f64>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// A day with no scans or no API calls.
#[derive(Clone, Debug, Deserialize)]
#[allow(missing_docs)]
pub struct ZeroActivity {
    pub date: NaiveDate,
    pub has_scans: Option<bool>,
    pub has_api_calls: Option<bool>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_are_kept_and_the_org_key_is_dropped() {
        let me: Me = serde_json::from_str(
            r#"{"partner_name":"P","organization_key":"hsp_org_x","api_key_name":"n",
                "api_key_prefix":"hsp_a1b2c3d4","scopes":["me:read"],"allowed_origins":[],
                "timezone":"Europe/Stockholm","new_field":{"a":1}}"#,
        )
        .unwrap();
        assert!(!me.extra.contains_key("organization_key"));
        assert_eq!(me.extra["new_field"]["a"], 1);
    }

    #[test]
    fn a_missing_next_differs_from_a_null_next() {
        let with: Page<Value> =
            serde_json::from_str(r#"{"count":1,"next":null,"results":[]}"#).unwrap();
        let without: Page<Value> = serde_json::from_str(r#"{"count":1,"results":[]}"#).unwrap();
        assert_eq!(with.next, Some(None));
        assert_eq!(without.next, None);
    }
}

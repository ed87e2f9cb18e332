//! What the simulated world is made of: partnerships, companies and their warning signs,
//! periods, billing entries, daily usage and engagement. [`super::world`] derives them.

use chrono::NaiveDate;
use serde::Serialize;

/// Product codes in the order the API lists them.
pub const PRODUCTS: [&str; 5] = ["CS", "DA", "PAT", "SNS", "WAS"];

/// Which partnership (and so which report) data belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Partnership {
    /// MSSP: periods configured per organisation (26th → 25th here), per-period eligibility.
    Mssp,
    /// Reseller: calendar months, companies with an active order today.
    Reseller,
}

impl Partnership {
    /// The URL segment and `report_type` value.
    pub fn report_type(self) -> &'static str {
        match self {
            Partnership::Mssp => "mssp",
            Partnership::Reseller => "reseller",
        }
    }

    /// The scope a key of this partnership carries.
    pub fn scope(self) -> &'static str {
        match self {
            Partnership::Mssp => "mssp-report:read",
            Partnership::Reseller => "reseller-report:read",
        }
    }

    pub(super) fn salt(self) -> u64 {
        match self {
            Partnership::Mssp => 0x6d73_7370,
            Partnership::Reseller => 0x7265_7365,
        }
    }
}

/// How a company behaves over time; drives the churn signals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// Steady usage and clean scans.
    Healthy,
    /// Usage falls linearly to 30% from `since`.
    Declining,
    /// A high share of scans fail.
    FailingScans,
    /// Some scanners (probes) stop reporting.
    InactiveScanners,
    /// Scans, API calls and usage stop after `since`.
    Dormant,
    /// Products are given up one by one from `since`, the one used most last (their usage
    /// stops, and their billing with it); the rest stay as they were.
    DroppingProducts,
}

/// One company of a partnership.
#[derive(Clone, Debug)]
pub struct Company {
    /// Position in the partnership's list; feeds the hashes.
    pub idx: u64,
    /// `security_center_id`, e.g. `SE-ARN1001`.
    pub id: String,
    /// `company_name`, sometimes with non-ASCII letters, commas or quotes.
    pub name: String,
    /// Enabled products, sorted by code.
    pub products: Vec<&'static str>,
    /// First day of activity.
    pub active_from: NaiveDate,
    /// First day no longer active (archived, or the reseller order ended); `None` = active.
    pub inactive_from: Option<NaiveDate>,
    /// Behaviour over time.
    pub profile: Profile,
    /// When a `Declining` or `Dormant` profile starts to show.
    pub since: NaiveDate,
    /// A pause (a suspension, a seasonal stop): inactive from the first day to before the
    /// second, then active again; `None` for most (see [`World::with_pauses`]).
    pub paused: Option<(NaiveDate, NaiveDate)>,
}

impl Company {
    /// Whether the company is active on `day`.
    pub fn active_on(&self, day: NaiveDate) -> bool {
        self.active_from <= day
            && self.inactive_from.is_none_or(|end| day < end)
            && self.paused.is_none_or(|(from, to)| day < from || day >= to)
    }

    /// Whether the company is active on some day of the range `[from, to]`.
    pub fn active_during(&self, from: NaiveDate, to: NaiveDate) -> bool {
        let during = |a: NaiveDate, b: Option<NaiveDate>| a <= to && b.is_none_or(|end| end > from);
        match self.paused {
            None => during(self.active_from, self.inactive_from),
            Some((stop, back)) => {
                (self.active_from < stop && during(self.active_from, Some(stop)))
                    || (self.inactive_from.is_none_or(|end| back < end)
                        && during(back.max(self.active_from), self.inactive_from))
            }
        }
    }

    /// Whether the company has `product` enabled.
    pub fn has(&self, product: &str) -> bool {
        self.products.contains(&product)
    }
}

/// A reporting period as the API describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Period {
    /// Year of the period label.
    pub year: i32,
    /// Month of the period label, 1..=12 (`"02"` on the wire).
    pub month: u32,
    /// First day.
    pub from: NaiveDate,
    /// Last day reported: the period's end, or T−2 for the current period.
    pub to: NaiveDate,
    /// The period's full end.
    pub end: NaiveDate,
    /// Holds the last report day (T−2).
    pub is_current: bool,
    /// Not all of its days are reported yet.
    pub is_partial: bool,
}

impl Period {
    /// The two-digit label, `"02"`.
    pub fn label(&self) -> String {
        format!("{:02}", self.month)
    }

    /// Every reported day, `from..=to`.
    pub fn days(&self) -> impl Iterator<Item = NaiveDate> + '_ {
        self.from.iter_days().take_while(move |d| *d <= self.to)
    }
}

/// One per-product billing value of a company in a period.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BillingEntry {
    /// Product code.
    pub product: &'static str,
    /// Peak daily usage in the period; `None` when the product is not enabled.
    pub billing_value: Option<u64>,
    /// First day the peak was reached; `None` when there was no usage.
    pub billing_date: Option<NaiveDate>,
    /// Last day with a scan of this product in the period (always `None` for DA).
    pub last_scan_date: Option<NaiveDate>,
    /// Only on null values: why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub null_reason: Option<&'static str>,
}

/// One day of one product's usage.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DailyRow {
    /// Product code.
    pub product: &'static str,
    /// The day.
    pub date: NaiveDate,
    /// Usage that day (may be 0).
    pub usage_value: u64,
}

/// One day of engagement metrics (all zero when the company did nothing).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Engagement {
    /// System & Network Security scans that succeeded.
    pub sns_scans_succeeded: u64,
    /// ... that failed.
    pub sns_scans_failed: u64,
    /// Web Application Security scans that succeeded.
    pub was_scans_succeeded: u64,
    /// ... that failed.
    pub was_scans_failed: u64,
    /// Cloud Security scans that succeeded.
    pub cs_scans_succeeded: u64,
    /// ... that failed.
    pub cs_scans_failed: u64,
    /// Scanners reporting.
    pub probes_active: u64,
    /// Scanners not reporting.
    pub probes_inactive: u64,
    /// API calls made.
    pub api_calls: u64,
}

impl Engagement {
    /// All scans that succeeded.
    pub fn succeeded(&self) -> u64 {
        self.sns_scans_succeeded + self.was_scans_succeeded + self.cs_scans_succeeded
    }

    /// All scans that failed.
    pub fn failed(&self) -> u64 {
        self.sns_scans_failed + self.was_scans_failed + self.cs_scans_failed
    }

    /// Whether `scan_activity` lists the day.
    pub fn has_scan_activity(&self) -> bool {
        self.succeeded() + self.failed() > 0
    }

    /// Whether `scanner_health` lists the day.
    pub fn has_scanner_health(&self) -> bool {
        self.probes_active + self.probes_inactive > 0
    }
}

//! The simulator's synthetic partner data: companies, periods, usage, billing, engagement and
//! churn indicators, all derived from a seed by pure functions.
//!
//! Nothing is stored per day: every value is a hash of (seed, company, product, day), so a world
//! of 10,000 companies costs a few megabytes and any request is answered in time proportional to
//! its own size. Tests compare a lake with these same functions, so they are public.
//!
//! Internal consistency (issue #2):
//! - billing totals are the sum of the per-company billing values of the eligible companies;
//! - a company's MSSP/reseller billing value for a product is the peak of its daily usage in the
//!   period (so the daily arrays and the billing values agree);
//! - churn indicators are computed from the same engagement and daily usage the other endpoints
//!   return (`usage_trend` = daily usage, `scan_failures` = engagement scans, ...).
//!
//! Awkward but legal values on purpose: non-ASCII names, commas and quotes in names, null
//! billing values (product filter on a company without the product), DA without scan dates,
//! companies that joined mid-history or were archived, reseller months re-derived from today's
//! active orders, days with zero usage.
//!
//! Churn, with real pre-churn behaviour: customers leave at about `LEAVE_RATE` (15 %) a year
//! from the day they became customers; 75 % of leavers show a warning sign ([`Profile`]: usage
//! falling to 30 %, dormancy, failing scans, or inactive scanners) from 3 to 17 weeks before
//! they leave, the rest leave without one (failing scans and inactive scanners lower usage too:
//! what a failed scan or a silent scanner would have found is not counted); and 15 % of the companies that do not leave (then)
//! show a sign from some day on and stay, so most companies with a sign at any moment are not
//! about to leave. The simulator knows nothing of hspq's churn score, and the score must not be
//! tuned to these numbers: the demo world is one seed of many.

use chrono::{Datelike, Days, Months, NaiveDate};

pub use super::entities::{
    BillingEntry, Company, DailyRow, Engagement, Partnership, Period, Profile, PRODUCTS,
};

/// Where company timelines start (see `World::make_companies`).
fn timeline_origin() -> NaiveDate {
    NaiveDate::from_ymd_opt(2023, 1, 1).expect("valid date")
}

/// How many days company timelines span from the origin (about six years).
const TIMELINE_DAYS: u64 = 2200;

/// Share of the customers that leave in a year.
const LEAVE_RATE: f64 = 0.15;

/// Share of the leavers that show a warning sign (declining usage, dormancy, failing scans,
/// inactive scanners) in the 3 to 17 weeks before they leave.
const WARNED_LEAVERS: f64 = 0.75;

/// Share of the other companies that show a warning sign from some day on and stay.
const STAYERS_WITH_SIGNS: f64 = 0.15;

/// How many months of history the world holds before today.
pub const HISTORY_MONTHS: u32 = 24;

/// How a world's companies use their products over time, and how its leavers show it. The
/// churn benchmark scores hspq on every kind, so that its churn score is not tuned to one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Mechanics {
    /// Steady usage; most leavers fade first (usage declining or stopping, failing scans,
    /// silent scanners) and some companies with such a sign stay.
    #[default]
    Fading,
    /// Steady usage until a leaver's last day: no leaver shows a sign first (no score can beat
    /// chance here; one must not do worse), while some that stay show one.
    Sudden,
    /// Usage swings with the seasons, each company on its own calendar (±35 % over a year), and
    /// leavers fade as in `Fading`: a month against the month before sees the low season coming
    /// as a fall.
    Seasonal,
    /// Companies grow 1 to 4 % a month; a company with a sign stops growing and then fades as
    /// in `Fading`, from a higher level.
    Growing,
    /// Leavers give their products up one by one before they go, the one used most last; the
    /// products they keep are used as before. Some that stay give one up (a downgrade).
    Dropping,
}

/// The whole synthetic organisation: one MSSP and one reseller partnership.
#[derive(Clone, Debug)]
pub struct World {
    seed: u64,
    /// How usage moves over time and how leavers show it.
    pub mechanics: Mechanics,
    /// "Today" in Europe/Stockholm; T−1 and T−2 derive from it.
    pub today: NaiveDate,
    /// How many periods each report lists (the current one included).
    pub periods: u32,
    /// The day of month MSSP periods start (the examples use the 26th).
    pub mssp_start_day: u32,
    mssp: Vec<Company>,
    reseller: Vec<Company>,
}

const NAME_STEMS: [&str; 24] = [
    "Bedrock Security",
    "Rubble Construction",
    "Slate Rock and Gravel",
    "Åkerlund & Söner",
    "Ödegaard, Berg och Partners",
    "\"Quoted\" Consulting",
    "Ünal Güvenlik",
    "Łódź Systems",
    "Café Naïve",
    "東京セキュリティ",
    "Nørrebro Data",
    "Grüße & Co",
    "O'Brien, Walsh",
    "Björk IT",
    "Sjöberg Logistik",
    "Crème Brûlée Foods",
    "Ærø Fiskeri",
    "Zürich Treuhand",
    "Mañana Software",
    "Kraków Cloud",
    "Smith; Jones",
    "Tab\tSeparated",
    "Ελληνική Ασφάλεια",
    "Hällström Bygg",
];
const NAME_SUFFIXES: [&str; 8] = [
    "AB",
    "Inc.",
    "Ltd.",
    "GmbH",
    "A/S",
    "sp. z o.o.",
    "Oy",
    "S.A.",
];

impl World {
    /// Builds a world of `companies` companies per partnership and `periods` periods of history.
    pub fn new(seed: u64, companies: u32, periods: u32, today: NaiveDate) -> World {
        let periods = periods.clamp(1, HISTORY_MONTHS);
        let mut world = World {
            seed,
            mechanics: Mechanics::Fading,
            today,
            periods,
            mssp_start_day: 26,
            mssp: Vec::new(),
            reseller: Vec::new(),
        };
        world.mssp = world.make_companies(Partnership::Mssp, companies);
        world.reseller = world.make_companies(Partnership::Reseller, companies);
        world
    }

    /// The same world with other mechanics (see [`Mechanics`]): the same companies, products and
    /// days of joining and leaving; what differs is usage over time and the signs before leaving.
    pub fn with_mechanics(mut self, mechanics: Mechanics) -> World {
        self.mechanics = mechanics;
        let (mssp, reseller) = (self.mssp.len() as u32, self.reseller.len() as u32);
        self.mssp = self.make_companies(Partnership::Mssp, mssp);
        self.reseller = self.make_companies(Partnership::Reseller, reseller);
        self
    }

    fn make_companies(&self, p: Partnership, n: u32) -> Vec<Company> {
        // Company timelines hang off a fixed origin, not off "today", so moving `--today`
        // forward reveals more of the same history instead of a different one.
        let origin = timeline_origin();
        let span = TIMELINE_DAYS;
        let prefix = match p {
            Partnership::Mssp => "SE-ARN",
            Partnership::Reseller => "SE-GOT",
        };
        (0..n as u64)
            .map(|idx| {
                let r = |k: u64| self.hash(&[p.salt(), idx, k]);
                let u = |k: u64| unit(r(k));
                let stem = NAME_STEMS[(r(1) % NAME_STEMS.len() as u64) as usize];
                let suffix = NAME_SUFFIXES[(r(2) % NAME_SUFFIXES.len() as u64) as usize];
                let name = format!("{stem} {suffix}");
                let odds = [0.25, 0.4, 0.5, 0.85, 0.35]; // CS, DA, PAT, SNS, WAS
                let mut products: Vec<&'static str> = PRODUCTS
                    .iter()
                    .zip(odds)
                    .enumerate()
                    .filter(|(i, (_, o))| u(10 + *i as u64) < *o)
                    .map(|(_, (p, _))| *p)
                    .collect();
                if products.is_empty() {
                    products.push("SNS");
                }
                // 70% were customers before the timeline starts; the rest join along it.
                let active_from = if u(3) < 0.7 {
                    origin - Days::new(30 + r(4) % 700)
                } else {
                    origin + Days::new(r(4) % span)
                };
                // Leaving: a hazard of LEAVE_RATE a year from the day a company became a
                // customer (or the origin), so a 24-month history holds leavers enough to
                // measure a churn score by.
                let start = active_from.max(origin);
                let years = -(1.0 - u(5)).ln() / LEAVE_RATE;
                let leave = start + Days::new(1 + (years * 365.25) as u64);
                let inactive_from = (leave < origin + Days::new(span)).then_some(leave);
                // Most leavers show it first, in the weeks before; some healthy ones leave all
                // the same, and most companies that show a warning sign stay.
                let warned = inactive_from.is_some()
                    && u(9) < WARNED_LEAVERS
                    && self.mechanics != Mechanics::Sudden;
                let sign = match r(7) % 4 {
                    _ if self.mechanics == Mechanics::Dropping && products.len() > 1 => {
                        Profile::DroppingProducts
                    }
                    0 => Profile::Declining,
                    1 => Profile::FailingScans,
                    2 => Profile::InactiveScanners,
                    _ => Profile::Dormant,
                };
                let (profile, since) = if warned {
                    (sign, leave - Days::new(21 + r(8) % 100))
                } else if u(15) < STAYERS_WITH_SIGNS
                    && !(self.mechanics == Mechanics::Sudden && inactive_from.is_some())
                {
                    (sign, origin + Days::new(300 + r(8) % span))
                } else {
                    (Profile::Healthy, origin + Days::new(300 + r(8) % span))
                };
                Company {
                    idx,
                    id: format!("{prefix}{}", 1001 + idx),
                    name,
                    products,
                    active_from,
                    inactive_from,
                    profile,
                    since,
                    paused: None,
                }
            })
            .collect()
    }

    /// Makes about `share` of each partnership's companies pause once: inactive for 62 to 75
    /// days somewhere along the timeline while they are customers, then back (a suspension or
    /// a seasonal stop, not a churn). 62 days at least, so that an MSSP pause spans a whole
    /// period and shows in the eligibility; 75 at most, so that it is back within 90 days.
    pub fn with_pauses(mut self, share: f64) -> World {
        let origin = timeline_origin();
        for p in [Partnership::Mssp, Partnership::Reseller] {
            let paused: Vec<Option<(NaiveDate, NaiveDate)>> = self
                .companies(p)
                .iter()
                .map(|c| {
                    let r = |k: u64| self.hash(&[p.salt(), c.idx, k]);
                    if unit(r(20)) >= share {
                        return None;
                    }
                    let stop = origin + Days::new(r(21) % TIMELINE_DAYS);
                    let back = stop + Days::new(62 + r(22) % 14);
                    // Only within its time as a customer, back before it leaves for good.
                    let within = c.active_from < stop
                        && c.inactive_from.is_none_or(|end| back + Days::new(31) < end);
                    within.then_some((stop, back))
                })
                .collect();
            let companies = match p {
                Partnership::Mssp => &mut self.mssp,
                Partnership::Reseller => &mut self.reseller,
            };
            for (c, paused) in companies.iter_mut().zip(paused) {
                c.paused = paused;
            }
        }
        self
    }

    fn hash(&self, parts: &[u64]) -> u64 {
        parts
            .iter()
            .fold(mix(self.seed), |acc, p| mix(acc ^ mix(*p)))
    }

    /// The last day any report includes (T−2).
    pub fn last_report_day(&self) -> NaiveDate {
        self.today - Days::new(2)
    }

    /// The last day customer endpoints have data for (T−1).
    pub fn last_customer_day(&self) -> NaiveDate {
        self.today - Days::new(1)
    }

    /// The first day the world has any data for.
    pub fn history_start(&self) -> NaiveDate {
        self.today - Months::new(HISTORY_MONTHS)
    }

    /// Every company of a partnership, active or not.
    pub fn companies(&self, p: Partnership) -> &[Company] {
        match p {
            Partnership::Mssp => &self.mssp,
            Partnership::Reseller => &self.reseller,
        }
    }

    /// A company by `security_center_id`, in either partnership.
    pub fn company(&self, id: &str) -> Option<(Partnership, &Company)> {
        [Partnership::Mssp, Partnership::Reseller]
            .into_iter()
            .find_map(|p| {
                self.companies(p)
                    .iter()
                    .find(|c| c.id == id)
                    .map(|c| (p, c))
            })
    }

    // ---- periods -------------------------------------------------------------------------

    /// The label (year, month) of the period holding `day`.
    pub fn period_label_of(&self, p: Partnership, day: NaiveDate) -> (i32, u32) {
        match p {
            Partnership::Reseller => (day.year(), day.month()),
            Partnership::Mssp => {
                if day.day() >= self.mssp_start_day {
                    let next = day + Months::new(1);
                    (next.year(), next.month())
                } else {
                    (day.year(), day.month())
                }
            }
        }
    }

    /// The period labelled (year, month), if it exists in the label calendar (no history check).
    fn period_for_label(&self, p: Partnership, year: i32, month: u32) -> Option<Period> {
        let first_of_label = NaiveDate::from_ymd_opt(year, month, 1)?;
        let (from, end) = match p {
            Partnership::Reseller => (
                first_of_label,
                first_of_label + Months::new(1) - Days::new(1),
            ),
            Partnership::Mssp => {
                let start = first_of_label - Months::new(1);
                let from =
                    NaiveDate::from_ymd_opt(start.year(), start.month(), self.mssp_start_day)?;
                let end = NaiveDate::from_ymd_opt(year, month, self.mssp_start_day - 1)?;
                (from, end)
            }
        };
        let last = self.last_report_day();
        let to = end.min(last);
        Some(Period {
            year,
            month,
            from,
            to,
            end,
            is_current: from <= last && last <= end,
            is_partial: to < end,
        })
    }

    /// The periods a report lists, newest first.
    pub fn periods(&self, p: Partnership) -> Vec<Period> {
        let (y, m) = self.period_label_of(p, self.last_report_day());
        let newest = NaiveDate::from_ymd_opt(y, m, 1).expect("valid label");
        (0..self.periods)
            .filter_map(|back| {
                let d = newest - Months::new(back);
                self.period_for_label(p, d.year(), d.month())
            })
            .collect()
    }

    /// One listed period, or `None` when it is outside the history or in the future.
    pub fn period(&self, p: Partnership, year: i32, month: u32) -> Option<Period> {
        self.periods(p)
            .into_iter()
            .find(|x| x.year == year && x.month == month)
    }

    /// Companies in a period's report, sorted by id.
    ///
    /// MSSP: active during the period. Reseller: an active order today, whatever the month
    /// (the API re-derives old months from today's orders).
    pub fn eligible<'a>(&'a self, p: Partnership, period: &Period) -> Vec<&'a Company> {
        self.companies(p)
            .iter()
            .filter(|c| match p {
                Partnership::Mssp => c.active_during(period.from, period.to),
                Partnership::Reseller => c.active_on(self.today),
            })
            .collect()
    }

    /// Products enabled by at least one eligible company, sorted.
    pub fn period_products(&self, p: Partnership, period: &Period) -> Vec<&'static str> {
        let eligible = self.eligible(p, period);
        PRODUCTS
            .into_iter()
            .filter(|prod| eligible.iter().any(|c| c.has(prod)))
            .collect()
    }

    /// Companies with an active account today (the customer endpoints' list), sorted by id.
    pub fn customers(&self, p: Partnership) -> Vec<&Company> {
        self.companies(p)
            .iter()
            .filter(|c| c.active_on(self.today))
            .collect()
    }

    // ---- usage and billing --------------------------------------------------------------

    /// A company's usage of a product on a day; `None` when not active or not enabled.
    pub fn usage(&self, c: &Company, product: &str, day: NaiveDate) -> Option<u64> {
        if !c.has(product) || !c.active_on(day) {
            return None;
        }
        let pi = PRODUCTS.iter().position(|p| *p == product).unwrap_or(0) as u64;
        let base = self.base_usage(c, product);
        let day_n = day.num_days_from_ce() as u64;
        let noise = self.hash(&[c.idx, pi, day_n, 2]);
        if noise.is_multiple_of(31) {
            return Some(0); // an odd day with nothing counted
        }
        let jitter = 0.95 + 0.1 * unit(noise);
        Some((base * jitter * self.counted(c, product, day)).round() as u64)
    }

    /// A company's usage of a product on an ordinary day, before any trend or sign.
    fn base_usage(&self, c: &Company, product: &str) -> f64 {
        let pi = PRODUCTS.iter().position(|p| *p == product).unwrap_or(0) as u64;
        let h = self.hash(&[c.idx, pi, 1]);
        (match product {
            "SNS" => 5 + h % 500,
            "DA" => 1 + h % 200,
            "WAS" => 1 + h % 20,
            "CS" => 1 + h % 50,
            _ => 10 + h % 2000,
        }) as f64
    }

    /// The share of a company's assets of `product` counted on `day`: 1.0 until its profile's
    /// `since`, then less. A declining company's usage falls to 30 % over 120 days, a dormant one
    /// counts nothing; assets whose scan failed are not counted, nor those behind a network
    /// scanner that stopped reporting (SNS only), so failing scans and inactive scanners show in
    /// usage too, if less plainly than in engagement.
    fn counted(&self, c: &Company, product: &str, day: NaiveDate) -> f64 {
        self.tide(c, day) * self.sign(c, product, day)
    }

    /// How the world's mechanics move a company's usage on `day`, whatever its profile.
    fn tide(&self, c: &Company, day: NaiveDate) -> f64 {
        match self.mechanics {
            Mechanics::Seasonal => {
                let phase = unit(self.hash(&[c.idx, 30]));
                let year = f64::from(day.ordinal0()) / 365.25 + phase;
                1.0 + 0.35 * (std::f64::consts::TAU * year).sin()
            }
            Mechanics::Growing => {
                let monthly = 0.01 + 0.03 * unit(self.hash(&[c.idx, 31]));
                // A company with a sign stops growing when it shows.
                let until = match c.profile {
                    Profile::Healthy => day,
                    _ => day.min(c.since),
                };
                let months = (until - timeline_origin()).num_days().max(0) as f64 / 30.44;
                (1.0 + monthly).powf(months)
            }
            Mechanics::Fading | Mechanics::Sudden | Mechanics::Dropping => 1.0,
        }
    }

    /// The share of a company's assets its profile lets count on `day`.
    fn sign(&self, c: &Company, product: &str, day: NaiveDate) -> f64 {
        if day < c.since {
            return 1.0;
        }
        match (c.profile, product) {
            (Profile::Declining, _) => {
                let days = (day - c.since).num_days() as f64;
                (1.0 - days / 120.0).max(0.3)
            }
            (Profile::Dormant, _) => 0.0,
            (Profile::FailingScans, "SNS" | "WAS" | "CS") => {
                1.0 - self.failing_share(c, day, scan_salt(product))
            }
            (Profile::InactiveScanners, "SNS") => {
                let probes = self.probes(c);
                1.0 - self.inactive_probes(c, day, probes) as f64 / probes.max(1) as f64
            }
            (Profile::DroppingProducts, _) => match self.dropped_on(c, product) {
                Some(dropped) if day >= dropped => 0.0,
                _ => 1.0,
            },
            _ => 1.0,
        }
    }

    /// When a company dropping products gives `product` up: the others one by one from `since`,
    /// evenly until its last day (or over 120 days for one that stays, which gives up one
    /// only); `None` for the one it uses most, which it keeps.
    fn dropped_on(&self, c: &Company, product: &str) -> Option<NaiveDate> {
        let mut by_size: Vec<&str> = c.products.clone();
        by_size.sort_by(|a, b| self.base_usage(c, b).total_cmp(&self.base_usage(c, a)));
        let rank = by_size.iter().position(|p| *p == product)?;
        if rank == 0 {
            return None;
        }
        let Some(end) = c.inactive_from else {
            // A downgrade: the least used product goes, the rest stay.
            return (rank + 1 == by_size.len()).then_some(c.since);
        };
        let span = (end - c.since).num_days().max(1) as u64;
        let step = span / by_size.len() as u64;
        // The least used first.
        Some(c.since + Days::new(step * (by_size.len() - rank) as u64 - step))
    }

    /// The share of a failing-scans company's scans of a product that fail on `day`.
    fn failing_share(&self, c: &Company, day: NaiveDate, salt: u64) -> f64 {
        let h = self.hash(&[c.idx, day.num_days_from_ce() as u64, salt]);
        0.3 + 0.3 * unit(h >> 7)
    }

    /// How many network scanners (probes) a company runs: 1 to 6 with SNS, else none.
    fn probes(&self, c: &Company) -> u64 {
        if c.has("SNS") {
            1 + self.hash(&[c.idx, 14]) % 6
        } else {
            0
        }
    }

    /// How many of a company's `probes` do not report on `day`.
    fn inactive_probes(&self, c: &Company, day: NaiveDate, probes: u64) -> u64 {
        let day_n = day.num_days_from_ce() as u64;
        match c.profile {
            _ if c.profile == Profile::Dormant && day >= c.since => probes,
            Profile::InactiveScanners if day >= c.since => {
                (1 + self.hash(&[c.idx, day_n, 15]) % probes.max(1)).min(probes)
            }
            _ => u64::from(probes > 0 && self.hash(&[c.idx, day_n, 16]).is_multiple_of(40)),
        }
    }

    /// Daily rows of a company in a period, sorted by product then date (zero days included).
    pub fn daily(&self, c: &Company, period: &Period, product: Option<&str>) -> Vec<DailyRow> {
        c.products
            .iter()
            .filter(|p| product.is_none_or(|f| f == **p))
            .flat_map(|p| {
                period.days().filter_map(move |date| {
                    self.usage(c, p, date).map(|usage_value| DailyRow {
                        product: p,
                        date,
                        usage_value,
                    })
                })
            })
            .collect()
    }

    /// The billing array of a company in a period.
    ///
    /// Without a product filter it holds the enabled products only; with one, a company without
    /// the product gets a null entry with `null_reason` (the documented rule).
    pub fn billing(
        &self,
        c: &Company,
        period: &Period,
        product: Option<&str>,
    ) -> Vec<BillingEntry> {
        match product {
            Some(prod) => {
                let prod = PRODUCTS.iter().find(|p| **p == prod).copied();
                prod.map(|p| vec![self.billing_entry(c, period, p)])
                    .unwrap_or_default()
            }
            None => c
                .products
                .iter()
                .map(|p| self.billing_entry(c, period, p))
                .collect(),
        }
    }

    fn billing_entry(&self, c: &Company, period: &Period, product: &'static str) -> BillingEntry {
        if !c.has(product) {
            return BillingEntry {
                product,
                billing_value: None,
                billing_date: None,
                last_scan_date: None,
                null_reason: Some("product_not_enabled_for_company"),
            };
        }
        let mut peak: Option<(u64, NaiveDate)> = None;
        let mut last_scan = None;
        for day in period.days() {
            if let Some(v) = self.usage(c, product, day) {
                if v > 0 && peak.is_none_or(|(best, _)| v > best) {
                    peak = Some((v, day));
                }
            }
            if self.scanned(c, product, day) {
                last_scan = Some(day);
            }
        }
        BillingEntry {
            product,
            billing_value: Some(peak.map_or(0, |(v, _)| v)),
            billing_date: peak.map(|(_, d)| d),
            last_scan_date: last_scan,
            null_reason: None,
        }
    }

    /// Whether a scan or assessment of `product` happened that day (never for DA).
    pub fn scanned(&self, c: &Company, product: &str, day: NaiveDate) -> bool {
        let e = self.engagement(c, day);
        match product {
            "SNS" => e.sns_scans_succeeded + e.sns_scans_failed > 0,
            "WAS" => e.was_scans_succeeded + e.was_scans_failed > 0,
            "CS" => e.cs_scans_succeeded + e.cs_scans_failed > 0,
            // A phishing campaign goes out on one weekday a week.
            "PAT" => {
                c.has("PAT")
                    && c.active_on(day)
                    && self.counted(c, "PAT", day) > 0.0
                    && day.weekday().num_days_from_monday() as u64 == c.idx % 5
            }
            _ => false,
        }
    }

    // ---- engagement and churn -----------------------------------------------------------

    /// A company's engagement on a day (all zeros when inactive or outside the history).
    pub fn engagement(&self, c: &Company, day: NaiveDate) -> Engagement {
        if !c.active_on(day) || day < self.history_start() || day > self.last_customer_day() {
            return Engagement::default();
        }
        let day_n = day.num_days_from_ce() as u64;
        let stopped = c.profile == Profile::Dormant && day >= c.since;
        let weekend = day.weekday().num_days_from_monday() >= 5;
        let scans = |salt: u64, product: &str, max: u64| -> (u64, u64) {
            if !c.has(product) || stopped {
                return (0, 0);
            }
            let h = self.hash(&[c.idx, day_n, salt]);
            let chance = if weekend { 0.2 } else { 0.7 };
            if unit(h) >= chance {
                return (0, 0);
            }
            let total = 1 + (h >> 20) % max;
            let fail_share = match c.profile {
                Profile::FailingScans if day >= c.since => self.failing_share(c, day, salt),
                _ => 0.05 * unit(h >> 7),
            };
            let failed = (total as f64 * fail_share).round() as u64;
            (total - failed, failed)
        };
        let (sns_ok, sns_fail) = scans(scan_salt("SNS"), "SNS", 20);
        let (was_ok, was_fail) = scans(scan_salt("WAS"), "WAS", 6);
        let (cs_ok, cs_fail) = scans(scan_salt("CS"), "CS", 4);
        let probes = self.probes(c);
        let inactive = self.inactive_probes(c, day, probes);
        let api_calls = if c.idx.is_multiple_of(3) && !stopped {
            self.hash(&[c.idx, day_n, 17]) % 200
        } else {
            0
        };
        Engagement {
            sns_scans_succeeded: sns_ok,
            sns_scans_failed: sns_fail,
            was_scans_succeeded: was_ok,
            was_scans_failed: was_fail,
            cs_scans_succeeded: cs_ok,
            cs_scans_failed: cs_fail,
            probes_active: probes - inactive,
            probes_inactive: inactive,
            api_calls,
        }
    }

    /// Rounded as the API sends it: two decimals.
    pub fn failure_ratio(e: &Engagement) -> f64 {
        let total = e.succeeded() + e.failed();
        if total == 0 {
            0.0
        } else {
            (e.failed() as f64 / total as f64 * 100.0).round() / 100.0
        }
    }
}

/// The hash salt of a scanning product's scans on a day.
fn scan_salt(product: &str) -> u64 {
    match product {
        "SNS" => 11,
        "WAS" => 12,
        _ => 13,
    }
}

/// splitmix64: a fast, well-mixed 64-bit hash step.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A hash as a float in [0, 1).
fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world() -> World {
        World::new(7, 50, 24, NaiveDate::from_ymd_opt(2026, 3, 12).unwrap())
    }

    #[test]
    fn mssp_periods_run_26th_to_25th_and_current_is_partial_up_to_t_minus_2() {
        let w = world();
        let periods = w.periods(Partnership::Mssp);
        assert_eq!(periods.len(), 24);
        let current = &periods[0];
        assert_eq!((current.year, current.month), (2026, 3));
        assert_eq!(current.from, NaiveDate::from_ymd_opt(2026, 2, 26).unwrap());
        assert_eq!(current.to, NaiveDate::from_ymd_opt(2026, 3, 10).unwrap());
        assert!(current.is_current && current.is_partial);
        let prev = &periods[1];
        assert_eq!(prev.from, NaiveDate::from_ymd_opt(2026, 1, 26).unwrap());
        assert_eq!(prev.to, NaiveDate::from_ymd_opt(2026, 2, 25).unwrap());
        assert!(!prev.is_current && !prev.is_partial);
        // Periods tile the calendar with no gap.
        for pair in periods.windows(2) {
            assert_eq!(pair[1].end + Days::new(1), pair[0].from);
        }
    }

    #[test]
    fn a_period_whose_last_day_is_t_minus_2_is_current_and_not_partial() {
        let w = World::new(7, 5, 3, NaiveDate::from_ymd_opt(2026, 2, 27).unwrap());
        let p = &w.periods(Partnership::Mssp)[0];
        assert_eq!((p.year, p.month), (2026, 2));
        assert!(p.is_current && !p.is_partial);
        let r = &w.periods(Partnership::Reseller)[0];
        assert_eq!((r.year, r.month), (2026, 2));
        assert!(r.is_current && r.is_partial);
    }

    #[test]
    fn billing_is_the_peak_of_daily_usage() {
        let w = world();
        let period = &w.periods(Partnership::Mssp)[1];
        for c in w.eligible(Partnership::Mssp, period) {
            for entry in w.billing(c, period, None) {
                let peak = w
                    .daily(c, period, Some(entry.product))
                    .iter()
                    .map(|r| r.usage_value)
                    .max()
                    .unwrap_or(0);
                assert_eq!(
                    entry.billing_value,
                    Some(peak),
                    "{} {}",
                    c.id,
                    entry.product
                );
                if entry.product == "DA" {
                    assert_eq!(entry.last_scan_date, None);
                }
            }
        }
    }

    /// Mean usage of `product` over the 28 days up to `day`.
    fn mean_usage(w: &World, c: &Company, product: &str, day: NaiveDate) -> f64 {
        (0..28)
            .filter_map(|back| w.usage(c, product, day - Days::new(back)))
            .sum::<u64>() as f64
            / 28.0
    }

    #[test]
    fn each_mechanics_keeps_the_companies_and_moves_usage_its_own_way() {
        let today = NaiveDate::from_ymd_opt(2026, 3, 12).unwrap();
        let world = |m| World::new(7, 400, 24, today).with_mechanics(m);
        let fading = world(Mechanics::Fading);
        let days = |w: &World| {
            w.companies(Partnership::Mssp)
                .iter()
                .map(|c| {
                    (
                        c.id.clone(),
                        c.products.clone(),
                        c.active_from,
                        c.inactive_from,
                    )
                })
                .collect::<Vec<_>>()
        };
        let start = fading.history_start() + Days::new(30);
        let leavers = |w: &World| -> Vec<Company> {
            w.companies(Partnership::Mssp)
                .iter()
                .filter(|c| {
                    c.inactive_from
                        .is_some_and(|end| end > start + Days::new(200))
                })
                .filter(|c| {
                    c.inactive_from
                        .is_some_and(|end| end <= w.last_report_day())
                })
                .filter(|c| c.active_from < start)
                .cloned()
                .collect()
        };
        assert!(leavers(&fading).len() > 20, "{}", leavers(&fading).len());
        // Fading: most leavers show a sign before they go.
        let signed = |w: &World| {
            leavers(w)
                .iter()
                .filter(|c| c.profile != Profile::Healthy && c.since < c.inactive_from.unwrap())
                .count()
        };
        assert!(signed(&fading) * 2 > leavers(&fading).len());
        // Sudden: the same companies, and no leaver shows a sign.
        let sudden = world(Mechanics::Sudden);
        assert_eq!(days(&sudden), days(&fading));
        assert_eq!(signed(&sudden), 0);
        // Seasonal: a steady company's month swings with its season; over a year it evens out.
        let seasonal = world(Mechanics::Seasonal);
        let steady = seasonal
            .companies(Partnership::Mssp)
            .iter()
            .find(|c| {
                c.profile == Profile::Healthy
                    && c.has("PAT")
                    && c.active_from < start
                    && c.inactive_from.is_none()
            })
            .unwrap();
        let months: Vec<f64> = (0..12)
            .map(|m| mean_usage(&seasonal, steady, "PAT", start + Days::new(30 * m + 28)))
            .collect();
        let (low, high) = months
            .iter()
            .fold((f64::MAX, 0.0f64), |(l, h), m| (l.min(*m), h.max(*m)));
        assert!(high > 1.6 * low, "{months:?}");
        // Growing: a steady company uses more a year on.
        let growing = world(Mechanics::Growing);
        let steady = &growing.companies(Partnership::Mssp)[steady.idx as usize];
        let (before, after) = (
            mean_usage(&growing, steady, "PAT", start + Days::new(28)),
            mean_usage(&growing, steady, "PAT", start + Days::new(393)),
        );
        assert!(after > 1.1 * before, "{before} then {after}");
        // Dropping: a leaver with several products uses only the one it used most by its last
        // weeks, and every one of them before.
        let dropping = world(Mechanics::Dropping);
        let droppers: Vec<Company> = leavers(&dropping)
            .into_iter()
            .filter(|c| {
                c.profile == Profile::DroppingProducts && c.since < c.inactive_from.unwrap()
            })
            .collect();
        assert!(droppers.len() > 5, "{}", droppers.len());
        for c in &droppers {
            let end = c.inactive_from.unwrap();
            let kept = c
                .products
                .iter()
                .filter(|p| dropping.dropped_on(c, p).is_none());
            assert_eq!(kept.count(), 1, "{c:?}");
            for p in &c.products {
                let at = |day| dropping.usage(c, p, day).unwrap_or(0);
                let early = (1..40).map(|d| at(c.since - Days::new(d))).sum::<u64>();
                assert!(
                    early > 0 || c.since <= c.active_from + Days::new(40),
                    "{} {p}",
                    c.id
                );
                let dropped = dropping.dropped_on(c, p);
                let last = end - Days::new(1);
                match dropped {
                    Some(on) if on <= last => assert_eq!(at(last), 0, "{} {p}", c.id),
                    _ => {}
                }
            }
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_world_and_another_seed_does_not() {
        let a = world();
        let b = world();
        let c = World::new(8, 50, 24, a.today);
        let names = |w: &World| {
            w.companies(Partnership::Mssp)
                .iter()
                .map(|c| (c.name.clone(), c.products.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&a), names(&b));
        assert_ne!(names(&a), names(&c));
    }
}

//! What a sync must fetch, as pure functions of the API's period list, the customer list and
//! the lake's sync state, so the plan is testable and `--dry-run` can print it.

use chrono::{Days, Months, NaiveDate};

use crate::api::models::PeriodSummary;
pub use crate::config::Windows;
use crate::lake::{CustomerState, SyncState};

/// The API's "today" (Europe/Stockholm), read off the period list: the current period ends at
/// T−2. Using the API's own clock keeps hspq right whatever the local clock or timezone says.
pub fn api_today(periods: &[PeriodSummary]) -> Option<NaiveDate> {
    let current = periods.iter().filter(|p| p.is_current).map(|p| p.to).max();
    current
        .or_else(|| periods.iter().map(|p| p.to).max())
        .map(|t2| t2 + Days::new(2))
}

/// The periods to fetch: all but the closed ones the lake already holds (all with `full`).
pub fn periods_to_fetch<'a>(
    report_type: &str,
    list: &'a [PeriodSummary],
    state: &SyncState,
    full: bool,
) -> Vec<&'a PeriodSummary> {
    let mut todo: Vec<&PeriodSummary> = list
        .iter()
        .filter(|p| {
            full || state
                .periods
                .get(&SyncState::period_key(
                    report_type,
                    p.year as i64,
                    &p.period,
                ))
                .is_none_or(|s| s.is_partial)
        })
        .collect();
    // Oldest first: a run cut short has finished the periods that change least.
    todo.sort_by_key(|p| (p.year, p.period.clone()));
    todo
}

/// The date windows to fetch for one customer, each at most 12 months long less a day (the
/// API caps a range at 12 months and does not say whether the bound is inclusive).
pub fn customer_windows(
    last_day: NaiveDate,
    known: Option<&CustomerState>,
    w: Windows,
) -> Vec<(NaiveDate, NaiveDate)> {
    let first = match known {
        Some(s) if !w.full => s.to - Days::new(w.lookback_days as u64),
        _ => last_day - Months::new(w.history_months) + Days::new(1),
    };
    let mut windows = Vec::new();
    let mut to = last_day;
    while to >= first {
        let from = (to - Months::new(12) + Days::new(1)).max(first);
        windows.push((from, to));
        match from.pred_opt() {
            Some(d) => to = d,
            None => break,
        }
    }
    windows.reverse();
    windows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    const W: Windows = Windows {
        history_months: 12,
        lookback_days: 7,
        full: false,
    };

    #[test]
    fn a_first_sync_takes_the_history_in_windows_within_12_months() {
        assert_eq!(
            customer_windows(d("2026-03-11"), None, W),
            vec![(d("2025-03-12"), d("2026-03-11"))]
        );
        let long = Windows {
            history_months: 24,
            ..W
        };
        assert_eq!(
            customer_windows(d("2026-03-11"), None, long),
            vec![
                (d("2024-03-12"), d("2025-03-11")),
                (d("2025-03-12"), d("2026-03-11"))
            ]
        );
    }

    #[test]
    fn a_later_sync_starts_lookback_days_before_the_last_to() {
        let known = CustomerState {
            from: d("2025-03-12"),
            to: d("2026-03-10"),
        };
        assert_eq!(
            customer_windows(d("2026-03-11"), Some(&known), W),
            vec![(d("2026-03-03"), d("2026-03-11"))]
        );
        let full = Windows { full: true, ..W };
        assert_eq!(
            customer_windows(d("2026-03-11"), Some(&known), full)[0].0,
            d("2025-03-12")
        );
    }

    #[test]
    fn the_api_today_is_two_days_after_the_current_period_ends() {
        let p = |to: &str, current: bool| PeriodSummary {
            year: 2026,
            period: "03".into(),
            from: d("2026-02-26"),
            to: d(to),
            is_current: current,
            is_partial: current,
            extra: Default::default(),
        };
        assert_eq!(
            api_today(&[p("2026-02-25", false), p("2026-03-10", true)]),
            Some(d("2026-03-12"))
        );
        assert_eq!(api_today(&[]), None);
    }
}

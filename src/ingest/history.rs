//! `customer_history`: what the API forgets. `/v1/customers` lists only today's customers and a
//! customer that left answers 404, so the lake keeps, per report type, one row per continuous
//! presence in that list: the API day of the first and the last successful sync that listed
//! the customer, and of the first later one that did not (`gone_at`, NULL while present). A
//! customer who leaves and returns has two rows. Only a sync that succeeds advances it (it is
//! committed with the run's last step), so a failed sync never marks anyone gone.

use std::collections::{BTreeMap, HashMap};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::Date32Type;
use chrono::NaiveDate;

use crate::lake::RowsError;

/// One continuous presence of a customer in the customer list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Presence {
    /// The customer.
    pub security_center_id: String,
    /// Its name when last listed.
    pub company_name: String,
    /// The API day of the first sync that listed it.
    pub seen_from: NaiveDate,
    /// The API day of the last sync that listed it.
    pub seen_to: NaiveDate,
    /// The API day of the first later sync that did not; `None` while it is listed.
    pub gone_at: Option<NaiveDate>,
}

/// The history after a successful sync on the API's `day` listed `listed` (id, name). A sync
/// on a day before the history's last one (another clock, a lagging API) changes nothing:
/// `None`, so the caller can say so.
pub fn advance(
    previous: Vec<Presence>,
    listed: &[(&str, &str)],
    day: NaiveDate,
) -> Option<Vec<Presence>> {
    let latest = previous
        .iter()
        .map(|p| p.gone_at.unwrap_or(p.seen_to).max(p.seen_to))
        .max();
    if latest.is_some_and(|l| day < l) {
        return None;
    }
    let names: HashMap<&str, &str> = listed.iter().copied().collect();
    let mut out = previous;
    // The presence each customer has now: its open row, or a row closed today (a customer
    // missing from one sync and back in the next on the same day was never really gone).
    let mut current: HashMap<String, usize> = HashMap::new();
    for (i, p) in out.iter().enumerate() {
        if p.gone_at.is_none() || p.gone_at == Some(day) {
            current.insert(p.security_center_id.clone(), i);
        }
    }
    for p in out.iter_mut() {
        if p.gone_at.is_none() && !names.contains_key(p.security_center_id.as_str()) {
            p.gone_at = Some(day);
        }
    }
    for (id, name) in listed {
        match current.get(*id) {
            Some(&i) => {
                let p = &mut out[i];
                p.seen_to = day;
                p.gone_at = None;
                p.company_name = name.to_string();
            }
            None => out.push(Presence {
                security_center_id: id.to_string(),
                company_name: name.to_string(),
                seen_from: day,
                seen_to: day,
                gone_at: None,
            }),
        }
    }
    out.sort_by(|a, b| {
        (&a.security_center_id, a.seen_from).cmp(&(&b.security_center_id, b.seen_from))
    });
    Some(out)
}

/// The presences in `customer_history` batches of one report type.
pub fn from_batches(batches: &[RecordBatch]) -> Result<Vec<Presence>, RowsError> {
    let missing = |kind, column: &str| RowsError::Column {
        dataset: "customer_history",
        kind,
        column: column.to_string(),
    };
    let null = |column: &str| RowsError::Value {
        dataset: "customer_history",
        detail: format!("{column} is NULL"),
    };
    let mut out = Vec::new();
    for b in batches {
        let text = |name: &str| {
            b.column_by_name(name)
                .and_then(|c| c.as_string_opt::<i32>())
                .ok_or_else(|| missing("text", name))
        };
        let date = |name: &str| {
            b.column_by_name(name)
                .and_then(|c| c.as_primitive_opt::<Date32Type>())
                .ok_or_else(|| missing("date", name))
        };
        let (ids, names) = (text("security_center_id")?, text("company_name")?);
        let (from, to, gone) = (date("seen_from")?, date("seen_to")?, date("gone_at")?);
        for i in 0..b.num_rows() {
            let day =
                |a: &arrow::array::Date32Array| a.is_valid(i).then(|| a.value_as_date(i)).flatten();
            out.push(Presence {
                security_center_id: ids.value(i).to_string(),
                company_name: names.value(i).to_string(),
                seen_from: day(from).ok_or_else(|| null("seen_from"))?,
                seen_to: day(to).ok_or_else(|| null("seen_to"))?,
                gone_at: day(gone),
            });
        }
    }
    Ok(out)
}

/// How many customers a step of the history saw leave and arrive, for the run's log.
pub fn changes(before: &[Presence], after: &[Presence]) -> (usize, usize) {
    let open = |h: &[Presence]| -> BTreeMap<String, ()> {
        h.iter()
            .filter(|p| p.gone_at.is_none())
            .map(|p| (p.security_center_id.clone(), ()))
            .collect()
    };
    let (was, is) = (open(before), open(after));
    let left = was.keys().filter(|k| !is.contains_key(*k)).count();
    let arrived = is.keys().filter(|k| !was.contains_key(*k)).count();
    (left, arrived)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 3, d).unwrap()
    }

    #[test]
    fn a_customer_who_leaves_and_returns_has_two_presences() {
        let h = advance(Vec::new(), &[("A", "Acme"), ("B", "Bolt")], day(1)).unwrap();
        let h = advance(h, &[("A", "Acme AB"), ("B", "Bolt")], day(2)).unwrap();
        let h = advance(h, &[("A", "Acme AB")], day(5)).unwrap();
        let h = advance(h, &[("A", "Acme AB"), ("B", "Bolt")], day(9)).unwrap();
        let rows: Vec<_> = h
            .iter()
            .map(|p| {
                (
                    p.security_center_id.as_str(),
                    p.company_name.as_str(),
                    p.seen_from,
                    p.seen_to,
                    p.gone_at,
                )
            })
            .collect();
        assert_eq!(
            rows,
            vec![
                ("A", "Acme AB", day(1), day(9), None),
                ("B", "Bolt", day(1), day(2), Some(day(5))),
                ("B", "Bolt", day(9), day(9), None),
            ]
        );
        assert_eq!(
            changes(&h, &advance(h.clone(), &[("C", "Cog")], day(10)).unwrap()),
            (2, 1)
        );
    }

    #[test]
    fn a_same_day_blip_is_no_leaving_and_an_older_day_changes_nothing() {
        let h = advance(Vec::new(), &[("A", "Acme")], day(3)).unwrap();
        let h = advance(h, &[], day(3)).unwrap();
        assert_eq!(h[0].gone_at, Some(day(3)));
        let h = advance(h, &[("A", "Acme")], day(3)).unwrap();
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].gone_at, None);
        assert_eq!(advance(h, &[], day(2)), None);
    }
}

//! `hspq churn fit`: weights for the churn score fitted on the lake's own history.
//!
//! The rows are `churn_labels()` (sql/views/churn_labels.sql): every company's components at
//! every past cut-off, from the data the lake held then, and whether it left within the horizon.
//! Per report type and set of components (engagement exists only from a lake's first sync on), a
//! ridge-penalised logistic regression over the same components gives a weight per component and
//! an intercept, so the fitted score stays explainable: the chance of leaving within the
//! horizon. Below [`MIN_EVENTS`] leavers the default weights stay.
//!
//! Whether fitting helps is measured out of time: at each cut-off, a model fitted only on the
//! cut-offs whose horizon had ended by then (what a partner could have fitted that day) scores
//! the companies, next to the default weights on the same cut-offs.

use std::collections::BTreeMap;

use chrono::NaiveDate;

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float64Array, Int32Array, Int64Array, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;

use crate::lake::log::Ending;
use crate::lake::{
    CleanUp, Dataset, Lake, LakeError, LakeLocation, LakeWriter, Partition, PartitionWriter,
    WriterOptions,
};
use crate::query::{Engine, QueryError};

/// Why a fit could not be made or stored.
#[derive(Debug, thiserror::Error)]
pub enum ChurnError {
    /// Reading the lake's past scorings failed.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// Taking, writing or committing the lake failed (a sync holds it, a store fails).
    #[error(transparent)]
    Lake(#[from] LakeError),
    /// The logistic regression found no optimum.
    #[error("{0}")]
    Fit(String),
    /// A weights batch did not fit its schema.
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
    /// A cut-off the lake gave is not a date.
    #[error("a cut-off is not a date: {0}")]
    Date(#[from] chrono::ParseError),
}

impl From<duckdb::Error> for ChurnError {
    fn from(e: duckdb::Error) -> Self {
        ChurnError::Query(e.into())
    }
}

/// Fewer leavers than this and a fit says more about noise than about churn.
pub const MIN_EVENTS: usize = 30;

/// The L2 penalty on the weights: weak, so that a component that alone separates leavers from
/// stayers (a small lake) gets a large weight, not an infinite one.
pub const RIDGE: f64 = 1.0;

/// The components churn_scores computes from usage and billing, which every cut-off has.
pub const BASE: [&str; 3] = ["usage_drop", "zero_usage", "billing_drop"];

/// The components from engagement, which cut-offs after a lake's first sync have too.
pub const ENGAGEMENT: [&str; 4] = [
    "scan_failures",
    "inactive_scanners",
    "activity_drop",
    "scan_gap",
];

/// What to fit on.
#[derive(Clone, Debug)]
pub struct FitOptions {
    /// A leaving counts when it falls within this many days after a cut-off.
    pub horizon_days: u32,
    /// Days of recent activity, as in churn_risk.
    pub window_days: u32,
    /// The share of companies flagged at each cut-off, for precision, recall and lift.
    pub top_share: f64,
    /// One report type, or both.
    pub report_type: Option<String>,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            horizon_days: 60,
            window_days: 28,
            top_share: 0.1,
            report_type: None,
        }
    }
}

/// One company at one cut-off.
#[derive(Clone, Debug)]
pub struct Scoring {
    /// The cut-off.
    pub cutoff: NaiveDate,
    /// The company.
    pub security_center_id: String,
    /// The components of its set, in the set's order.
    pub values: Vec<f64>,
    /// The score with the default weights.
    pub default_score: f64,
    /// Billing of the last closed period, which orders equal scores.
    pub units_at_risk: i64,
    /// Whether it left within the horizon.
    pub leaves: bool,
}

/// A fitted logistic regression over a set of components.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    /// The constant term.
    pub intercept: f64,
    /// One weight per component of the set, in its order.
    pub weights: Vec<f64>,
}

impl Model {
    /// Fits on `rows`, or `None` below [`MIN_EVENTS`] leavers.
    ///
    /// Minimises the log loss plus `RIDGE / 2` times the squared weights (not the intercept),
    /// with every weight at least zero: each component is built so that more of it means more
    /// risk, and a weight below zero would be one world's accident that another world punishes.
    /// Newton's method on the weights left free; a weight that goes below zero is held at zero
    /// and the rest fitted again, and one held that would now rise is freed (an active set: the
    /// problem is convex, so this ends at its one constrained optimum). With at most eight
    /// weights each step solves a 9 × 9 system (no numerics crate needed).
    pub fn fit(rows: &[&Scoring]) -> Result<Option<Model>, ChurnError> {
        let events = rows.iter().filter(|r| r.leaves).count();
        if events < MIN_EVENTS || events == rows.len() {
            return Ok(None);
        }
        let width = rows[0].values.len();
        // The weights, then the intercept (always free).
        let mut free = vec![true; width + 1];
        let mut beta = vec![0.0; width + 1];
        for _ in 0..2 * width + 2 {
            beta = newton(rows, &free, beta)?;
            let below: Vec<usize> = (0..width).filter(|&i| beta[i] < 0.0).collect();
            if !below.is_empty() {
                for i in below {
                    free[i] = false;
                    beta[i] = 0.0;
                }
                continue;
            }
            let (gradient, _) = derivatives(rows, &beta);
            let rising: Vec<usize> = (0..width)
                .filter(|&i| !free[i] && gradient[i] < -1e-9 * rows.len() as f64)
                .collect();
            if rising.is_empty() {
                break;
            }
            for i in rising {
                free[i] = true;
            }
        }
        if beta.iter().any(|b| !b.is_finite()) {
            return Err(ChurnError::Fit(
                "the logistic regression failed: its weights are not finite".into(),
            ));
        }
        let intercept = beta.pop().unwrap_or(0.0);
        Ok(Some(Model {
            intercept,
            weights: beta,
        }))
    }

    /// The chance in % that a company with these components leaves within the horizon.
    pub fn score(&self, values: &[f64]) -> f64 {
        let z: f64 = self.intercept
            + self
                .weights
                .iter()
                .zip(values)
                .map(|(w, x)| w * x)
                .sum::<f64>();
        100.0 / (1.0 + (-z).exp())
    }
}

/// Newton's method from `beta` on the coordinates `free` says; the others stay where they are.
fn newton(rows: &[&Scoring], free: &[bool], mut beta: Vec<f64>) -> Result<Vec<f64>, ChurnError> {
    let mut loss = penalised_loss(rows, &beta);
    for _ in 0..100 {
        let (mut gradient, mut hessian) = derivatives(rows, &beta);
        for (i, _) in free.iter().enumerate().filter(|(_, f)| !**f) {
            gradient[i] = 0.0;
            for (j, row) in hessian.iter_mut().enumerate() {
                row[i] = if i == j { 1.0 } else { 0.0 };
            }
            hessian[i] = (0..free.len())
                .map(|j| if i == j { 1.0 } else { 0.0 })
                .collect();
        }
        if gradient.iter().all(|g| g.abs() < 1e-9 * rows.len() as f64) {
            break;
        }
        let step = solve(hessian, gradient).ok_or_else(|| {
            ChurnError::Fit("the logistic regression failed: its Hessian is singular".into())
        })?;
        // Halve the step until the loss falls (a full Newton step can overshoot far from the
        // optimum).
        let mut scale = 1.0;
        loop {
            let next: Vec<f64> = beta.iter().zip(&step).map(|(b, s)| b - scale * s).collect();
            let next_loss = penalised_loss(rows, &next);
            if next_loss <= loss || scale < 1e-6 {
                beta = next;
                loss = next_loss;
                break;
            }
            scale /= 2.0;
        }
    }
    Ok(beta)
}

/// The log-odds of `row` under `beta` (weights, then the intercept).
fn log_odds(beta: &[f64], row: &Scoring) -> f64 {
    let (intercept, weights) = beta.split_last().expect("an intercept");
    intercept
        + weights
            .iter()
            .zip(&row.values)
            .map(|(w, x)| w * x)
            .sum::<f64>()
}

/// The log loss of `beta` over `rows` plus the ridge penalty on its weights.
fn penalised_loss(rows: &[&Scoring], beta: &[f64]) -> f64 {
    let (_, weights) = beta.split_last().expect("an intercept");
    let data: f64 = rows
        .iter()
        .map(|r| {
            let z = log_odds(beta, r);
            // log(1 + e^z) without overflow, minus z for a leaver.
            z.max(0.0) + (-z.abs()).exp().ln_1p() - if r.leaves { z } else { 0.0 }
        })
        .sum();
    data + RIDGE / 2.0 * weights.iter().map(|w| w * w).sum::<f64>()
}

/// The gradient and Hessian of [`penalised_loss`] at `beta`.
fn derivatives(rows: &[&Scoring], beta: &[f64]) -> (Vec<f64>, Vec<Vec<f64>>) {
    let n = beta.len();
    let mut gradient = vec![0.0; n];
    let mut hessian = vec![vec![0.0; n]; n];
    let mut x = vec![1.0; n];
    for r in rows {
        x[..n - 1].copy_from_slice(&r.values);
        let p = 1.0 / (1.0 + (-log_odds(beta, r)).exp());
        let residual = p - if r.leaves { 1.0 } else { 0.0 };
        let curvature = p * (1.0 - p);
        for i in 0..n {
            gradient[i] += residual * x[i];
            for j in 0..n {
                hessian[i][j] += curvature * x[i] * x[j];
            }
        }
    }
    for i in 0..n - 1 {
        gradient[i] += RIDGE * beta[i];
        hessian[i][i] += RIDGE;
    }
    (gradient, hessian)
}

/// Solves `a · x = b` by Gaussian elimination with partial pivoting; `None` if `a` is singular.
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Option<Vec<f64>> {
    let n = b.len();
    for col in 0..n {
        let pivot = (col..n).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[pivot][col].abs() < 1e-12 {
            return None;
        }
        a.swap(col, pivot);
        b.swap(col, pivot);
        let (above, below) = a.split_at_mut(col + 1);
        let pivot_row = &above[col];
        for (row, rhs) in below.iter_mut().zip(col + 1..n) {
            let factor = row[col] / pivot_row[col];
            for (value, p) in row[col..].iter_mut().zip(&pivot_row[col..]) {
                *value -= factor * p;
            }
            b[rhs] -= factor * b[col];
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let known: f64 = (row + 1..n).map(|k| a[row][k] * x[k]).sum();
        x[row] = (b[row] - known) / a[row][row];
    }
    Some(x)
}

/// How well a ranking foresaw the leavers.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Figures {
    /// Cut-offs pooled.
    pub cutoffs: usize,
    /// Companies scored, over all cut-offs.
    pub scored: usize,
    /// Leavers among them.
    pub events: usize,
    /// The chance a leaver ranks above a stayer, ties counting half.
    pub auc: f64,
    /// Leavers among the flagged (the top share at each cut-off).
    pub precision: f64,
    /// Flagged among the leavers.
    pub recall: f64,
    /// Precision over the base rate.
    pub lift: f64,
}

impl Figures {
    /// The figures of `value` per scoring (pooled for AUC), flagging the top `share` of each
    /// cut-off as churn_backtest does: by value, then units at risk, then id.
    pub fn of(rows: &[(&Scoring, f64)], share: f64) -> Figures {
        let events = rows.iter().filter(|(r, _)| r.leaves).count();
        let scored = rows.len();
        // AUC from mid-ranks.
        let mut values: Vec<(f64, bool)> = rows.iter().map(|(r, v)| (*v, r.leaves)).collect();
        values.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut leaver_ranks = 0.0;
        let mut i = 0;
        while i < values.len() {
            let j = (i..values.len())
                .find(|&j| values[j].0 != values[i].0)
                .unwrap_or(values.len());
            let mid = (i + 1 + j) as f64 / 2.0;
            leaver_ranks += mid * values[i..j].iter().filter(|v| v.1).count() as f64;
            i = j;
        }
        let (e, n) = (events as f64, scored as f64);
        let auc = (leaver_ranks - e * (e + 1.0) / 2.0) / (e * (n - e));
        let mut by_cutoff: BTreeMap<NaiveDate, Vec<(&Scoring, f64)>> = BTreeMap::new();
        for (r, v) in rows {
            by_cutoff.entry(r.cutoff).or_default().push((r, *v));
        }
        let (mut flagged, mut hits) = (0usize, 0usize);
        for group in by_cutoff.values_mut() {
            group.sort_by(|a, b| {
                b.1.total_cmp(&a.1)
                    .then(b.0.units_at_risk.cmp(&a.0.units_at_risk))
                    .then(a.0.security_center_id.cmp(&b.0.security_center_id))
            });
            let k = (share * group.len() as f64).ceil() as usize;
            flagged += k;
            hits += group[..k].iter().filter(|(r, _)| r.leaves).count();
        }
        let precision = hits as f64 / flagged as f64;
        Figures {
            cutoffs: by_cutoff.len(),
            scored,
            events,
            auc,
            precision,
            recall: hits as f64 / e,
            lift: precision / (e / n),
        }
    }
}

impl Figures {
    /// The standard error of the AUC (Hanley and McNeil, 1982), from the counts of leavers and
    /// stayers: how far chance alone moves it.
    pub fn auc_se(&self) -> f64 {
        let (a, n1, n2) = (
            self.auc,
            self.events as f64,
            (self.scored - self.events) as f64,
        );
        let (q1, q2) = (a / (2.0 - a), 2.0 * a * a / (1.0 + a));
        ((a * (1.0 - a) + (n1 - 1.0) * (q1 - a * a) + (n2 - 1.0) * (q2 - a * a)) / (n1 * n2))
            .max(0.0)
            .sqrt()
    }
}

/// One report type's fit over one set of components.
#[derive(Clone, Debug)]
pub struct Fit {
    /// mssp or reseller.
    pub report_type: String,
    /// "usage, billing" or "usage, billing, engagement", as churn_scores says.
    pub components: String,
    /// The components' names, in the weights' order.
    pub names: Vec<&'static str>,
    /// Cut-offs, scorings and leavers fitted on.
    pub cutoffs: usize,
    /// Scorings fitted on.
    pub scorings: usize,
    /// Leavers among them.
    pub events: usize,
    /// The model on every cut-off, or `None` below [`MIN_EVENTS`] leavers.
    pub model: Option<Model>,
    /// Out of time, on the cut-offs where enough earlier history existed: the default weights'
    /// figures, then the fitted ones'.
    pub compared: Option<(Figures, Figures)>,
}

/// How much higher than the default weights' a fitted model's AUC must be, out of time, for
/// `hspq churn fit` to store it, at least (more where chance alone could move it that far; its
/// lift must be no lower either).
pub const MARGIN: f64 = 0.01;

/// Leavers a fit must have been tested on, out of time, to be stored.
pub const MIN_TEST_EVENTS: usize = 10;

impl Fit {
    /// Whether the fit is stored: it beats the default weights out of time, on cut-offs after
    /// those it was fitted on, by [`MARGIN`] of AUC or twice the standard error of the
    /// difference, whichever is more, and no loss of lift. `Ok` says by how much,
    /// `Err` why not.
    pub fn judged(&self) -> Result<String, String> {
        let (Some(_), Some((default, fitted))) = (&self.model, &self.compared) else {
            return Err(match self.model {
                None => format!(
                    "{} leavers at {} cut-offs, fitting needs {MIN_EVENTS}",
                    self.events, self.cutoffs
                ),
                Some(_) => format!(
                    "fitted on {} leavers at {} cut-offs, but too little history to test it out \
                     of time (it needs {MIN_EVENTS} leavers a horizon before a cut-off)",
                    self.events, self.cutoffs
                ),
            });
        };
        let figures = format!(
            "fitted on {} leavers at {} cut-offs; out of time, AUC {:.3} against {:.3} with the \
             default weights, lift {:.2} against {:.2}",
            self.events, self.cutoffs, fitted.auc, default.auc, fitted.lift, default.lift
        );
        if fitted.events < MIN_TEST_EVENTS {
            return Err(format!(
                "fitted on {} leavers at {} cut-offs; out of time only {} leavers to test it on, \
                 too few to tell whether it beats the default weights (it needs {MIN_TEST_EVENTS})",
                self.events, self.cutoffs, fitted.events
            ));
        }
        // Higher by more than chance moves two AUCs apart (two standard errors of the
        // difference, taken as independent: a strict bar), and by MARGIN at least.
        let bar = MARGIN.max(2.0 * (fitted.auc_se().powi(2) + default.auc_se().powi(2)).sqrt());
        if fitted.auc >= default.auc + bar && fitted.lift >= default.lift {
            Ok(figures)
        } else {
            Err(format!(
                "{figures}: not better by the margin stored weights need (AUC {bar:.3} higher, \
                 twice what chance moves it, and lift no lower)"
            ))
        }
    }
}

/// Every past scoring of the lake, by report type and set of components.
fn scorings(
    engine: &Engine,
    sql: &str,
    opts: &FitOptions,
    names: &[&str],
) -> Result<BTreeMap<(String, String), Vec<Scoring>>, ChurnError> {
    let mut stmt = engine.connection().prepare(sql)?;
    let mut groups: BTreeMap<(String, String), Vec<Scoring>> = BTreeMap::new();
    let mut rows = stmt.query([opts.report_type.as_deref()])?;
    while let Some(row) = rows.next()? {
        let components: String = row.get(1)?;
        let width = if components.contains("engagement") {
            names.len()
        } else {
            BASE.len()
        };
        let mut values = Vec::with_capacity(width);
        for i in 0..width {
            values.push(row.get::<_, Option<f64>>(4 + i)?.unwrap_or(0.0));
        }
        let cutoff: String = row.get(2)?;
        let scoring = Scoring {
            cutoff: cutoff.parse()?,
            security_center_id: row.get(3)?,
            values,
            default_score: row.get(4 + names.len())?,
            units_at_risk: row.get(5 + names.len())?,
            leaves: row.get(6 + names.len())?,
        };
        groups
            .entry((row.get(0)?, components))
            .or_default()
            .push(scoring);
    }
    Ok(groups)
}

/// Loads the lake's past scorings and fits every report type and set of components in it.
pub fn fit(engine: &Engine, opts: &FitOptions) -> Result<Vec<Fit>, ChurnError> {
    let names: Vec<&str> = BASE.iter().chain(&ENGAGEMENT).copied().collect();
    let sql = format!(
        "SELECT report_type, components, CAST(cutoff AS VARCHAR), security_center_id, {}, \
                default_score, units_at_risk, leaves \
         FROM churn_labels({}, {}, ?) ORDER BY report_type, components, cutoff, security_center_id",
        names.join(", "),
        opts.horizon_days,
        opts.window_days
    );
    let groups = engine.reading(|| scorings(engine, &sql, opts, &names))?;
    let horizon = chrono::Days::new(opts.horizon_days.into());
    let mut fits = Vec::new();
    for ((report_type, components), rows) in groups {
        let all: Vec<&Scoring> = rows.iter().collect();
        let model = Model::fit(&all)?;
        let cutoffs: Vec<NaiveDate> = {
            let mut c: Vec<_> = rows.iter().map(|r| r.cutoff).collect();
            c.dedup();
            c
        };
        // Out of time: each cut-off scored by a model of the cut-offs whose leavers were
        // known on it.
        let (mut default, mut fitted) = (Vec::new(), Vec::new());
        for day in &cutoffs {
            let known: Vec<&Scoring> = rows.iter().filter(|r| r.cutoff + horizon <= *day).collect();
            let Some(earlier) = Model::fit(&known)? else {
                continue;
            };
            for r in rows.iter().filter(|r| r.cutoff == *day) {
                default.push((r, r.default_score));
                fitted.push((r, earlier.score(&r.values)));
            }
        }
        let events = |s: &[(&Scoring, f64)]| s.iter().filter(|(r, _)| r.leaves).count();
        let compared = (events(&default) > 0 && events(&default) < default.len()).then(|| {
            (
                Figures::of(&default, opts.top_share),
                Figures::of(&fitted, opts.top_share),
            )
        });
        fits.push(Fit {
            names: names[..rows[0].values.len()].to_vec(),
            cutoffs: cutoffs.len(),
            scorings: rows.len(),
            events: rows.iter().filter(|r| r.leaves).count(),
            report_type,
            components,
            model,
            compared,
        });
    }
    Ok(fits)
}

/// The default weights, by component, as churn_scores has them.
pub fn default_weights(engine: &Engine) -> Result<Vec<(&'static str, f64)>, ChurnError> {
    let names: Vec<&'static str> = BASE.iter().chain(&ENGAGEMENT).copied().collect();
    let sql = format!("SELECT {} FROM churn_default_weights()", names.join(", "));
    let conn = engine.connection();
    let values: Vec<f64> = conn.query_row(&sql, [], |r| {
        (0..names.len()).map(|i| r.get::<_, f64>(i)).collect()
    })?;
    Ok(names.into_iter().zip(values).collect())
}

/// What `hspq churn fit` prints: per report type and set of components, the default and the
/// fitted weights with their out-of-time backtest on the same cut-offs.
pub fn report(fits: &[Fit], defaults: &[(&str, f64)]) -> Result<RecordBatch, ChurnError> {
    let mut rows: Vec<(&Fit, &str, String, Option<Figures>)> = Vec::new();
    for fit in fits {
        let default: Vec<String> = fit
            .names
            .iter()
            .filter_map(|n| defaults.iter().find(|(d, _)| d == n))
            .map(|(n, w)| format!("{n} {w}"))
            .collect();
        rows.push((
            fit,
            "default",
            default.join(", "),
            fit.compared.map(|c| c.0),
        ));
        if let Some(model) = &fit.model {
            let fitted: Vec<String> = std::iter::once(format!("intercept {:.2}", model.intercept))
                .chain(
                    fit.names
                        .iter()
                        .zip(&model.weights)
                        .map(|(n, w)| format!("{n} {w:.2}")),
                )
                .collect();
            rows.push((fit, "fitted", fitted.join(", "), fit.compared.map(|c| c.1)));
        }
    }
    let figure = |f: fn(&Figures) -> f64, digits: i32| -> ArrayRef {
        let unit = 10f64.powi(digits);
        Arc::new(Float64Array::from_iter(
            rows.iter()
                .map(|r| r.3.as_ref().map(|x| (f(x) * unit).round() / unit)),
        ))
    };
    let count = |f: fn(&Figures) -> usize| -> ArrayRef {
        Arc::new(Int64Array::from_iter(
            rows.iter().map(|r| r.3.as_ref().map(|x| f(x) as i64)),
        ))
    };
    let schema = Arc::new(Schema::new(vec![
        Field::new("report_type", DataType::Utf8, false),
        Field::new("components", DataType::Utf8, false),
        Field::new("weights", DataType::Utf8, false),
        Field::new("auc", DataType::Float64, true),
        Field::new("precision_at_k", DataType::Float64, true),
        Field::new("recall_at_k", DataType::Float64, true),
        Field::new("lift", DataType::Float64, true),
        Field::new("tested_cutoffs", DataType::Int64, true),
        Field::new("tested_events", DataType::Int64, true),
        Field::new("fitted_on_events", DataType::Int64, true),
        Field::new("model", DataType::Utf8, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.0.report_type.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.0.components.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
        figure(|f| f.auc, 4),
        figure(|f| f.precision, 4),
        figure(|f| f.recall, 4),
        figure(|f| f.lift, 2),
        count(|f| f.cutoffs),
        count(|f| f.events),
        Arc::new(Int64Array::from_iter(
            rows.iter()
                .map(|r| (r.1 == "fitted").then_some(r.0.events as i64)),
        )),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.2.as_str()),
        )),
    ];
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// The weights as a `churn_weights` batch of one report type: a row per component and one for
/// the intercept, for every fit of it that has a model.
fn weights_batch(
    report_type: &str,
    fits: &[&Fit],
    opts: &FitOptions,
) -> Result<RecordBatch, ChurnError> {
    let mut rows: Vec<(&str, &str, f64, &Fit)> = Vec::new();
    for fit in fits {
        if let Some(model) = &fit.model {
            rows.push((&fit.components, "intercept", model.intercept, fit));
            for (name, w) in fit.names.iter().zip(&model.weights) {
                rows.push((&fit.components, name, *w, fit));
            }
        }
    }
    let n = rows.len();
    let now = chrono::Utc::now().timestamp_micros();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![report_type; n])),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.2))),
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| r.3.events as i64),
        )),
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| r.3.scorings as i64),
        )),
        Arc::new(Int32Array::from_iter_values(
            rows.iter().map(|r| r.3.cutoffs as i32),
        )),
        Arc::new(Int32Array::from_value(opts.horizon_days as i32, n)),
        Arc::new(Int32Array::from_value(opts.window_days as i32, n)),
        Arc::new(TimestampMicrosecondArray::from_value(now, n).with_timezone("UTC")),
        Arc::new(StringArray::from(vec![None::<&str>; n])),
    ];
    Ok(RecordBatch::try_new(
        Dataset::ChurnWeights.schema(),
        columns,
    )?)
}

/// The lake taken by a fit that stores its weights: the writer transaction every writer goes
/// through (the lease, `--lock-ttl` and `--retention`, and [`LakeWriter::finish`]).
pub struct Writer {
    lake: Lake,
    writer: LakeWriter,
    run_id: String,
}

impl Writer {
    /// Takes the lake, or says which sync holds it.
    pub async fn take(location: &LakeLocation, opts: WriterOptions) -> Result<Writer, ChurnError> {
        let lake = Lake::open(location)?;
        let run_id = format!(
            "churn-fit-{}",
            chrono::Utc::now().format("%Y%m%dT%H%M%S%3fZ")
        );
        let writer = LakeWriter::acquire(&lake, &run_id, opts).await?;
        Ok(Writer {
            lake,
            writer,
            run_id,
        })
    }

    /// Commits the fitted weights of every report type in `fits` to the lake, replacing the
    /// ones stored before for it; a report type without a model goes back to the default
    /// weights. With no fits, `reset` names the report types whose stored weights to drop.
    pub async fn store(
        &self,
        fits: &[Fit],
        reset: &[String],
        opts: &FitOptions,
    ) -> Result<(), ChurnError> {
        let mut report_types: Vec<&str> = fits.iter().map(|f| f.report_type.as_str()).collect();
        report_types.extend(reset.iter().map(String::as_str));
        report_types.dedup();
        let mut written = Vec::new();
        for rt in report_types {
            let mine: Vec<&Fit> = fits.iter().filter(|f| f.report_type == rt).collect();
            let partition = Partition::report(Dataset::ChurnWeights, rt);
            let mut files = PartitionWriter::new(&self.lake, partition, self.writer.names());
            let batch = weights_batch(rt, &mine, opts)?;
            if batch.num_rows() > 0 {
                files.push(batch).await?;
            }
            written.push(files.finish().await?);
        }
        let run_id = &self.run_id;
        self.writer
            .commit(|m| {
                for (partition, files) in &written {
                    m.replace(partition, files, run_id);
                }
            })
            .await?;
        Ok(())
    }

    /// Gives the lake back (see [`LakeWriter::finish`]).
    pub async fn finish(&self, ending: Ending) -> Result<CleanUp, LakeError> {
        self.writer.finish(ending).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scoring(day: u32, id: &str, x: f64, leaves: bool) -> Scoring {
        Scoring {
            cutoff: NaiveDate::from_ymd_opt(2026, 1, day).unwrap(),
            security_center_id: id.into(),
            values: vec![x],
            default_score: x,
            units_at_risk: 0,
            leaves,
        }
    }

    #[test]
    fn figures_count_ties_half_and_flag_the_top_of_each_cutoff() {
        let rows = [
            scoring(1, "a", 0.9, true),
            scoring(1, "b", 0.5, false),
            scoring(1, "c", 0.5, true),
            scoring(1, "d", 0.1, false),
            scoring(2, "a", 0.2, false),
            scoring(2, "b", 0.8, true),
        ];
        let pairs: Vec<(&Scoring, f64)> = rows.iter().map(|r| (r, r.values[0])).collect();
        let f = Figures::of(&pairs, 0.5);
        // Leavers 0.9, 0.5, 0.8 against stayers 0.5, 0.1, 0.2: 8.5 of 9 pairs.
        assert!((f.auc - 8.5 / 9.0).abs() < 1e-12, "{f:?}");
        // Top half: a (leaves) and b or c (tied, b first by id: stays) on day 1; b on day 2.
        assert_eq!((f.cutoffs, f.scored, f.events), (2, 6, 3));
        assert!((f.precision - 2.0 / 3.0).abs() < 1e-12);
        assert!((f.recall - 2.0 / 3.0).abs() < 1e-12);
        assert!((f.lift - (2.0 / 3.0) / 0.5).abs() < 1e-12);
    }

    #[test]
    fn the_auc_standard_error_is_hanley_and_mcneils() {
        // Their formula by hand: AUC 0.8 with 50 of each, (0.16 + 49 (0.6667 - 0.64) + 49
        // (0.7111 - 0.64)) / 2500 = 0.00198, so 0.0445; more cases, less.
        let f = |auc, events, scored| Figures {
            auc,
            events,
            scored,
            ..Figures::default()
        };
        assert!((f(0.8, 50, 100).auc_se() - 0.0445).abs() < 0.0005);
        assert!(f(0.8, 500, 1000).auc_se() < f(0.8, 50, 100).auc_se() / 3.0);
        assert!(f(0.5, 150, 10_150).auc_se() > 0.02);
    }

    #[test]
    fn a_fit_is_stored_only_when_it_beats_the_default_by_more_than_chance() {
        let figures = |auc, lift, events| Figures {
            cutoffs: 6,
            scored: 10_000,
            events,
            auc,
            lift,
            ..Figures::default()
        };
        let fit = |default: Figures, fitted: Figures| Fit {
            report_type: "mssp".into(),
            components: "usage, billing".into(),
            names: BASE.to_vec(),
            cutoffs: 17,
            scorings: 20_000,
            events: 300,
            model: Some(Model {
                intercept: -4.0,
                weights: vec![1.0, 1.0, 1.0],
            }),
            compared: Some((default, fitted)),
        };
        // Clearly better on 200 leavers: stored.
        assert!(fit(figures(0.70, 4.0, 200), figures(0.78, 4.5, 200))
            .judged()
            .is_ok());
        // Better by 0.03 of AUC on 200 leavers: within what chance does (about 0.05 here).
        let within = fit(figures(0.70, 4.0, 200), figures(0.73, 4.5, 200)).judged();
        assert!(
            within
                .as_ref()
                .is_err_and(|w| w.contains("twice what chance")),
            "{within:?}"
        );
        // Better overall, worse at the top: not stored.
        assert!(fit(figures(0.70, 4.0, 200), figures(0.80, 3.9, 200))
            .judged()
            .is_err());
        // Too few leavers out of time to tell.
        let few = fit(figures(0.70, 4.0, 9), figures(0.90, 9.0, 9)).judged();
        assert!(
            few.as_ref().is_err_and(|w| w.contains("too few")),
            "{few:?}"
        );
    }

    #[test]
    fn a_fit_needs_enough_leavers_and_learns_which_way_a_component_points() {
        // Leaving gets likelier as x grows.
        let rows: Vec<Scoring> = (0..600)
            .map(|i| {
                let x = (i % 100) as f64 / 100.0;
                scoring(
                    1,
                    &format!("c{i}"),
                    x,
                    (i * 7919) % 100 < (x * 30.0) as usize,
                )
            })
            .collect();
        let all: Vec<&Scoring> = rows.iter().collect();
        let model = Model::fit(&all).unwrap().expect("enough leavers");
        assert!(model.weights[0] > 1.0, "{model:?}");
        assert!(model.score(&[0.9]) > model.score(&[0.1]));
        let few: Vec<&Scoring> = all
            .iter()
            .copied()
            .filter(|r| !r.leaves)
            .chain(
                all.iter()
                    .copied()
                    .filter(|r| r.leaves)
                    .take(MIN_EVENTS - 1),
            )
            .collect();
        assert_eq!(Model::fit(&few).unwrap(), None);
    }

    #[test]
    fn a_fit_is_the_optimum_of_the_penalised_loss() {
        // Two components, one pointing to leaving and one away, and noise.
        let rows: Vec<Scoring> = (0..2000)
            .map(|i| {
                let (a, b) = ((i % 37) as f64 / 37.0, (i % 23) as f64 / 23.0);
                let chance = 1.0 / (1.0 + (-(3.0 * a - 2.0 * b - 1.0)).exp());
                let mut s = scoring(
                    1,
                    &format!("c{i}"),
                    a,
                    ((i * 7919) % 1000) as f64 / 1000.0 < chance,
                );
                s.values.push(b);
                s
            })
            .collect();
        let all: Vec<&Scoring> = rows.iter().collect();
        let model = Model::fit(&all).unwrap().expect("enough leavers");
        let mut beta = model.weights.clone();
        beta.push(model.intercept);
        // The component pointing away is held at zero; the rest is the optimum: the gradient
        // vanishes on the free coordinates, and would push the held one below zero.
        assert!(
            model.weights[0] > 1.5 && model.weights[1] == 0.0,
            "{model:?}"
        );
        let (gradient, _) = derivatives(&all, &beta);
        assert!(
            gradient[0].abs() < 1e-6 && gradient[2].abs() < 1e-6 && gradient[1] > 0.0,
            "{gradient:?}"
        );
        // Every nudge that keeps the weights at least zero costs.
        let best = penalised_loss(&all, &beta);
        for i in 0..beta.len() {
            for d in [-1e-3, 1e-3] {
                let mut nudged = beta.clone();
                nudged[i] += d;
                if i < model.weights.len() && nudged[i] < 0.0 {
                    continue;
                }
                assert!(penalised_loss(&all, &nudged) > best);
            }
        }
        assert_eq!(
            solve(vec![vec![1.0, 2.0], vec![2.0, 4.0]], vec![1.0, 2.0]),
            None
        );
    }
}

//! `hspq report`: one self-contained HTML file with the billing and churn picture: billing per
//! product and period, the biggest movers, the churn list with reasons and units at risk, the
//! churn backtest, the reconciliation findings and the lake's freshness.
//!
//! Every number comes from a bundled query, run as `hspq query` runs it (rows read back from
//! its `--format json`), so a chart and `hspq query NAME` agree. Charts are inline SVG
//! (svg.rs): the file needs nothing from the network, prints, and has no script.

mod svg;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use serde_json::{Map, Value};

pub use crate::config::ReportOptions;
use crate::query::bundled;
use crate::query::status::LakeStatus;
use crate::query::{Engine, QueryError};
use svg::{escape, number, Bar, Point, Series};

type Row = Map<String, Value>;

/// Companies in the movers, per report type.
const MOVERS: usize = 10;

/// A bundled query's rows.
fn rows(engine: &Engine, name: &str, params: &[(&str, String)]) -> Result<Vec<Row>, QueryError> {
    let given: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    bundled::find(name)?.json_rows(engine, &given)
}

fn text(row: &Row, column: &str) -> String {
    match row.get(column) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

fn num(row: &Row, column: &str) -> Option<f64> {
    match row.get(column) {
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    }
}

/// A cell: the number grouped for people, or the text escaped.
fn cell(row: &Row, column: &str, decimals: usize) -> String {
    match row.get(column) {
        Some(Value::Number(n)) => number(n.as_f64().unwrap_or_default(), decimals),
        _ => escape(&text(row, column)),
    }
}

/// An HTML table of `rows` with `columns` as (column, heading, decimals).
fn table(rows: &[&Row], columns: &[(&str, &str, usize)]) -> String {
    let mut html = String::from("<table><thead><tr>");
    for (_, heading, _) in columns {
        let _ = write!(html, "<th>{}</th>", escape(heading));
    }
    html.push_str("</tr></thead><tbody>");
    for row in rows {
        html.push_str("<tr>");
        for (column, _, decimals) in columns {
            let class = if matches!(row.get(*column), Some(Value::Number(_))) {
                r#" class="n""#
            } else {
                ""
            };
            let _ = write!(html, "<td{class}>{}</td>", cell(row, column, *decimals));
        }
        html.push_str("</tr>");
    }
    html.push_str("</tbody></table>");
    html
}

fn attr(name: &str, value: &str) -> String {
    format!(r#"data-{name}="{}""#, escape(value))
}

/// The report as one HTML document.
pub fn render(engine: &Engine, lake: &str, opts: &ReportOptions) -> Result<String, QueryError> {
    let status = LakeStatus::read(engine, lake)?;
    let mut filter: Vec<(&str, String)> = Vec::new();
    if let Some(rt) = &opts.report_type {
        filter.push(("report_type", rt.clone()));
    }
    let mut trend_params = filter.clone();
    if let Some(n) = opts.periods {
        trend_params.push(("periods", n.to_string()));
    }
    let trend = rows(engine, "billing_trend", &trend_params)?;
    let mut movers_params = filter.clone();
    movers_params.push(("top", MOVERS.to_string()));
    let movers = rows(engine, "billing_movers", &movers_params)?;
    let risk: Vec<Row> = rows(engine, "churn_risk", &[])?
        .into_iter()
        .filter(|r| {
            opts.report_type
                .as_ref()
                .is_none_or(|rt| text(r, "report_type") == *rt)
        })
        .collect();
    let backtest = rows(engine, "churn_backtest", &filter)?;
    let findings = rows(engine, "billing_reconciliation", &filter)?;
    let cohorts = rows(engine, "retention_cohorts", &filter)?;

    let mut body = String::new();
    body.push_str(&freshness(&status));
    body.push_str(&billing(&trend));
    body.push_str(&movers_section(&movers));
    body.push_str(&churn(&risk, opts.top));
    body.push_str(&backtest_section(&backtest));
    body.push_str(&retention(&cohorts));
    body.push_str(&reconciliation(&findings));
    let scope = opts
        .report_type
        .as_deref()
        .map_or("MSSP and reseller".to_string(), |rt| rt.to_uppercase());
    Ok(format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>hspq report: {lake}</title>
<style>{STYLE}</style></head>
<body><header><h1>Billing and churn</h1>
<p class="sub">{scope} · lake {lake} · made {made} by hspq {version}</p></header>
{body}
<footer>Every number here is a bundled query's: <code>hspq query billing_trend</code>,
<code>billing_movers</code>, <code>churn_risk</code>, <code>churn_backtest</code>,
<code>retention_cohorts</code>, <code>billing_reconciliation</code> give the same rows.</footer>
</body></html>
"#,
        lake = escape(&format!("{lake}{}", status.version_shown())),
        made = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        version = env!("CARGO_PKG_VERSION"),
    ))
}

const STYLE: &str = "
body { font: 14px/1.45 system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; color: #222;
  max-width: 1000px; margin: 0 auto; padding: 1.5em; }
h1 { font-size: 1.6em; margin: 0; } h2 { font-size: 1.2em; margin: 1.6em 0 0.4em;
  border-bottom: 1px solid #ddd; padding-bottom: 0.2em; } h3 { font-size: 1em; margin: 1em 0 0.3em; }
.sub, .note, footer { color: #666; } footer { margin-top: 2em; font-size: 0.9em; }
table { border-collapse: collapse; width: 100%; font-size: 0.92em; margin: 0.4em 0 1em; }
th, td { text-align: left; padding: 3px 8px; border-bottom: 1px solid #eee; vertical-align: top; }
th { background: #f6f6f6; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
.chart { width: 100%; height: auto; } .chart .tick, .chart .legend, .chart .value { font-size: 11px; fill: #555; }
.chart .axis { font-size: 12px; fill: #444; }
.facts { display: flex; flex-wrap: wrap; gap: 0.6em 2em; } .facts div b { display: block; font-size: 1.3em; }
.warn { color: #b3261e; }
.grid { display: grid; grid-template-columns: 1fr 1fr; gap: 0 1.5em; }
figure { margin: 0; } figcaption { font-weight: 600; font-size: 0.95em; }
@media print { body { max-width: none; padding: 0; } section { break-inside: avoid-page; } }
";

fn freshness(status: &LakeStatus) -> String {
    let mut html = String::from(r#"<section id="freshness"><h2>Freshness</h2><div class="facts">"#);
    match &status.last_success {
        Some(s) => {
            let age =
                crate::duration::human(std::time::Duration::from_secs(s.age_seconds.unwrap_or(0)));
            let _ = write!(
                html,
                "<div><b>{} ago</b>last successful sync, {}</div>",
                escape(&age),
                escape(&s.finished_at)
            );
        }
        None => html.push_str("<div><b>never</b>synced successfully</div>"),
    }
    for r in &status.reports {
        let _ = write!(
            html,
            "<div><b>{} to {}</b>{} periods of {} ({} closed)</div>",
            escape(&r.first),
            escape(&r.last),
            r.periods,
            escape(&r.report_type),
            r.closed
        );
    }
    html.push_str("</div>");
    if let Some(f) = &status.last_failure {
        let _ = write!(
            html,
            r#"<p class="warn">Last {} run {} at {}: {}</p>"#,
            escape(&f.status),
            escape(&f.run_id),
            escape(&f.started_at),
            escape(&f.error)
        );
    }
    if let Some(h) = &status.sync_running {
        let _ = write!(
            html,
            r#"<p class="note">A sync (run {}) held the lake while this was made; its changes are not in it yet.</p>"#,
            escape(&h.run_id)
        );
    }
    html.push_str("</section>");
    html
}

fn billing(trend: &[Row]) -> String {
    let mut html = String::from(r#"<section id="billing"><h2>Billing per product and period</h2>"#);
    if trend.is_empty() {
        html.push_str(r#"<p class="note">No billing in the lake yet: run <code>hspq ingest</code>.</p></section>"#);
        return html;
    }
    let mut by_type: BTreeMap<String, Vec<&Row>> = BTreeMap::new();
    for r in trend {
        by_type.entry(text(r, "report_type")).or_default().push(r);
    }
    for (report_type, rows) in &by_type {
        let label = |r: &Row| format!("{}-{}", text(r, "year"), text(r, "period"));
        let periods: Vec<String> = rows
            .iter()
            .map(|r| label(r))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let products: BTreeSet<String> = rows.iter().map(|r| text(r, "product")).collect();
        // One chart per product: their units differ by orders of magnitude (PAT's assets
        // against CS's), so on one axis all but the largest would lie flat.
        let _ = write!(
            html,
            r#"<h3>{}</h3><div class="grid">"#,
            escape(&report_type.to_uppercase())
        );
        for product in &products {
            let points = periods
                .iter()
                .map(|p| {
                    rows.iter()
                        .find(|r| &text(r, "product") == product && &label(r) == p)
                        .and_then(|r| {
                            Some(Point {
                                value: num(r, "billing_total")?,
                                attrs: [
                                    attr("report-type", report_type),
                                    attr("product", product),
                                    attr("period", p),
                                ]
                                .join(" "),
                                hollow: r.get("is_partial") == Some(&Value::Bool(true)),
                            })
                        })
                })
                .collect();
            let _ = write!(
                html,
                "<figure><figcaption>{}</figcaption>{}</figure>",
                escape(product),
                svg::line_chart(
                    &format!("billing-{report_type}-{product}"),
                    &format!("{report_type} {product} billing per period"),
                    "billing units",
                    svg::HALF,
                    &periods,
                    &[Series {
                        name: product.clone(),
                        points,
                    }],
                )
            );
        }
        html.push_str("</div>");
        let last = periods.last().cloned().unwrap_or_default();
        let latest: Vec<&Row> = rows.iter().copied().filter(|r| label(r) == last).collect();
        let _ = write!(
            html,
            r#"<p class="note">Hollow points: a period still open. Period {}:</p>{}"#,
            escape(&last),
            table(
                &latest,
                &[
                    ("product", "product", 0),
                    ("billing_total", "billing units", 0),
                    ("companies", "companies", 0),
                    ("change", "change", 0),
                    ("change_pct", "change %", 1),
                ]
            )
        );
    }
    html.push_str("</section>");
    html
}

fn movers_section(movers: &[Row]) -> String {
    let mut html = String::from(r#"<section id="movers"><h2>Biggest movers</h2>"#);
    if movers.is_empty() {
        html.push_str(r#"<p class="note">Fewer than two closed periods: nothing to compare yet.</p></section>"#);
        return html;
    }
    let mut by_type: BTreeMap<String, Vec<&Row>> = BTreeMap::new();
    for r in movers {
        by_type.entry(text(r, "report_type")).or_default().push(r);
    }
    for (report_type, rows) in by_type {
        let _ = write!(
            html,
            "<h3>{}: {} to {}</h3>{}",
            escape(&report_type.to_uppercase()),
            escape(&text(rows[0], "from_period")),
            escape(&text(rows[0], "to_period")),
            table(
                &rows,
                &[
                    ("company_name", "company", 0),
                    ("security_center_id", "id", 0),
                    ("billing_before", "before", 0),
                    ("billing_after", "after", 0),
                    ("change", "change", 0),
                    ("change_pct", "change %", 1),
                ]
            )
        );
    }
    html.push_str("</section>");
    html
}

fn churn(risk: &[Row], top: usize) -> String {
    let mut html = String::from(r#"<section id="churn"><h2>Churn risk</h2>"#);
    if risk.is_empty() {
        html.push_str(
            r#"<p class="note">No company was active on the last report day.</p></section>"#,
        );
        return html;
    }
    let shown: Vec<&Row> = risk.iter().take(top).collect();
    let at_risk: f64 = shown.iter().filter_map(|r| num(r, "units_at_risk")).sum();
    let _ = write!(
        html,
        r#"<div class="facts"><div><b>{}</b>companies scored, as of {}</div><div><b>{}</b>billing units at risk in the top {}</div><div><b>{}</b>weights</div></div>"#,
        number(risk.len() as f64, 0),
        escape(&text(&risk[0], "as_of")),
        number(at_risk, 0),
        shown.len(),
        escape(&text(&risk[0], "weights"))
    );
    html.push_str(&table(
        &shown,
        &[
            ("rank", "#", 0),
            ("company_name", "company", 0),
            ("report_type", "report", 0),
            ("score", "score", 1),
            ("units_at_risk", "units at risk", 0),
            ("units_by_product", "by product", 0),
            ("reasons", "reasons", 0),
        ],
    ));
    html.push_str("</section>");
    html
}

fn backtest_section(backtest: &[Row]) -> String {
    let mut html = String::from(
        r#"<section id="backtest"><h2>Churn backtest</h2><p class="note">Scores at past cut-offs (data up to each only) against who left within the horizon after: the top share flagged at each cut-off, next to the naive rule (all usage, the last 28 days against the 28 before).</p>"#,
    );
    if backtest.is_empty() {
        html.push_str(r#"<p class="note">No cut-off has a horizon that ended inside the lake's history yet: the backtest needs more synced history.</p></section>"#);
        return html;
    }
    for (metric, heading, label) in [
        (
            "lift",
            "Lift in the top k (precision over the base rate)",
            "lift",
        ),
        ("precision_at_k", "Precision in the top k", "precision"),
    ] {
        let mut groups: BTreeMap<String, Vec<Bar>> = BTreeMap::new();
        for r in backtest {
            let Some(value) = num(r, metric) else {
                continue;
            };
            let (report_type, model) = (text(r, "report_type"), text(r, "model"));
            groups.entry(report_type.clone()).or_default().push(Bar {
                label: model.clone(),
                value,
                attrs: [
                    attr("report-type", &report_type),
                    attr("model", &model),
                    attr("metric", metric),
                ]
                .join(" "),
            });
        }
        let groups: Vec<(String, Vec<Bar>)> = groups.into_iter().collect();
        let _ = write!(
            html,
            "<h3>{}</h3>{}",
            escape(heading),
            svg::bar_chart(&format!("backtest-{metric}"), heading, label, &groups)
        );
    }
    let all: Vec<&Row> = backtest.iter().collect();
    html.push_str(&table(
        &all,
        &[
            ("report_type", "report", 0),
            ("model", "model", 0),
            ("cutoffs", "cut-offs", 0),
            ("scored", "scored", 0),
            ("events", "leavers", 0),
            ("base_rate", "base rate", 4),
            ("auc", "AUC", 3),
            ("precision_at_k", "precision", 3),
            ("recall_at_k", "recall", 3),
            ("lift", "lift", 2),
        ],
    ));
    // One warning per report type (both models share the leavers).
    let mut warned = BTreeSet::new();
    for r in backtest {
        let note = text(r, "note");
        if !note.is_empty() && warned.insert(text(r, "report_type")) {
            let _ = write!(
                html,
                r#"<p class="note warn">{}: {}</p>"#,
                escape(&text(r, "report_type")),
                escape(&note)
            );
        }
    }
    html.push_str("</section>");
    html
}

/// The months after which `retention_cohorts` tells who is still there.
const RETENTION_MONTHS: [u32; 4] = [1, 3, 6, 12];

/// Retention by cohort as a heat table: each cell the share still there after so many months,
/// shaded from red (none) to green (all).
fn retention(cohorts: &[Row]) -> String {
    let mut html = String::from(
        r#"<section id="retention"><h2>Retention by cohort</h2><p class="note">Companies and customers by the month they first appeared (after the lake's first period), and the share still there after 1, 3, 6 and 12 months: a leaving is a churn event (a pause is none); those still there, or gone too recently to tell, count for as long as they were seen (Kaplan–Meier). Blank: nobody seen that long yet.</p>"#,
    );
    if cohorts.is_empty() {
        html.push_str(r#"<p class="note">No cohort yet: every company in the lake was there in its first period (reseller cohorts need syncs on several days).</p></section>"#);
        return html;
    }
    html.push_str(
        "<table><thead><tr><th>report</th><th>cohort</th><th>companies</th><th>left</th>",
    );
    for m in RETENTION_MONTHS {
        let _ = write!(html, "<th>after {m} mo.</th>");
    }
    html.push_str("<th>median life</th></tr></thead><tbody>");
    for r in cohorts {
        let (report_type, cohort) = (text(r, "report_type"), text(r, "cohort"));
        let _ = write!(
            html,
            r#"<tr><td>{}</td><td>{}</td><td class="n">{}</td><td class="n">{}</td>"#,
            escape(&report_type),
            escape(&cohort),
            cell(r, "companies", 0),
            cell(r, "left", 0)
        );
        for m in RETENTION_MONTHS {
            let column = format!("still_after_{m}m_pct");
            match num(r, &column) {
                Some(pct) => {
                    // Hue 0 (red) at none still there, 120 (green) at all.
                    let _ = write!(
                        html,
                        r#"<td class="cohort n" {} {} {} {} style="background: hsl({:.0}, 55%, 85%)">{}%</td>"#,
                        attr("report-type", &report_type),
                        attr("cohort", &cohort),
                        attr("months", &m.to_string()),
                        attr("value", &text(r, &column)),
                        1.2 * pct.clamp(0.0, 100.0),
                        number(pct, 1)
                    );
                }
                None => html.push_str("<td></td>"),
            }
        }
        let median = match num(r, "median_months") {
            Some(m) => format!("{} mo.", number(m, 0)),
            None => String::new(),
        };
        let _ = write!(html, r#"<td class="n">{median}</td></tr>"#);
    }
    html.push_str("</tbody></table></section>");
    html
}

fn reconciliation(findings: &[Row]) -> String {
    let mut html = String::from(r#"<section id="reconciliation"><h2>Reconciliation</h2>"#);
    if findings.is_empty() {
        html.push_str(r#"<p class="note">No disagreements: billing follows the API's own rules in every period held.</p></section>"#);
        return html;
    }
    let mut counts: BTreeMap<(String, String), usize> = BTreeMap::new();
    for r in findings {
        *counts
            .entry((text(r, "report_type"), text(r, "finding")))
            .or_default() += 1;
    }
    html.push_str(
        "<table><thead><tr><th>report</th><th>finding</th><th>rows</th></tr></thead><tbody>",
    );
    for ((report_type, finding), n) in &counts {
        let _ = write!(
            html,
            r#"<tr><td>{}</td><td>{}</td><td class="n">{}</td></tr>"#,
            escape(report_type),
            escape(finding),
            number(*n as f64, 0)
        );
    }
    html.push_str("</tbody></table>");
    let first: Vec<&Row> = findings.iter().take(20).collect();
    let _ = write!(
        html,
        r#"<p class="note">The first {} of {} (all: <code>hspq query billing_reconciliation</code>):</p>{}"#,
        first.len(),
        findings.len(),
        table(
            &first,
            &[
                ("report_type", "report", 0),
                ("year", "year", 0),
                ("period", "period", 0),
                ("finding", "finding", 0),
                ("product", "product", 0),
                ("security_center_id", "id", 0),
                ("expected", "expected", 0),
                ("actual", "actual", 0),
                ("detail", "detail", 0),
            ]
        )
    );
    html.push_str("</section>");
    html
}

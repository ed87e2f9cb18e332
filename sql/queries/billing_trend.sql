-- name: billing_trend
-- description: Billing totals per product and period, with the change from the period before.
-- param: report_type VARCHAR = NULL | mssp or reseller; both when left out
-- param: periods INTEGER = NULL | only the latest N periods of each report type; all when left out
-- Billing is the sum of the per-company billing values of each period (the rule the API states
-- for MSSP totals); NULL values (product not enabled) are left out. The change is taken before
-- `periods` cuts, so the first period shown has one too.
with totals as (
    select report_type, year, period, any_value(period_from) as period_from, any_value(is_partial) as is_partial,
           product, cast(sum(billing_value) as bigint) as billing_total,
           count(billing_value) as companies
    from billing
    where $report_type is null or report_type = $report_type
    group by report_type, year, period, product
),
trend as (
    select report_type, year, period, period_from, is_partial, product, billing_total, companies,
           billing_total - lag(billing_total) over w as change,
           round(100.0 * (billing_total - lag(billing_total) over w) / nullif(lag(billing_total) over w, 0), 1) as change_pct,
           dense_rank() over (partition by report_type order by year desc, period desc) as recent
    from totals
    window w as (partition by report_type, product order by year, period)
)
select report_type, year, period, period_from, is_partial, product, billing_total, companies, change, change_pct
from trend
where $periods is null or recent <= $periods
order by report_type, product, year, period;

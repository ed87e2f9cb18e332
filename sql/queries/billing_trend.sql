-- name: billing_trend
-- description: Billing totals per product and period, with the change from the period before.
-- param: report_type VARCHAR = NULL | mssp or reseller; both when left out
-- Billing is the sum of the per-company billing values of each period (the rule the API states
-- for MSSP totals); NULL values (product not enabled) are left out.
with totals as (
    select report_type, year, period, any_value(period_from) as period_from, any_value(is_partial) as is_partial,
           product, cast(sum(billing_value) as bigint) as billing_total,
           count(billing_value) as companies
    from billing
    where $report_type is null or report_type = $report_type
    group by report_type, year, period, product
)
select report_type, year, period, period_from, is_partial, product, billing_total, companies,
       billing_total - lag(billing_total) over w as change,
       round(100.0 * (billing_total - lag(billing_total) over w) / nullif(lag(billing_total) over w, 0), 1) as change_pct
from totals
window w as (partition by report_type, product order by year, period)
order by report_type, product, year, period;

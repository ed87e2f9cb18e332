-- name: billing_movers
-- description: Companies whose billing changed most between two periods (default: the last two closed ones).
-- param: from_period VARCHAR = NULL | the earlier period as YYYY-PP, e.g. 2026-01
-- param: to_period VARCHAR = NULL | the later period as YYYY-PP
-- param: report_type VARCHAR = NULL | mssp or reseller; both when left out
-- param: top INTEGER = 20 | how many companies per report type
with per_company as (
    select report_type, year || '-' || period as label, security_center_id,
           any_value(company_name) as company_name, cast(coalesce(sum(billing_value), 0) as bigint) as billing
    from billing
    where $report_type is null or report_type = $report_type
    group by all
),
closed as (
    select report_type, year || '-' || period as label,
           row_number() over (partition by report_type order by year desc, period desc) as n
    from periods
    where not is_partial
),
chosen as (
    select report_type,
           coalesce($from_period, max(label) filter (where n = 2)) as from_label,
           coalesce($to_period, max(label) filter (where n = 1)) as to_label
    from closed
    group by report_type
),
moves as (
    select c.report_type, c.from_label, c.to_label,
           coalesce(a.security_center_id, b.security_center_id) as security_center_id,
           coalesce(b.company_name, a.company_name) as company_name,
           coalesce(a.billing, 0) as billing_before,
           coalesce(b.billing, 0) as billing_after
    from chosen c
    join per_company a on a.report_type = c.report_type and a.label = c.from_label
    full join per_company b on b.report_type = c.report_type and b.label = c.to_label
                           and b.security_center_id = a.security_center_id
    where coalesce(a.report_type, b.report_type) = c.report_type
)
select report_type, from_label as from_period, to_label as to_period, security_center_id, company_name,
       billing_before, billing_after, billing_after - billing_before as change,
       round(100.0 * (billing_after - billing_before) / nullif(billing_before, 0), 1) as change_pct
from moves
qualify row_number() over (partition by report_type order by abs(billing_after - billing_before) desc, security_center_id) <= cast($top as integer)
order by report_type, abs(change) desc, security_center_id;

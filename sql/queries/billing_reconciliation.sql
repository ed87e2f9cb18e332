-- name: billing_reconciliation
-- description: Checks billing against the API's own rules per report type and lists every disagreement.
-- param: report_type VARCHAR = NULL | mssp or reseller; both when left out
--
-- Findings (one row per disagreement; an empty result means everything agrees):
--   totals_mismatch     MSSP: billing_totals.billing_total differs from the sum of per-company billing values
--   count_mismatch      MSSP: billing_totals company_count / null_company_count differ from the per-company values
--   daily_mismatch      reseller: billing comes from the daily arrays; the per-company reference value
--                       differs from the peak daily usage of the period
--   usage_no_billing    a company has usage in a period but no billing value for that product
--   billing_no_usage    a company has a billing value above 0 but no usage in the period
with per_company as (
    select report_type, year, period, product,
           cast(sum(billing_value) as bigint) as billed, count(billing_value) as with_value,
           count(*) filter (where billing_value is null) as null_values
    from billing group by all
),
usage as (
    select report_type, year, period, security_center_id, product,
           max(usage_value) as peak, cast(sum(usage_value) as bigint) as total
    from daily_usage group by all
),
checks as (
    select t.report_type, t.year, t.period, 'totals_mismatch' as finding, t.product, null as security_center_id,
           t.billing_total as expected, coalesce(p.billed, 0) as actual,
           'billing_total ' || t.billing_total || ' but per-company values sum to ' || coalesce(p.billed, 0) as detail
    from billing_totals t
    left join per_company p using (report_type, year, period, product)
    where t.billing_total is distinct from coalesce(p.billed, 0)
    union all
    select t.report_type, t.year, t.period, 'count_mismatch', t.product, null,
           t.company_count, coalesce(p.with_value, 0),
           'company_count ' || t.company_count || ' but ' || coalesce(p.with_value, 0) || ' companies have a value'
    from billing_totals t
    left join per_company p using (report_type, year, period, product)
    where t.company_count is distinct from coalesce(p.with_value, 0)
    union all
    select b.report_type, b.year, b.period, 'daily_mismatch', b.product, b.security_center_id,
           u.peak, b.billing_value,
           'reference billing_value ' || b.billing_value || ' but the daily arrays peak at ' || u.peak
    from billing b
    join usage u using (report_type, year, period, security_center_id, product)
    where b.report_type = 'reseller' and b.billing_value is distinct from u.peak
    union all
    select u.report_type, u.year, u.period, 'usage_no_billing', u.product, u.security_center_id,
           u.peak, null, 'usage ' || u.total || ' in the period but no billing value'
    from usage u
    left join billing b using (report_type, year, period, security_center_id, product)
    where u.total > 0 and b.billing_value is null
    union all
    select b.report_type, b.year, b.period, 'billing_no_usage', b.product, b.security_center_id,
           null, b.billing_value, 'billing value ' || b.billing_value || ' but no usage in the period'
    from billing b
    left join usage u using (report_type, year, period, security_center_id, product)
    where b.billing_value > 0 and coalesce(u.total, 0) = 0
)
select report_type, year, period, finding, product, security_center_id,
       expected, actual, actual - expected as difference, detail
from checks
where $report_type is null or report_type = $report_type
order by report_type, year, period, finding, product, security_center_id;

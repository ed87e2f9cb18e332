-- name: churn_signals
-- description: Weekly churn signals per customer (usage, scans, failures, scanners, API calls, active days), for one customer or all.
-- param: security_center_id VARCHAR = NULL | one customer's id; all customers when left out
-- param: weeks INTEGER = 12 | how many weeks back from the latest day with data
with as_of as (select coalesce(max(date), current_date) as day from engagement),
days as (
    select e.report_type, e.security_center_id, e.date,
           coalesce(e.sns_scans_succeeded, 0) + coalesce(e.was_scans_succeeded, 0) + coalesce(e.cs_scans_succeeded, 0) as succeeded,
           coalesce(e.sns_scans_failed, 0) + coalesce(e.was_scans_failed, 0) + coalesce(e.cs_scans_failed, 0) as failed,
           coalesce(e.probes_active, 0) as probes_active,
           coalesce(e.probes_inactive, 0) as probes_inactive,
           coalesce(e.api_calls, 0) as api_calls
    from engagement e, as_of a
    where e.date > a.day - 7 * cast($weeks as integer)
      and ($security_center_id is null or e.security_center_id = $security_center_id)
),
usage as (
    select c.report_type, c.security_center_id, date_trunc('week', c.date) as week, sum(c.usage_value) as usage
    from churn c, as_of a
    where c.indicator = 'usage_trend' and c.date > a.day - 7 * cast($weeks as integer)
      and ($security_center_id is null or c.security_center_id = $security_center_id)
    group by all
)
select d.report_type, d.security_center_id, cu.company_name, cast(date_trunc('week', d.date) as date) as week,
       cast(coalesce(any_value(u.usage), 0) as bigint) as usage,
       cast(sum(d.succeeded) as bigint) as scans_succeeded,
       cast(sum(d.failed) as bigint) as scans_failed,
       round(case when sum(d.succeeded + d.failed) > 0 then sum(d.failed) / sum(d.succeeded + d.failed) else 0 end, 3) as failure_ratio,
       round(avg(d.probes_inactive), 2) as avg_probes_inactive,
       cast(sum(d.api_calls) as bigint) as api_calls,
       count(*) filter (where d.succeeded + d.failed + d.api_calls > 0) as active_days
from days d
left join usage u on u.report_type = d.report_type and u.security_center_id = d.security_center_id
                 and u.week = date_trunc('week', d.date)
left join customers cu on cu.report_type = d.report_type and cu.security_center_id = d.security_center_id
group by d.report_type, d.security_center_id, cu.company_name, date_trunc('week', d.date)
order by d.security_center_id, week;

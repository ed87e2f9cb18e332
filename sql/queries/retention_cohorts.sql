-- name: retention_cohorts
-- description: For each cohort (the month companies or customers first appeared, after the lake's first period), the share still there after 1, 3, 6 and 12 months (Kaplan-Meier, so recent cohorts count) and the median lifetime where known.
-- param: report_type VARCHAR = NULL | mssp or reseller; both when left out
--
-- Who and since when: an MSSP company from the first period it was eligible in, a reseller
-- customer from the first sync that listed it (customer_history). Those already there in the
-- lake's first period (or first sync) form no cohort: when they started is not known.
-- Leaving: the first departure churn_departures calls a `leaving` (gone and not back within
-- churn_grace_days()); a pause is not one. A company not gone, or gone too recently to tell
-- (`open`), counts for as long as it was seen: up to the last day the lake knows (the last usage
-- day for MSSP, the last sync for reseller), or until it went.
-- Month t of a company's life runs from its start plus t-1 months to its start plus t months.
-- Still there after k months = the product over t <= k of (1 - left in month t / at risk in
-- month t), where at risk in month t = those that left in month t or later, and those seen
-- through the whole of month t. With nobody seen for fewer than k months, it is the plain share
-- that did not leave in their first k months. NULL where nobody was seen that long.
with known as (
    select * from churn_known_days()
),
starts as (
    select 'mssp' as report_type, c.security_center_id, min(p.period_from) as started_on
    from companies c join periods p using (report_type, year, period)
    where c.report_type = 'mssp'
    group by all
    having min(p.period_from) > (select min(period_from) from periods where report_type = 'mssp')
    union all
    select 'reseller', security_center_id, min(seen_from)
    from customer_history
    where report_type = 'reseller'
    group by all
    having min(seen_from) > (select min(seen_from) from customer_history where report_type = 'reseller')
),
ends as (
    select s.report_type, s.security_center_id, s.started_on,
           min(d.left_on) filter (where d.kind = 'leaving') as left_on,
           min(d.left_on) filter (where d.kind = 'open') as open_on
    from starts s
    left join churn_departures d
           on d.report_type = s.report_type and d.security_center_id = s.security_center_id
          and d.left_on > s.started_on
    where $report_type is null or s.report_type = $report_type
    group by all
),
lives as (
    select e.report_type, strftime(e.started_on, '%Y-%m') as cohort,
           -- The month of its life it left in (gone on its start plus one month: the first).
           case when e.left_on is not null
                then date_sub('month', e.started_on, cast(e.left_on - interval 1 day as date)) + 1 end as left_in,
           -- Whole months it was seen, when it did not leave.
           case when e.left_on is null
                then date_sub('month', e.started_on, coalesce(e.open_on, k.day)) end as seen
    from ends e join known k using (report_type)
),
horizons as (
    select report_type, cohort, greatest(max(left_in), max(seen), 12) as last_month
    from lives group by report_type, cohort
),
months as (
    select report_type, cohort, unnest(generate_series(1, last_month)) as t
    from horizons
),
steps as (
    select m.report_type, m.cohort, m.t,
           count(l.left_in) filter (where l.left_in = m.t) as left_then,
           count(*) filter (where l.left_in >= m.t or l.seen >= m.t) as at_risk
    from months m join lives l using (report_type, cohort)
    group by all
),
survival as (
    select *,
           product(case when at_risk > 0 then 1 - left_then / at_risk else 1 end)
               over (partition by report_type, cohort order by t) as still
    from steps
),
cohorts as (
    select report_type, cohort, count(*) as companies,
           count(left_in) as left
    from lives group by all
)
select c.report_type, c.cohort, c.companies, c.left,
       max(round(100 * s.still, 1)) filter (where s.t = 1 and s.at_risk > 0) as still_after_1m_pct,
       max(round(100 * s.still, 1)) filter (where s.t = 3 and s.at_risk > 0) as still_after_3m_pct,
       max(round(100 * s.still, 1)) filter (where s.t = 6 and s.at_risk > 0) as still_after_6m_pct,
       max(round(100 * s.still, 1)) filter (where s.t = 12 and s.at_risk > 0) as still_after_12m_pct,
       min(s.t) filter (where s.still <= 0.5 and s.at_risk > 0) as median_months
from cohorts c join survival s using (report_type, cohort)
group by c.report_type, c.cohort, c.companies, c.left
order by c.report_type, c.cohort;

-- name: churn_risk
-- description: One row per active customer: a 0-100 churn risk score with the reasons behind it, highest first.
-- param: window_days INTEGER = 28 | days of recent activity, compared with the window before them
--
-- The score adds five signals over the last window_days up to the latest day with data:
--   30 x usage decline (usage_trend, recent window vs the one before, 0..1)
--   20 x scan failure ratio (failed / all scans)
--   20 x share of scanners inactive
--   15 x share of days with neither scans nor API calls
--   15 x days since the last scan (capped at 60) / 60
-- Engagement metrics the API did not list for a day are NULL in the views and count as 0 here.
with as_of as (
    select coalesce(max(date), current_date) as day from engagement
),
win as (
    select day,
           day - cast($window_days as integer) + 1 as recent_from,
           day - 2 * cast($window_days as integer) + 1 as previous_from
    from as_of
),
usage as (
    select c.report_type, c.security_center_id,
           sum(case when c.date >= w.recent_from then c.usage_value else 0 end) as recent,
           sum(case when c.date < w.recent_from then c.usage_value else 0 end) as previous
    from churn c, win w
    where c.indicator = 'usage_trend' and c.date between w.previous_from and w.day
    group by all
),
recent as (
    select e.report_type, e.security_center_id,
           sum(coalesce(e.sns_scans_failed, 0) + coalesce(e.was_scans_failed, 0) + coalesce(e.cs_scans_failed, 0)) as failed,
           sum(coalesce(e.sns_scans_succeeded, 0) + coalesce(e.was_scans_succeeded, 0) + coalesce(e.cs_scans_succeeded, 0)) as succeeded,
           sum(coalesce(e.probes_inactive, 0)) as probes_inactive,
           sum(coalesce(e.probes_active, 0) + coalesce(e.probes_inactive, 0)) as probes,
           count(*) filter (where coalesce(e.sns_scans_succeeded, 0) + coalesce(e.sns_scans_failed, 0)
                                + coalesce(e.was_scans_succeeded, 0) + coalesce(e.was_scans_failed, 0)
                                + coalesce(e.cs_scans_succeeded, 0) + coalesce(e.cs_scans_failed, 0)
                                + coalesce(e.api_calls, 0) > 0) as active_days
    from engagement e, win w
    where e.date between w.recent_from and w.day
    group by all
),
last_scan as (
    select report_type, security_center_id, max(date) as day
    from engagement
    where coalesce(sns_scans_succeeded, 0) + coalesce(sns_scans_failed, 0) + coalesce(was_scans_succeeded, 0)
        + coalesce(was_scans_failed, 0) + coalesce(cs_scans_succeeded, 0) + coalesce(cs_scans_failed, 0) > 0
    group by all
),
signals as (
    select cu.report_type, cu.security_center_id, cu.company_name, w.day as as_of,
           case when coalesce(u.previous, 0) > 0
                then greatest(0.0, least(1.0, 1 - coalesce(u.recent, 0) / u.previous)) else 0.0 end as usage_decline,
           case when coalesce(u.previous, 0) > 0
                then round(100.0 * (coalesce(u.recent, 0) - u.previous) / u.previous, 1) end as usage_change_pct,
           case when coalesce(r.failed + r.succeeded, 0) > 0 then r.failed / (r.failed + r.succeeded) else 0.0 end as failure_ratio,
           case when coalesce(r.probes, 0) > 0 then r.probes_inactive / r.probes else 0.0 end as inactive_share,
           cast($window_days as integer) - coalesce(r.active_days, 0) as zero_activity_days,
           w.day - ls.day as days_since_last_scan
    from customers cu
    cross join win w
    left join usage u using (report_type, security_center_id)
    left join recent r using (report_type, security_center_id)
    left join last_scan ls using (report_type, security_center_id)
)
select
    row_number() over (order by score desc, security_center_id) as rank,
    report_type, security_center_id, company_name, score,
    -- concat_ws skips NULLs: only the reasons that apply.
    concat_ws('; ',
        case when usage_decline >= 0.2 then 'usage down ' || cast(round(100 * usage_decline) as integer) || '%' end,
        case when failure_ratio >= 0.1 then 'scan failures ' || cast(round(100 * failure_ratio) as integer) || '%' end,
        case when inactive_share >= 0.2 then 'inactive scanners ' || cast(round(100 * inactive_share) as integer) || '%' end,
        case when zero_activity_days * 2 >= cast($window_days as integer)
             then 'no activity on ' || zero_activity_days || ' of ' || cast($window_days as integer) || ' days' end,
        case when days_since_last_scan is null then 'never scanned'
             when days_since_last_scan >= 14 then 'no scan for ' || days_since_last_scan || ' days' end
    ) as reasons,
    usage_change_pct,
    round(failure_ratio, 3) as failure_ratio,
    round(inactive_share, 3) as inactive_scanner_share,
    zero_activity_days,
    days_since_last_scan,
    as_of
from (
    select *, cast(round(
        30 * usage_decline + 20 * failure_ratio + 20 * inactive_share
        + 15 * zero_activity_days / cast($window_days as double)
        + 15 * least(coalesce(days_since_last_scan, 60), 60) / 60.0) as integer) as score
    from signals
)
order by rank;

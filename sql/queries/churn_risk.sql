-- name: churn_risk
-- description: Every company active on a day (its report type's last report day unless as_of says) with its churn risk score, its reasons and the billing units at risk, highest risk first.
-- param: window_days INTEGER = 28 | days of recent activity, compared with the window before them
-- param: as_of DATE = NULL | the day to score, from data up to that day only; each report type's last report day (T-2 of its last sync) when left out
--
-- The score and its components come from churn_scores() (sql/views/churn_scores.sql, which
-- says how each is computed): usage and billing change, days without usage, and, where the
-- lake fetched engagement by then, scan failures, inactive scanners, days without activity and
-- days since the last scan. With the default weights the score is a 0-100 index; once
-- `hspq churn fit` stored weights fitted on the lake's history, it is the chance in % of leaving
-- within the horizon fitted for (the weights column says which). Equal scores are ordered by
-- the units at risk (the billing of the last closed period); companies that billed nothing then
-- (status `dormant`) come after the active ones. Companies gone by the day and not back (churn_departures) are not scored.
with days as (
    -- Each report type on its own last report day (T-2 of its own last sync: a reseller key
    -- synced days after the MSSP key must not leave the MSSP companies without a period to be
    -- scored in), unless as_of says.
    select report_type, coalesce($as_of, max(period_to)) as d
    from periods group by report_type
),
scored as (
    select s.*,
           -- How much each sign raises the default score above no sign at all (a drop of 0.5
           -- is no change); engagement only where it was used.
           coalesce(greatest(w.usage_drop * (s.usage_drop - 0.5), 0), 0) as up_usage,
           coalesce(w.zero_usage * s.zero_usage, 0) as up_idle,
           coalesce(greatest(w.billing_drop * (s.billing_drop - 0.5), 0), 0) as up_billing,
           coalesce(case when s.engagement_used then w.scan_failures * s.scan_failures end, 0) as up_failures,
           coalesce(case when s.engagement_used then w.inactive_scanners * s.inactive_scanners end, 0) as up_scanners,
           coalesce(case when s.engagement_used then greatest(w.activity_drop * (s.activity_drop - 0.5), 0) end, 0) as up_activity,
           coalesce(case when s.engagement_used then greatest(w.scan_gap * (s.scan_gap - 0.5), 0) end, 0) as up_gap
    from days, churn_default_weights() w, churn_scores(days.d, $window_days, days.d + 2) s
    where s.report_type = days.report_type
      and not exists (
        select 1 from churn_departures e
        where e.report_type = s.report_type and e.security_center_id = s.security_center_id
          and (e.returned_on is null or e.returned_on > days.d)
          -- Scoring today: archived is gone, though its left_on (the day after its last
          -- usage, which lags two days) may still be ahead.
          and (e.left_on <= days.d or (e.how = 'archived' and $as_of is null))
    )
)
select
    -- Those that bill something first: a dormant company (no billing in the last closed
    -- period) has nothing left to lose, and is not the call a partner makes first.
    row_number() over (order by units_at_risk = 0, score desc, units_at_risk desc, security_center_id) as rank,
    company_name,
    case when units_at_risk = 0 then 'dormant' else 'active' end as status,
    round(score, 1) as score,
    units_at_risk,
    -- concat_ws skips NULLs: only the reasons that apply; when none passes its threshold, the
    -- sign that raises the score most, however small, so that no company above a company
    -- without any sign goes unexplained.
    coalesce(nullif(concat_ws('; ',
        case when usage_change_pct <= -20 then 'usage down ' || cast(round(-usage_change_pct) as integer) || '%' end,
        case when zero_usage >= 0.5
             then 'no usage on ' || cast(round(zero_usage * $window_days) as integer) || ' of ' || $window_days || ' days' end,
        case when billing_change_pct <= -10 then 'billing down ' || cast(round(-billing_change_pct) as integer) || '%' end,
        case when scan_failures >= 0.1 then 'scan failures ' || cast(round(100 * scan_failures) as integer) || '%' end,
        case when inactive_scanners >= 0.2 then 'inactive scanners ' || cast(round(100 * inactive_scanners) as integer) || '%' end,
        -- Only when activity fell: a customer that never scans is not at risk for that.
        case when zero_activity >= 0.5 and activity_drop > 0.5
             then 'no activity on ' || cast(round(zero_activity * $window_days) as integer) || ' of ' || $window_days || ' days' end,
        case when days_since_last_scan >= 14 then 'no scan for ' || days_since_last_scan || ' days' end
    ), ''), case greatest(up_usage, up_idle, up_billing, up_failures, up_scanners, up_activity, up_gap)
        when 0 then null
        when up_usage then 'usage down ' || cast(round(-usage_change_pct) as integer) || '%'
        when up_idle then 'no usage on ' || cast(round(zero_usage * $window_days) as integer) || ' of ' || $window_days || ' days'
        when up_billing then 'billing down ' || cast(round(-billing_change_pct) as integer) || '%'
        when up_failures then 'scan failures ' || cast(round(100 * scan_failures) as integer) || '%'
        when up_scanners then 'inactive scanners ' || cast(round(100 * inactive_scanners) as integer) || '%'
        when up_activity then 'fewer days with scans or API calls'
        when up_gap then 'no scan for ' || days_since_last_scan || ' days'
    end) as reasons,
    security_center_id,
    report_type,
    units_by_product,
    usage_change_pct,
    billing_change_pct,
    round(scan_failures, 3) as scan_failures,
    round(inactive_scanners, 3) as inactive_scanners,
    cast(round(zero_activity * $window_days) as integer) as zero_activity_days,
    days_since_last_scan,
    components,
    weights,
    as_of
from scored
order by rank;

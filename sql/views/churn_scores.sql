-- churn_scores(as_of, window_days, known_by): the churn score of every company active on as_of,
-- from data up to that day only, for `churn_risk` (one day) and `churn_backtest` (many past
-- days). known_by is the last day whose syncs may be used for engagement (see (*)): as_of for a
-- backtest; as_of + 2 for today's score, since a sync on day T reports up to T-2.
--
-- Who: MSSP companies eligible in the period that holds as_of; reseller customers that the
-- lake's customer list history (customer_history) shows present on it (listed by a sync on or
-- before known_by and not gone by as_of).
-- Components, each continuous in 0..1 (1 = most at risk), over the window_days up to as_of:
--   usage_drop      (previous - recent) / (previous + recent) of a product's daily usage, mapped
--                   to 0..1 (0.5 = unchanged), averaged over the products used in either window
--                   (products count alike, whatever their units); 0.5 without usage
--   zero_usage      share of the recent days without usage
--   billing_drop    the same for billing units, last closed period vs the one before
--   scan_failures   failed / all scans                                    \
--   inactive_scanners  inactive / all scanner-days                         | engagement: only
--   activity_drop   the same drop for days with scans or API calls         | from a sync on or
--   scan_gap        days since the last scan s as s / (s + window_days)    / before as_of (*)
--                   (0.5 without a scan in the fetched history: DA or PAT only, say)
-- default_score = 100 x sum(weight x component) / sum(weight) over the components used, with
-- the default weights below. score is the same unless `hspq churn fit` stored weights fitted on
-- the lake's own history for the report type and these components (churn_weights): then it is
-- the fitted model's chance, in %, that the company leaves within the horizon it was fitted for,
-- 100 / (1 + exp(-(intercept + sum(weight x component)))). `weights` says which.
-- Activity counts as its change, like usage, so a customer without scanning products, who never scans, is not at risk for that alone; zero_activity (the share of
-- recent days without activity) is shown, not scored. units_at_risk is the billing of the last
-- closed period (what a loss would cost), per product in units_by_product.
-- (*) Engagement exists only for customers that were active when a sync ran (a customer that
-- left answers 404), so a past day is scored from the engagement the lake held on it: up to the
-- day before the last sync on or before known_by, and not at all before the first one. Otherwise
-- every past leaver would lack engagement and "no activity" would leak the label into the score.
-- `components` says which were used.
-- naive_drop is not a component: the naive rule the score must beat (churn_backtest shows it),
-- all products' usage summed over the last 28 days against the 28 before, as churn_drop maps
-- it (fixed at 28 days whatever window_days, so that it stays the same reference).
-- How much a measure fell from `before` to `after`: (before - after) / (before + after) mapped
-- to 0..1, 0.5 when it did not change or was zero (or missing) in both.
CREATE OR REPLACE MACRO churn_drop(before, after) AS
    CASE WHEN coalesce(before, 0) + coalesce(after, 0) > 0
         THEN (1 + (coalesce(before, 0) - coalesce(after, 0)) / (coalesce(before, 0) + coalesce(after, 0))) / 2
         ELSE 0.5 END;

-- The change in % that a drop (as churn_drop gives it) stands for: after / before - 1. NULL
-- when it is 0 (nothing before: no change to speak of).
CREATE OR REPLACE MACRO churn_change_pct(drop) AS
    CASE WHEN drop > 0 THEN round(100.0 * ((1 - drop) / drop - 1), 1) END;

-- The default weights: usage says most, then days without usage, the engagement signs and the
-- billing change.
CREATE OR REPLACE MACRO churn_default_weights() AS TABLE
SELECT 3.0 AS usage_drop, 2.0 AS zero_usage, 1.0 AS billing_drop, 1.0 AS scan_failures,
       1.0 AS inactive_scanners, 1.5 AS activity_drop, 1.5 AS scan_gap;

CREATE OR REPLACE MACRO churn_scores(as_of, window_days, known_by) AS TABLE
WITH params AS (
    SELECT CAST(as_of AS DATE) AS d, CAST(window_days AS INTEGER) AS w, CAST(known_by AS DATE) AS k
),
weights AS (
    SELECT * FROM churn_default_weights()
),
fitted AS (
    SELECT report_type, components,
           max(weight) FILTER (WHERE component = 'intercept') AS intercept,
           coalesce(max(weight) FILTER (WHERE component = 'usage_drop'), 0) AS usage_drop,
           coalesce(max(weight) FILTER (WHERE component = 'zero_usage'), 0) AS zero_usage,
           coalesce(max(weight) FILTER (WHERE component = 'billing_drop'), 0) AS billing_drop,
           coalesce(max(weight) FILTER (WHERE component = 'scan_failures'), 0) AS scan_failures,
           coalesce(max(weight) FILTER (WHERE component = 'inactive_scanners'), 0) AS inactive_scanners,
           coalesce(max(weight) FILTER (WHERE component = 'activity_drop'), 0) AS activity_drop,
           coalesce(max(weight) FILTER (WHERE component = 'scan_gap'), 0) AS scan_gap,
           max(events) AS events, max(fitted_horizon_days) AS horizon_days, max(ingested_at) AS fitted_at
    FROM churn_weights
    GROUP BY ALL
),
population AS (
    SELECT c.report_type, c.security_center_id, c.company_name
    FROM companies c
    JOIN periods p ON p.report_type = c.report_type AND p.year = c.year AND p.period = c.period
    CROSS JOIN params
    WHERE c.report_type = 'mssp' AND params.d BETWEEN p.period_from AND p.period_to
    UNION ALL
    SELECT h.report_type, h.security_center_id, h.company_name
    FROM customer_history h CROSS JOIN params
    WHERE h.report_type = 'reseller' AND h.seen_from <= params.k
      AND (h.gone_at IS NULL OR params.d < h.gone_at)
),
daily AS (
    SELECT u.report_type, u.security_center_id, u.product, u.date, u.usage_value, u.date > p.d - p.w AS recent
    FROM daily_usage u CROSS JOIN params p
    WHERE u.date > p.d - 2 * p.w AND u.date <= p.d
),
usage AS (
    -- Averaged in a fixed order: a parallel avg() adds in any order, and the same data must
    -- give the same score to the last bit.
    SELECT report_type, security_center_id,
           list_avg(list(churn_drop(previous, recent) ORDER BY product)) AS drop
    FROM (SELECT report_type, security_center_id, product,
                 sum(usage_value) FILTER (WHERE recent) AS recent,
                 sum(usage_value) FILTER (WHERE NOT recent) AS previous
          FROM daily GROUP BY ALL)
    WHERE coalesce(previous, 0) + coalesce(recent, 0) > 0
    GROUP BY ALL
),
naive AS (
    SELECT u.report_type, u.security_center_id,
           churn_drop(sum(u.usage_value) FILTER (WHERE u.date <= p.d - 28),
                      sum(u.usage_value) FILTER (WHERE u.date > p.d - 28)) AS drop
    FROM daily_usage u CROSS JOIN params p
    WHERE u.date > p.d - 56 AND u.date <= p.d
    GROUP BY ALL
),
used AS (
    SELECT report_type, security_center_id, count(DISTINCT date) AS used_days
    FROM daily WHERE recent AND usage_value > 0
    GROUP BY ALL
),
closed AS (
    SELECT report_type, year, period,
           row_number() OVER (PARTITION BY report_type ORDER BY period_to DESC) AS back
    FROM periods CROSS JOIN params
    WHERE period_to < params.d AND NOT is_partial
),
billed AS (
    SELECT report_type, security_center_id,
           list_avg(list(churn_drop(previous_units, last_units) ORDER BY product)
               FILTER (WHERE coalesce(previous_units, 0) + coalesce(last_units, 0) > 0)) AS drop,
           sum(last_units) AS last_units,
           string_agg(product || ' ' || last_units, ', ' ORDER BY product)
               FILTER (WHERE last_units IS NOT NULL) AS units_by_product
    FROM (SELECT b.report_type, b.security_center_id, b.product,
                 sum(b.billing_value) FILTER (WHERE c.back = 1) AS last_units,
                 sum(b.billing_value) FILTER (WHERE c.back = 2) AS previous_units
          FROM billing b
          JOIN closed c ON c.report_type = b.report_type AND c.year = b.year AND c.period = b.period
          WHERE c.back <= 2
          GROUP BY ALL)
    GROUP BY ALL
),
sync_days AS (
    SELECT report_type, seen_from AS day FROM customer_history
    UNION ALL SELECT report_type, seen_to FROM customer_history
    UNION ALL SELECT report_type, gone_at FROM customer_history WHERE gone_at IS NOT NULL
),
synced AS (
    SELECT s.report_type, least(max(s.day) - 1, any_value(p.d)) AS until
    FROM sync_days s CROSS JOIN params p
    WHERE s.day <= p.k
    GROUP BY ALL
),
activity AS (
    SELECT e.report_type, e.security_center_id, e.date,
           coalesce(e.sns_scans_failed, 0) + coalesce(e.was_scans_failed, 0) + coalesce(e.cs_scans_failed, 0) AS failed,
           coalesce(e.sns_scans_succeeded, 0) + coalesce(e.was_scans_succeeded, 0) + coalesce(e.cs_scans_succeeded, 0) AS succeeded,
           coalesce(e.probes_inactive, 0) AS probes_inactive,
           coalesce(e.probes_active, 0) + coalesce(e.probes_inactive, 0) AS probes,
           coalesce(e.api_calls, 0) AS api_calls,
           s.until
    FROM engagement e JOIN synced s ON s.report_type = e.report_type
    WHERE e.date <= s.until
),
engaged AS (
    SELECT a.report_type, a.security_center_id,
           sum(a.failed) FILTER (WHERE a.date > a.until - p.w) AS failed,
           sum(a.failed + a.succeeded) FILTER (WHERE a.date > a.until - p.w) AS scans,
           sum(a.probes_inactive) FILTER (WHERE a.date > a.until - p.w) AS probes_inactive,
           sum(a.probes) FILTER (WHERE a.date > a.until - p.w) AS probes,
           count(*) FILTER (WHERE a.date > a.until - p.w AND a.failed + a.succeeded + a.api_calls > 0) AS active_days,
           count(*) FILTER (WHERE a.date <= a.until - p.w AND a.date > a.until - 2 * p.w
                              AND a.failed + a.succeeded + a.api_calls > 0) AS active_days_before,
           max(a.date) FILTER (WHERE a.failed + a.succeeded > 0) AS last_scan
    FROM activity a CROSS JOIN params p
    GROUP BY ALL
),
components AS (
    SELECT pop.report_type, pop.security_center_id, pop.company_name, p.d AS as_of,
           coalesce(u.drop, 0.5) AS usage_drop,
           churn_change_pct(u.drop) AS usage_change_pct,
           1 - coalesce(ud.used_days, 0) / p.w AS zero_usage,
           coalesce(b.drop, 0.5) AS billing_drop,
           s.until IS NOT NULL AS engagement_used,
           CASE WHEN s.until IS NOT NULL THEN coalesce(e.failed / nullif(e.scans, 0), 0) END AS scan_failures,
           CASE WHEN s.until IS NOT NULL THEN coalesce(e.probes_inactive / nullif(e.probes, 0), 0) END AS inactive_scanners,
           CASE WHEN s.until IS NOT NULL THEN 1 - coalesce(e.active_days, 0) / p.w END AS zero_activity,
           CASE WHEN s.until IS NOT NULL THEN churn_drop(e.active_days_before, e.active_days) END AS activity_drop,
           CASE WHEN s.until IS NOT NULL THEN s.until - e.last_scan END AS days_since_last_scan,
           CASE WHEN s.until IS NOT NULL
                THEN coalesce((s.until - e.last_scan) / ((s.until - e.last_scan) + p.w), 0.5) END AS scan_gap,
           churn_change_pct(b.drop) AS billing_change_pct,
           CAST(coalesce(b.last_units, 0) AS BIGINT) AS units_at_risk,
           b.units_by_product,
           coalesce(n.drop, 0.5) AS naive_drop
    FROM population pop
    CROSS JOIN params p
    LEFT JOIN usage u ON u.report_type = pop.report_type AND u.security_center_id = pop.security_center_id
    LEFT JOIN naive n ON n.report_type = pop.report_type AND n.security_center_id = pop.security_center_id
    LEFT JOIN used ud ON ud.report_type = pop.report_type AND ud.security_center_id = pop.security_center_id
    LEFT JOIN billed b ON b.report_type = pop.report_type AND b.security_center_id = pop.security_center_id
    LEFT JOIN synced s ON s.report_type = pop.report_type
    LEFT JOIN engaged e ON e.report_type = pop.report_type AND e.security_center_id = pop.security_center_id
),
defaulted AS (
SELECT c.*,
       CASE WHEN c.engagement_used
            THEN 'usage, billing, engagement' ELSE 'usage, billing' END AS components,
       100 * (wt.usage_drop * c.usage_drop + wt.zero_usage * c.zero_usage + wt.billing_drop * c.billing_drop
                    + CASE WHEN c.engagement_used
                           THEN wt.scan_failures * c.scan_failures + wt.inactive_scanners * c.inactive_scanners
                                + wt.activity_drop * c.activity_drop + wt.scan_gap * c.scan_gap
                           ELSE 0 END)
             / (wt.usage_drop + wt.zero_usage + wt.billing_drop
                + CASE WHEN c.engagement_used
                       THEN wt.scan_failures + wt.inactive_scanners + wt.activity_drop + wt.scan_gap
                       ELSE 0 END) AS default_score
FROM components c CROSS JOIN weights wt
)
SELECT d.*,
       CASE WHEN f.intercept IS NULL THEN d.default_score
            ELSE 100 / (1 + exp(-(f.intercept + f.usage_drop * d.usage_drop + f.zero_usage * d.zero_usage
                                  + f.billing_drop * d.billing_drop
                                  + CASE WHEN d.engagement_used
                                         THEN f.scan_failures * d.scan_failures
                                              + f.inactive_scanners * d.inactive_scanners
                                              + f.activity_drop * d.activity_drop + f.scan_gap * d.scan_gap
                                         ELSE 0 END))) END AS score,
       CASE WHEN f.intercept IS NULL THEN 'default'
            ELSE 'fitted ' || strftime(f.fitted_at, '%Y-%m-%d') || ' on ' || f.events || ' leavers, '
                 || f.horizon_days || '-day horizon' END AS weights
FROM defaulted d
LEFT JOIN fitted f ON f.report_type = d.report_type AND f.components = d.components;

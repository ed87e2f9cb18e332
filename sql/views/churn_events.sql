-- churn_events: customers and MSSP companies that left, and how that is known.
--
-- MSSP, from `companies` (eligibility per period, over the whole history the first sync
-- fetched): a company eligible in one period and not in the next has left; the API calls it
-- `archived` when its status says so today, else it was `dropped from eligibility` (a pause,
-- say, if it comes back). A company the API reports archived in the latest period left during
-- it. `left_on` is the first day of the first period without it (for one that left during the
-- latest period: the day after its last usage, or the period's first day).
-- Reseller, from `customer_history` (the API re-derives reseller months from today's orders,
-- so only the lake's own record of the customer list shows who left): `left_on` is the day of
-- the first sync that no longer listed it.
-- With each event: the last period it was billed in and its billing units there (what the
-- partner lost), and the last day it was seen (usage for MSSP, the customer list for reseller).
CREATE OR REPLACE VIEW churn_events AS
WITH mssp_periods AS (
    SELECT year, period, period_from, row_number() OVER (ORDER BY year, period) AS n
    FROM periods WHERE report_type = 'mssp'
),
spells AS (
    SELECT c.security_center_id, c.company_name, c.status, p.year, p.period, p.period_from, p.n,
           lead(p.n) OVER (PARTITION BY c.security_center_id ORDER BY p.n) AS next_n,
           max(p.n) OVER () AS last_n
    FROM companies c JOIN mssp_periods p USING (year, period)
    WHERE c.report_type = 'mssp'
),
last_usage AS (
    SELECT security_center_id, year, period, max(date) AS last_day
    FROM daily_usage WHERE report_type = 'mssp'
    GROUP BY ALL
),
mssp AS (
    SELECT 'mssp' AS report_type, s.security_center_id, s.company_name,
           CASE WHEN s.n < s.last_n THEN q.period_from
                ELSE coalesce(CAST(u.last_day + INTERVAL 1 DAY AS DATE), s.period_from) END AS left_on,
           CASE WHEN s.next_n IS NULL AND s.status = 'archived' THEN 'archived'
                ELSE 'dropped from eligibility' END AS how,
           s.year AS last_year, s.period AS last_period, u.last_day AS last_seen
    FROM spells s
    LEFT JOIN mssp_periods q ON q.n = s.n + 1
    LEFT JOIN last_usage u
           ON u.security_center_id = s.security_center_id AND u.year = s.year AND u.period = s.period
    WHERE (s.next_n IS NULL OR s.next_n > s.n + 1)
      AND (s.n < s.last_n OR s.status = 'archived')
),
reseller_billed AS (
    SELECT security_center_id, max(year * 100 + CAST(period AS INTEGER)) AS last_label
    FROM billing WHERE report_type = 'reseller'
    GROUP BY ALL
),
reseller AS (
    SELECT h.report_type, h.security_center_id, h.company_name, h.gone_at AS left_on,
           'gone from the customer list' AS how,
           CAST(b.last_label // 100 AS BIGINT) AS last_year,
           lpad(CAST(b.last_label % 100 AS VARCHAR), 2, '0') AS last_period,
           h.seen_to AS last_seen
    FROM customer_history h
    LEFT JOIN reseller_billed b USING (security_center_id)
    WHERE h.report_type = 'reseller' AND h.gone_at IS NOT NULL
),
events AS (
    SELECT * FROM mssp
    UNION ALL BY NAME
    SELECT * FROM reseller
),
billed AS (
    SELECT report_type, security_center_id, year, period,
           CAST(sum(billing_value) AS BIGINT) AS units
    FROM billing GROUP BY ALL
)
SELECT e.report_type, e.security_center_id, e.company_name, e.left_on, e.how,
       CASE WHEN e.last_year IS NOT NULL THEN e.last_year || '-' || e.last_period END AS last_billed_period,
       b.units AS last_billing_units,
       e.last_seen
FROM events e
LEFT JOIN billed b ON b.report_type = e.report_type AND b.security_center_id = e.security_center_id
                  AND b.year = e.last_year AND b.period = e.last_period;

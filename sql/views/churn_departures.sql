-- churn_departures(grace_days): every time a customer or MSSP company went away, and whether it
-- was a leaving. The view of the same name uses the default grace, churn_grace_days() (100:
-- an MSSP absence lasts whole periods, three of them 89 to 92 days, four 119 to 123, so the
-- grace falls between, whatever the months).
--
-- MSSP, from `companies` (eligibility per period, over the whole history the first sync
-- fetched): a company eligible in one period and not in the next went away; the API calls it
-- `archived` when its status says so today, else it was `dropped from eligibility`. A company
-- the API reports archived in the latest period went away during it. `left_on` is the first day
-- of the first period without it (for one that went during the latest period: the day after
-- its last usage, or the period's first day); `returned_on` the first day of the period it was
-- eligible again, if it was.
-- Reseller, from `customer_history` (the API re-derives reseller months from today's orders,
-- so only the lake's own record of the customer list shows who went): `left_on` is the day of
-- the first sync that no longer listed it, `returned_on` the first sync that listed it again.
--
-- kind: `paused` when it came back within grace_days of leaving (a pause, a suspension: not a
-- churn); `leaving` when it did not (or came back only later, as a customer won back);
-- `open` when it has not come back and grace_days have not passed yet by the last day the lake
-- knows (the last usage day for MSSP, the last sync for reseller): too early to tell.
-- With each: the last period it was billed in and its billing units there (what the partner
-- lost, or would), and the last day it was seen (usage for MSSP, the customer list for reseller).
CREATE OR REPLACE MACRO churn_grace_days() AS 100;

-- The last day the lake knows of each report type: for MSSP the last usage day (a lake without
-- usage: the end of the last period it lists), for reseller the last sync's customer list.
CREATE OR REPLACE MACRO churn_known_days() AS TABLE
SELECT 'mssp' AS report_type,
       coalesce((SELECT max(date) FROM daily_usage WHERE report_type = 'mssp'),
                (SELECT max(period_to) FROM periods WHERE report_type = 'mssp')) AS day
UNION ALL
SELECT 'reseller', max(seen_to) FROM customer_history WHERE report_type = 'reseller';

CREATE OR REPLACE MACRO churn_departures(grace_days) AS TABLE
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
           r.period_from AS returned_on,
           s.year AS last_year, s.period AS last_period, u.last_day AS last_seen
    FROM spells s
    LEFT JOIN mssp_periods q ON q.n = s.n + 1
    LEFT JOIN mssp_periods r ON r.n = s.next_n
    LEFT JOIN last_usage u
           ON u.security_center_id = s.security_center_id AND u.year = s.year AND u.period = s.period
    WHERE (s.next_n IS NULL OR s.next_n > s.n + 1)
      AND (s.n < s.last_n OR s.status = 'archived')
),
presences AS (
    SELECT *, lead(seen_from) OVER (PARTITION BY security_center_id ORDER BY seen_from) AS back
    FROM customer_history WHERE report_type = 'reseller'
),
reseller_billed AS (
    -- Per departure: the last period billed before it (a customer back later bills again).
    SELECT h.security_center_id, h.gone_at,
           max(b.year * 100 + CAST(b.period AS INTEGER)) AS last_label
    FROM presences h
    JOIN billing b ON b.report_type = 'reseller' AND b.security_center_id = h.security_center_id
                  AND b.period_from < h.gone_at
    WHERE h.gone_at IS NOT NULL
    GROUP BY ALL
),
reseller AS (
    SELECT h.report_type, h.security_center_id, h.company_name, h.gone_at AS left_on,
           'gone from the customer list' AS how,
           h.back AS returned_on,
           CAST(b.last_label // 100 AS BIGINT) AS last_year,
           lpad(CAST(b.last_label % 100 AS VARCHAR), 2, '0') AS last_period,
           h.seen_to AS last_seen
    FROM presences h
    LEFT JOIN reseller_billed b
           ON b.security_center_id = h.security_center_id AND b.gone_at = h.gone_at
    WHERE h.gone_at IS NOT NULL
),
departures AS (
    SELECT * FROM mssp
    UNION ALL BY NAME
    SELECT * FROM reseller
),
known AS (
    SELECT * FROM churn_known_days()
),
billed AS (
    SELECT report_type, security_center_id, year, period,
           CAST(sum(billing_value) AS BIGINT) AS units
    FROM billing GROUP BY ALL
)
SELECT d.report_type, d.security_center_id, d.company_name, d.left_on, d.how,
       CASE WHEN d.returned_on <= d.left_on + CAST(grace_days AS INTEGER) THEN 'paused'
            WHEN d.returned_on IS NOT NULL
              OR d.left_on + CAST(grace_days AS INTEGER) <= k.day THEN 'leaving'
            ELSE 'open' END AS kind,
       d.returned_on,
       CASE WHEN d.last_year IS NOT NULL THEN d.last_year || '-' || d.last_period END AS last_billed_period,
       b.units AS last_billing_units,
       d.last_seen
FROM departures d
LEFT JOIN known k ON k.report_type = d.report_type
LEFT JOIN billed b ON b.report_type = d.report_type AND b.security_center_id = d.security_center_id
                  AND b.year = d.last_year AND b.period = d.last_period;

CREATE OR REPLACE VIEW churn_departures AS
SELECT * FROM churn_departures(churn_grace_days());

-- churn_labels(horizon_days, window_days, only_report_type): the churn score at every past
-- cut-off, with whether the company left within the horizon after it, for `churn_backtest` and
-- `hspq churn fit`. only_report_type NULL means both report types.
--
-- Cut-offs: the first day of every period from when two windows of usage exist up to the last
-- one a whole horizon and the grace (churn_grace_days()) fit after. At each, churn_scores() scores every company active then from
-- the data the lake held on that day (engagement only from syncs made by then), and a company
-- leaves when churn_events has it leaving in (cut-off, cut-off + horizon]: a pause that came
-- back within the grace is not a leaving.
CREATE OR REPLACE MACRO churn_labels(horizon_days, window_days, only_report_type) AS TABLE
WITH cutoffs AS (
    SELECT DISTINCT p.report_type, p.period_from AS day
    FROM periods p
    WHERE (only_report_type IS NULL OR p.report_type = only_report_type)
      AND p.period_from >= (SELECT min(date) FROM daily_usage) + 2 * CAST(window_days AS INTEGER)
      -- A leaving within the horizon is known as one only churn_grace_days() after it.
      AND p.period_from + CAST(horizon_days AS INTEGER) + churn_grace_days()
          <= (SELECT max(q.period_to) FROM periods q WHERE q.report_type = p.report_type)
)
SELECT c.day AS cutoff, s.*,
       EXISTS (
           SELECT 1 FROM churn_events e
           WHERE e.report_type = s.report_type AND e.security_center_id = s.security_center_id
             AND e.left_on > c.day AND e.left_on <= c.day + CAST(horizon_days AS INTEGER)
       ) AS leaves
FROM cutoffs c, churn_scores(c.day, window_days, c.day) s
WHERE s.report_type = c.report_type;

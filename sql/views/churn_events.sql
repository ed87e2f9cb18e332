-- churn_events: customers and MSSP companies that left, and how that is known: the departures
-- that were leavings (churn_departures, sql/views/churn_departures.sql: gone, and not back
-- within churn_grace_days() of leaving). A pause that came back within it is not here, and
-- neither is a departure too recent to tell (kind `open` in churn_departures).
CREATE OR REPLACE VIEW churn_events AS
SELECT report_type, security_center_id, company_name, left_on, how, last_billed_period,
       last_billing_units, last_seen
FROM churn_departures
WHERE kind = 'leaving';

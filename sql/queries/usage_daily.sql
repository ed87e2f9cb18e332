-- name: usage_daily
-- description: Daily usage per product for one company across periods.
-- param: security_center_id VARCHAR | the company's id, e.g. SE-ARN1001
-- param: product VARCHAR = NULL | one product code (SNS, DA, WAS, CS, PAT); all when left out
-- param: report_type VARCHAR = NULL | mssp or reseller; both when left out
select report_type, year, period, date, product, usage_value, company_name
from daily_usage
where security_center_id = $security_center_id
  and ($product is null or product = $product)
  and ($report_type is null or report_type = $report_type)
order by report_type, date, product;

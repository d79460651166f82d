/*
description: Data-quality results per mart and logical date - the newest result of each check - with the names of the checks that failed.
materialized: view
columns:
  failed_checks: Names of the failing checks, comma-separated.
*/
WITH newest AS (
  SELECT *
  FROM ops.dq_results
  QUALIFY ROW_NUMBER() OVER (PARTITION BY mart, check_name, ds ORDER BY recorded_at DESC) = 1
)
SELECT
  mart,
  ds,
  kind,
  COUNT(*) AS checks,
  COUNTIF(passed) AS passed,
  COUNTIF(NOT passed) AS failed,
  STRING_AGG(IF(passed, NULL, check_name), ', ' ORDER BY check_name) AS failed_checks
FROM newest
GROUP BY mart, ds, kind

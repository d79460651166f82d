/*
description: Storage per dataset and its monthly price on logical billing in the US multi-region (active 0.02, long-term 0.01 USD per GiB).
materialized: view
columns:
  usd_per_month: Active and long-term logical bytes at list price (physical billing differs).
*/
SELECT
  table_schema AS dataset,
  COUNT(*) AS tables,
  SUM(total_rows) AS row_count,
  SUM(active_logical_bytes) AS active_logical_bytes,
  SUM(long_term_logical_bytes) AS long_term_logical_bytes,
  SUM(total_physical_bytes) AS physical_bytes,
  (SUM(active_logical_bytes) * 0.02 + SUM(long_term_logical_bytes) * 0.01) / POW(2, 30) AS usd_per_month
FROM `region-us`.INFORMATION_SCHEMA.TABLE_STORAGE
WHERE NOT deleted
GROUP BY dataset

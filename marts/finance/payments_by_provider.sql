/*
description: Payments per day and provider. Runs as a BigQuery scheduled query (no checks), exported with `mart-build export-scheduled-queries`.
owner: "@finance-analyst"
materialized: partition
partition_by: day
runner: scheduled_query
columns:
  day: Day the payments were made (UTC).
  provider: Payment provider.
  payments: Payments that succeeded.
  failed: Payments that failed.
  amount: Sum of the amounts of the payments that succeeded.
*/
SELECT
  DATE(p.paid_at) AS day,
  p.provider,
  COUNTIF(p.succeeded) AS payments,
  COUNTIF(NOT p.succeeded) AS failed,
  SUM(IF(p.succeeded, p.amount, 0)) AS amount
FROM shop_raw.payments AS p
WHERE p.paid_at >= @ds_start AND p.paid_at < @ds_end
GROUP BY day, p.provider

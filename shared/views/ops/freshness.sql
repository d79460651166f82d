/*
description: How fresh each declared table is, from its newest successful load in ops.runs against its freshness SLA (status error, warn, fresh, or no_sla).
materialized: view
columns:
  last_success: End of the newest successful run that loaded the table.
  age_s: Seconds since then.
  status: error (past error_after, or never loaded), warn (past warn_after), fresh, or no_sla.
*/
WITH declared AS (
  SELECT * FROM ops.declared_tables
  WHERE declared_at = (SELECT MAX(declared_at) FROM ops.declared_tables)
),
loads AS (
  SELECT worker, source, table_name, MAX(finished_at) AS last_success
  FROM ops.runs
  WHERE status = 'success' AND (worker != 'log-ingest' OR rows_loaded > 0)
  GROUP BY worker, source, table_name
),
joined AS (
  SELECT d.dataset, d.table_name, d.producer, d.owner, d.warn_after_s, d.error_after_s, MAX(l.last_success) AS last_success
  FROM declared AS d
  LEFT JOIN loads AS l
    ON l.worker = d.producer
    AND (d.source IS NULL OR l.source = d.source)
    AND (d.unit_table IS NULL OR l.table_name = d.unit_table)
  GROUP BY d.dataset, d.table_name, d.producer, d.owner, d.warn_after_s, d.error_after_s
)
SELECT
  dataset,
  table_name,
  producer,
  owner,
  warn_after_s,
  error_after_s,
  last_success,
  TIMESTAMP_DIFF(CURRENT_TIMESTAMP(), last_success, SECOND) AS age_s,
  CASE
    WHEN error_after_s IS NOT NULL AND (last_success IS NULL OR TIMESTAMP_DIFF(CURRENT_TIMESTAMP(), last_success, SECOND) > error_after_s) THEN 'error'
    WHEN warn_after_s IS NOT NULL AND (last_success IS NULL OR TIMESTAMP_DIFF(CURRENT_TIMESTAMP(), last_success, SECOND) > warn_after_s) THEN 'warn'
    WHEN warn_after_s IS NULL AND error_after_s IS NULL THEN 'no_sla'
    ELSE 'fresh'
  END AS status
FROM joined

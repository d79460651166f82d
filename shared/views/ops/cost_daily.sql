/*
description: Query cost per day, worker (or user), and run - bytes billed, slot time, and the on-demand price at 6.25 USD per TiB - with the tables the jobs read.
materialized: view
columns:
  worker: The sluice worker (sluice_worker label), else user.
  run_id: The sluice run (sluice_run label).
  slot_hours: Slot time, in hours.
  usd_on_demand: bytes_billed at 6.25 USD per TiB (edition or flat-rate billing differs).
*/
WITH jobs AS (
  SELECT
    j.job_id,
    j.creation_time,
    j.user_email,
    j.total_bytes_billed,
    j.total_slot_ms,
    COALESCE((SELECT l.value FROM UNNEST(j.labels) AS l WHERE l.key = 'sluice_worker'), 'user') AS worker,
    (SELECT l.value FROM UNNEST(j.labels) AS l WHERE l.key = 'sluice_run') AS run_id,
    (SELECT STRING_AGG(CONCAT(t.dataset_id, '.', t.table_id), ', ' ORDER BY t.dataset_id, t.table_id) FROM UNNEST(j.referenced_tables) AS t) AS tables
  FROM `region-us`.INFORMATION_SCHEMA.JOBS AS j
  WHERE j.state = 'DONE'
)
SELECT
  DATE(creation_time) AS day,
  worker,
  user_email,
  run_id,
  STRING_AGG(DISTINCT tables, '; ') AS tables,
  COUNT(*) AS jobs,
  SUM(total_bytes_billed) AS bytes_billed,
  SUM(total_slot_ms) / 3600000 AS slot_hours,
  SUM(total_bytes_billed) / POW(2, 40) * 6.25 AS usd_on_demand
FROM jobs
GROUP BY day, worker, user_email, run_id

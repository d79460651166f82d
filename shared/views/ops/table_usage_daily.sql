/*
description: Which tables are read, by whom, per day - from the jobs of the project. sluice's own jobs are told apart by their sluice_worker label, Looker Studio's by its looker_studio_* labels, scheduled queries by data_source_id.
materialized: view
columns:
  reader: sluice, looker_studio, scheduled_query or user.
  sluice_worker: The worker, for sluice's jobs.
  bytes_billed: Bytes billed by those jobs (a job reading two tables counts under both).
*/
WITH jobs AS (
  SELECT
    j.creation_time,
    j.user_email,
    j.total_bytes_billed,
    j.referenced_tables,
    (SELECT l.value FROM UNNEST(j.labels) AS l WHERE l.key = 'sluice_worker') AS sluice_worker,
    EXISTS(SELECT 1 FROM UNNEST(j.labels) AS l WHERE l.key LIKE 'looker_studio%' OR (l.key = 'requestor' AND l.value = 'looker_studio')) AS looker,
    EXISTS(SELECT 1 FROM UNNEST(j.labels) AS l WHERE l.key = 'data_source_id' AND l.value = 'scheduled_query') AS scheduled
  FROM `region-us`.INFORMATION_SCHEMA.JOBS AS j
  WHERE j.job_type = 'QUERY' AND j.state = 'DONE'
)
SELECT
  DATE(j.creation_time) AS day,
  t.dataset_id AS dataset,
  t.table_id AS table_name,
  CASE
    WHEN j.sluice_worker IS NOT NULL THEN 'sluice'
    WHEN j.looker THEN 'looker_studio'
    WHEN j.scheduled THEN 'scheduled_query'
    ELSE 'user'
  END AS reader,
  j.user_email,
  j.sluice_worker,
  COUNT(*) AS jobs,
  SUM(j.total_bytes_billed) AS bytes_billed
FROM jobs AS j
CROSS JOIN UNNEST(j.referenced_tables) AS t
GROUP BY day, dataset, table_name, reader, user_email, sluice_worker

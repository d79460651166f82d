/*
description: When jobs run, for a heatmap - runs per worker and table (or source) by day and UTC hour, with failures and time spent.
materialized: view
columns:
  unit: The table (or mart, or event table) the rows are about; the source for cdc-sync.
  weekday: 1 (Sunday) to 7 (Saturday).
  seconds: Time the units ran, summed.
*/
SELECT
  worker,
  COALESCE(table_name, source, worker) AS unit,
  DATE(started_at) AS day,
  EXTRACT(HOUR FROM started_at) AS hour,
  EXTRACT(DAYOFWEEK FROM started_at) AS weekday,
  COUNT(*) AS runs,
  COUNTIF(status = 'failed') AS failed,
  SUM(TIMESTAMP_DIFF(finished_at, started_at, MILLISECOND)) / 1000 AS seconds
FROM ops.runs
GROUP BY worker, unit, day, hour, weekday

/*
description: Every table of the pipeline's datasets, with what pipeline.yaml and marts/ declare of it (producer, owner, description, schedule, freshness SLA) and what BigQuery knows (type, rows, bytes, last change). Tables sluice did not declare are listed too.
materialized: view
columns:
  dataset: Dataset, as this target writes it.
  declared: Whether pipeline.yaml or marts/ declare the table.
  exists_in_bigquery: Whether BigQuery has it (a declared table not loaded yet has none).
  last_modified_at: When its storage last changed.
*/
WITH declared AS (
  SELECT * FROM ops.declared_tables
  WHERE declared_at = (SELECT MAX(declared_at) FROM ops.declared_tables)
),
storage AS (
  SELECT table_schema, table_name, table_type, creation_time, storage_last_modified_time, total_rows, total_logical_bytes
  FROM `region-us`.INFORMATION_SCHEMA.TABLE_STORAGE
  WHERE NOT deleted AND table_schema IN (SELECT DISTINCT dataset FROM declared)
)
SELECT
  COALESCE(d.dataset, s.table_schema) AS dataset,
  COALESCE(d.table_name, s.table_name) AS table_name,
  s.table_type,
  d.producer,
  d.source,
  d.owner,
  d.description,
  d.schedule,
  d.warn_after_s,
  d.error_after_s,
  s.creation_time AS created_at,
  s.storage_last_modified_time AS last_modified_at,
  s.total_rows AS row_count,
  s.total_logical_bytes AS logical_bytes,
  d.dataset IS NOT NULL AS declared,
  s.table_name IS NOT NULL AS exists_in_bigquery
FROM declared AS d
FULL OUTER JOIN storage AS s ON s.table_schema = d.dataset AND s.table_name = d.table_name

/*
description: Every column of the pipeline's tables (nested fields by their path), with its type, description, and the table's owner and producer.
materialized: view
*/
WITH declared AS (
  SELECT * FROM ops.declared_tables
  WHERE declared_at = (SELECT MAX(declared_at) FROM ops.declared_tables)
)
SELECT
  c.table_schema AS dataset,
  c.table_name,
  c.column_name,
  p.field_path,
  c.ordinal_position,
  p.data_type,
  p.description,
  c.is_nullable = 'YES' AS nullable,
  c.is_partitioning_column = 'YES' AS partitioning,
  c.clustering_ordinal_position,
  d.owner,
  d.producer
FROM `region-us`.INFORMATION_SCHEMA.COLUMNS AS c
JOIN `region-us`.INFORMATION_SCHEMA.COLUMN_FIELD_PATHS AS p
  ON p.table_schema = c.table_schema AND p.table_name = c.table_name AND p.column_name = c.column_name
JOIN declared AS d ON d.dataset = c.table_schema AND d.table_name = c.table_name

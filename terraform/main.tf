# The root module reads pipeline.yaml, so schedules and resources come from the same file the
# workers read. Cloud Run jobs and schedulers are added by the issues that deploy the workers.

locals {
  pipeline = yamldecode(file(var.pipeline_file))
  target   = try(local.pipeline.targets[var.target], {})
  project  = try(local.target.project, local.pipeline.bigquery.project)

  # One pg-copy schedule per table, keyed "source.table" so edits never reshuffle resources.
  pg_copy_tables = merge([
    for source_name, source in try(local.pipeline.sources, {}) : {
      for table_name, table in try(source.tables, {}) :
      "${source_name}.${table_name}" => {
        source   = source_name
        table    = table_name
        mode     = table.mode
        schedule = try(table.schedule, "daily")
      }
    }
  ]...)
}

output "project" {
  description = "The BigQuery project this target writes to."
  value       = local.project
}

output "pg_copy_tables" {
  description = "Tables pg-copy copies, with mode and schedule, keyed source.table."
  value       = local.pg_copy_tables
}

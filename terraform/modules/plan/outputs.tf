output "service_accounts" {
  description = "Service accounts to create, keyed by worker or role (scheduler, push, queries): account_id, display_name."
  value       = local.service_accounts
}

output "dataset_grants" {
  description = "BigQuery dataset roles, keyed account/dataset: account, project, dataset, role."
  value       = local.dataset_grants
}

output "bucket_grants" {
  description = "Roles on the lake bucket, keyed by account."
  value       = local.bucket_grants
}

output "prefix_grants" {
  description = "Lake prefixes a worker may write objects under (and nothing else of the bucket), keyed by account."
  value       = local.prefix_grants
}

output "table_grants" {
  description = "BigQuery table roles, keyed account/dataset.table: account, dataset, table, role."
  value       = local.table_grants
}

output "ops_tables" {
  description = "The ops tables Terraform creates, by name: the BigQuery table resource (schema, partitioning, clustering, description) the workers would create."
  value       = local.d.ops_tables
}

output "secret_grants" {
  description = "secretAccessor grants, keyed account/secret-or-variable: account, secret (an id, or a full projects/P/secrets/S name)."
  value       = local.secret_grants
  precondition {
    condition     = length(local.missing_dsn) == 0
    error_message = "pipeline.yaml reads a DSN or webhook URL from ${join(", ", local.missing_dsn)}: give the Secret Manager secret that holds it in dsn_secrets, e.g. dsn_secrets = { ${try(local.missing_dsn[0], "VAR")} = \"shop-dsn\" }."
  }
}

output "secrets" {
  description = "Secret ids (in the deployment's project) whose containers Terraform creates; their values are added with gcloud, never through Terraform."
  value       = local.secrets
}

output "jobs" {
  description = "Cloud Run jobs, keyed by worker: name, service_account, postgres, cpu, memory, timeout_seconds, max_retries, env, secret_env, and schedules (keyed by scheduler job name: cron, args, task_count, timeout_seconds, description)."
  value       = local.jobs
}

output "service" {
  description = "The log-ingest service with its topic, subscription, dead-letter names and push account; null when pipeline.yaml has no events."
  value       = local.d.service
  precondition {
    condition     = local.d.service == null || (local.push_email != null && endswith(coalesce(local.push_email, "-"), "@${local.d.project}.iam.gserviceaccount.com"))
    error_message = "log-ingest checks push tokens: set events.push.service_account in pipeline.yaml to an account of project ${local.d.project} (NAME@${local.d.project}.iam.gserviceaccount.com); Terraform creates it."
  }
}

output "project_roles" {
  description = "Project-level roles, keyed account/role: roles/bigquery.jobUser, and for the monitor roles/bigquery.metadataViewer and roles/bigquery.resourceViewer (var.project_metadata_roles)."
  value       = local.project_roles
}

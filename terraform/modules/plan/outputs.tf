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
  description = "Cloud Run jobs, keyed by worker: name, service_account, postgres, paused (its schedules wait for var.secrets_ready), cpu, memory, timeout_seconds, max_retries, env, secret_env, and schedules (keyed by scheduler job name: cron, args, task_count, timeout_seconds, description)."
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

output "paused_schedules" {
  description = "Cloud Scheduler jobs created paused because their Cloud Run job reads a secret and var.secrets_ready is false."
  value       = local.paused_schedules
}

output "project" {
  description = "The project this target deploys into, given only when the workspace (state) is the target's own. The root takes its project (provider configuration included) from here, so every plan, a -target one too, passes this guard before it plans anything."
  value       = var.deployment.project
  precondition {
    condition     = var.workspace == var.target
    error_message = "${var.workspace == "default" ? "No workspace is selected (this is Terraform's `default` state, which no target uses)" : "This is the state of target ${var.workspace}"}, but the plan is for target ${var.target}: every target keeps its own state. Run `terraform workspace select ${var.target}` (the first time: `terraform workspace new ${var.target}`) and plan again."
  }
}

output "pull_requests" {
  description = "The pull-request identity, or null: repository (owner/name), project (where <dataset>_pr_<n> datasets are written), account_id, read_grants (dataViewer on what the base target's marts read, keyed pull-requests/project.dataset) and write_condition (the IAM condition naming `_pr_` datasets)."
  value       = local.pull_requests
  precondition {
    condition     = var.github_repository == null || !local.d.owns_shared || local.pr_project != ""
    error_message = "github_repository is set, but the deployment file has no dev target for pull-request targets to derive from (pr-123 takes dev's project and inputs): add a dev target to pipeline.yaml and run `make deployment`."
  }
}

output "project" {
  description = "The project this target deploys into."
  value       = local.project
}

output "workspace" {
  description = "The workspace (state) this run used: always the target's own (modules/plan refuses any other)."
  value       = terraform.workspace
}

# The repositories' outputs name the resources (production's), not only the path: with
# `-target` (Deploy step 4 of the README, before any image exists) Terraform saves an output
# only when the resources it depends on were applied.
output "image_repository" {
  description = "Where cloudbuild.yaml pushes the image (its _REPOSITORY)."
  value       = try("${local.registry}/${google_artifact_registry_repository.images["sluice"].repository_id}", "${local.registry}/sluice")
}

output "image_cache_repository" {
  description = "Where cloudbuild.yaml keeps BuildKit's layer cache (its _CACHE_REPOSITORY; mutable tags)."
  value       = try("${local.registry}/${google_artifact_registry_repository.build_cache["sluice-cache"].repository_id}", "${local.registry}/sluice-cache")
}

output "build_service_account" {
  description = "The account cloudbuild.yaml runs as: `gcloud builds submit --service-account=` this (projects/P/serviceAccounts/EMAIL). Empty for targets that do not own the shared resources."
  value       = local.d.owns_shared ? google_service_account.build["sluice"].id : ""
}

output "build_source_staging_dir" {
  description = "Where `gcloud builds submit --gcs-source-staging-dir=` uploads the source (a bucket the build account may read). Empty for targets that do not own the shared resources."
  value       = local.d.owns_shared ? "gs://${google_storage_bucket.build_source["sluice"].name}/source" : ""
}

output "paused_schedules" {
  description = "Cloud Scheduler jobs created paused because their Cloud Run job reads a secret and secrets_ready is false. Add the secrets' values, then apply with -var secrets_ready=true."
  value       = module.plan.paused_schedules
}

output "github_actions_secrets" {
  description = "The repository secrets .github/workflows/pull-request.yml reads (identifiers, not credentials): GCP_WORKLOAD_IDENTITY_PROVIDER and GCP_SERVICE_ACCOUNT; null without github_repository."
  value = length(local.pull_requests) == 0 ? null : {
    GCP_WORKLOAD_IDENTITY_PROVIDER = google_iam_workload_identity_pool_provider.github["github"].name
    GCP_SERVICE_ACCOUNT            = google_service_account.pull_request["github"].email
  }
}

output "image" {
  description = "The image every job and the service run."
  value       = local.image
}

output "lake_bucket" {
  description = "The lake bucket (gs://NAME/raw/…, gs://NAME/cdc/…)."
  value       = local.d.lake_bucket
}

output "datasets" {
  description = "BigQuery datasets this target writes."
  value       = keys(local.d.datasets)
}

output "service_accounts" {
  description = "Service account e-mail per worker and role."
  value       = local.sa_email
}

output "jobs" {
  description = "Cloud Run jobs and, for each, its Cloud Scheduler jobs with their crons."
  value       = { for k, j in module.job : j.name => j.schedules }
}

output "log_ingest" {
  description = "The log-ingest service URL and the topic the app publishes to (event_publishers may publish there)."
  value       = { for k, s in module.log_ingest : k => { uri = s.uri, topic = s.topic, dead_letter_subscription = s.dead_letter_subscription } }
}

output "scheduled_queries" {
  description = "Marts run as BigQuery scheduled queries, with their schedules."
  value       = { for k, q in local.scheduled_queries : k => q.schedule }
}

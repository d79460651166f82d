output "project" {
  description = "The project this target deploys into."
  value       = local.project
}

output "image_repository" {
  description = "Where cloudbuild.yaml pushes the image (its _REPOSITORY)."
  value       = "${var.region}-docker.pkg.dev/${local.project}/sluice"
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
  description = "The log-ingest service URL and the topic the app publishes to."
  value       = { for k, s in module.log_ingest : k => { uri = s.uri, topic = s.topic, dead_letter_subscription = s.dead_letter_subscription } }
}

output "scheduled_queries" {
  description = "Marts run as BigQuery scheduled queries, with their schedules."
  value       = { for k, q in local.scheduled_queries : k => q.schedule }
}

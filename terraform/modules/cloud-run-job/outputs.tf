output "name" {
  description = "The Cloud Run job's name."
  value       = google_cloud_run_v2_job.this.name
}

output "id" {
  description = "The Cloud Run job's id (projects/P/locations/R/jobs/N)."
  value       = google_cloud_run_v2_job.this.id
}

output "schedules" {
  description = "Cloud Scheduler job names and their cron expressions."
  value       = { for k, s in google_cloud_scheduler_job.run : k => s.schedule }
}

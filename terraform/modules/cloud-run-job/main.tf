# A Cloud Run v2 job for one worker, and the Cloud Scheduler jobs that run it. Each schedule
# calls the Cloud Run Admin API's jobs:run with an OAuth token of the scheduler account,
# passing its arguments, task count and timeout as overrides.

resource "google_cloud_run_v2_job" "this" {
  project             = var.project
  location            = var.region
  name                = var.name
  labels              = var.labels
  deletion_protection = false

  template {
    labels = var.labels
    template {
      service_account = var.service_account_email
      timeout         = "${var.timeout_seconds}s"
      max_retries     = var.max_retries

      containers {
        image   = var.image
        command = var.command
        resources {
          limits = { cpu = var.cpu, memory = var.memory }
        }
        dynamic "env" {
          for_each = var.env
          content {
            name  = env.key
            value = env.value
          }
        }
        dynamic "env" {
          for_each = var.secret_env
          content {
            name = env.key
            value_source {
              secret_key_ref {
                secret  = env.value
                version = "latest"
              }
            }
          }
        }
        dynamic "volume_mounts" {
          for_each = var.cloudsql.mode == "connector" ? { cloudsql = "/cloudsql" } : {}
          content {
            name       = volume_mounts.key
            mount_path = volume_mounts.value
          }
        }
      }

      dynamic "volumes" {
        for_each = var.cloudsql.mode == "connector" ? { cloudsql = var.cloudsql.instance } : {}
        content {
          name = volumes.key
          cloud_sql_instance {
            instances = [volumes.value]
          }
        }
      }

      dynamic "vpc_access" {
        for_each = var.cloudsql.mode == "vpc" ? { vpc = var.cloudsql } : {}
        content {
          egress = "PRIVATE_RANGES_ONLY"
          network_interfaces {
            network    = vpc_access.value.network
            subnetwork = vpc_access.value.subnetwork
          }
        }
      }
    }
  }
}

# The scheduler account may run this job, with overrides, and nothing else.
resource "google_cloud_run_v2_job_iam_member" "scheduler" {
  project  = var.project
  location = var.region
  name     = google_cloud_run_v2_job.this.name
  role     = "roles/run.jobsExecutorWithOverrides"
  member   = "serviceAccount:${var.scheduler_service_account_email}"
}

resource "google_cloud_scheduler_job" "run" {
  for_each = var.schedules

  project          = var.project
  region           = var.region
  name             = each.key
  description      = each.value.description
  schedule         = each.value.cron
  time_zone        = each.value.time_zone
  attempt_deadline = "60s"
  # Created paused while a secret the job reads may still be empty (see var.paused).
  paused = var.paused

  # An execution that failed is visible in ops.runs and alerts; the next schedule runs again.
  retry_config {
    retry_count = 0
  }

  http_target {
    http_method = "POST"
    uri         = "https://run.googleapis.com/v2/projects/${var.project}/locations/${var.region}/jobs/${google_cloud_run_v2_job.this.name}:run"
    headers     = { "Content-Type" = "application/json" }
    body = base64encode(jsonencode({
      overrides = {
        containerOverrides = [{ args = each.value.args }]
        taskCount          = each.value.task_count
        timeout            = "${each.value.timeout_seconds}s"
      }
    }))
    oauth_token {
      service_account_email = var.scheduler_service_account_email
      scope                 = "https://www.googleapis.com/auth/cloud-platform"
    }
  }

  depends_on = [google_cloud_run_v2_job_iam_member.scheduler]
}

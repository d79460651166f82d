# Production for the sample shop pipeline: the Cloud SQL instance through the connector, the
# DSN in Secret Manager secret `shop-dsn`. Run from this directory (the root module refuses any
# workspace but the target's own, and the root's gcs backend does not apply to a called module):
#   terraform init && terraform workspace select -or-create prod
#   terraform apply -var image_tag=$(git rev-parse --short HEAD)

variable "image_tag" {
  type        = string
  description = "The image tag cloudbuild.yaml pushed."
}

module "sluice" {
  source = "../.."

  target      = "prod"
  region      = "us-central1"
  image_tag   = var.image_tag
  dsn_secrets = { SHOP_DATABASE_URL = "shop-dsn", SLACK_WEBHOOK_URL = "slack-webhook", TEAMS_WEBHOOK_URL = "teams-webhook" }
  cloudsql = {
    mode     = "connector"
    instance = "acme-shop-data:us-central1:shop"
  }
  log_ingest = {
    min_instances = 1
    max_instances = 10
  }
}

output "log_ingest" {
  description = "The push endpoint and the topic the app publishes to."
  value       = module.sluice.log_ingest
}

output "jobs" {
  description = "Cloud Run jobs and their schedules."
  value       = module.sluice.jobs
}

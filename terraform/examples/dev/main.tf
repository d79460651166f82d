# A dev deployment next to production in the same project: names carry -dev, datasets _dev,
# marts read production's inputs. Postgres is reached over direct VPC egress.
#   terraform init && terraform workspace select -or-create dev
#   terraform apply -var image_tag=$(git rev-parse --short HEAD)

variable "image_tag" {
  type        = string
  description = "The image tag cloudbuild.yaml pushed."
}

module "sluice" {
  source = "../.."

  target      = "dev"
  image_tag   = var.image_tag
  dsn_secrets = { SHOP_DATABASE_URL = "shop-dsn-dev", SLACK_WEBHOOK_URL = "slack-webhook-dev", TEAMS_WEBHOOK_URL = "teams-webhook-dev" }
  cloudsql = {
    mode       = "vpc"
    network    = "default"
    subnetwork = "default"
  }
}

output "jobs" {
  description = "Cloud Run jobs and their schedules."
  value       = module.sluice.jobs
}

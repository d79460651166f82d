# The root module: everything pipeline.yaml describes, for one target. What exists (datasets,
# jobs, schedules, grants) comes from deployment.json, which mart-build derives from
# pipeline.yaml, schemas/ and marts/ with the workers' own code; modules/plan turns it into
# keyed maps; this file and the modules create the resources.

locals {
  deployment_all = jsondecode(file("${path.module}/${var.deployment_file}"))
  d              = local.deployment_all.targets[var.target]
  # Through the plan's workspace guard: the provider and every resource wait for it.
  project        = module.plan.project
  pipeline_label = lower(replace(local.deployment_all.pipeline, "/[^a-zA-Z0-9_-]/", "-"))
  registry       = "${var.region}-docker.pkg.dev/${local.project}"
  image          = "${local.registry}/sluice/sluice:${var.image_tag}"
  sa_email       = { for k, sa in google_service_account.worker : k => sa.email }
  apis = toset(concat(
    ["run.googleapis.com", "cloudscheduler.googleapis.com", "pubsub.googleapis.com", "bigquery.googleapis.com",
      "bigquerydatatransfer.googleapis.com", "secretmanager.googleapis.com", "artifactregistry.googleapis.com",
      "storage.googleapis.com", "iam.googleapis.com", "cloudbuild.googleapis.com", "logging.googleapis.com",
    "iamcredentials.googleapis.com", "sts.googleapis.com", "cloudresourcemanager.googleapis.com"],
    var.cloudsql.mode == "connector" ? ["sqladmin.googleapis.com"] : [],
  ))
}

check "target_is_in_the_deployment_file" {
  assert {
    condition     = contains(keys(local.deployment_all.targets), var.target)
    error_message = "${var.deployment_file} has no target ${var.target}: run `cargo run -p sluice-deploy -- export-deployment --for ${var.target} --out terraform/${var.deployment_file}`."
  }
}

module "plan" {
  source        = "./modules/plan"
  deployment    = local.d
  target        = var.target
  workspace     = terraform.workspace
  dsn_secrets   = var.dsn_secrets
  secrets_ready = var.secrets_ready

  project_metadata_roles = var.monitor_project_metadata_roles
  github_repository      = var.github_repository
  pull_request_base      = try(local.deployment_all.targets.dev, null)
}

data "google_project" "this" {
  project_id = local.project
}

# ---------------------------------------------------------------- shared: APIs, images, lake
# Production owns what dev and pull-request targets share with it in one project.

resource "google_project_service" "api" {
  for_each           = local.d.owns_shared ? local.apis : toset([])
  project            = local.project
  service            = each.value
  disable_on_destroy = false
}

resource "google_artifact_registry_repository" "images" {
  # checkov:skip=CKV_GCP_84:Google-managed encryption. A customer-managed key needs a Cloud KMS key ring, its rotation and grants for the Artifact Registry agent; the images hold code, no data.
  for_each      = local.d.owns_shared ? { sluice = var.region } : {}
  project       = local.project
  location      = each.value
  repository_id = each.key
  format        = "DOCKER"
  description   = "sluice worker images (cloudbuild.yaml pushes them)"
  docker_config {
    immutable_tags = true
  }
  # Every image here is tagged (tags are immutable, one per build), so a keep policy alone deletes
  # nothing: a keep policy only exempts versions from delete policies. The delete policy takes
  # every image older than min_age_days; the keep policy, which wins over it, saves the newest
  # keep_count.
  cleanup_policy_dry_run = false
  cleanup_policies {
    id     = "keep-newest"
    action = "KEEP"
    most_recent_versions {
      keep_count = var.image_retention.keep_count
    }
  }
  cleanup_policies {
    id     = "delete-older"
    action = "DELETE"
    condition {
      tag_state  = "ANY"
      older_than = "${var.image_retention.min_age_days * 86400}s"
    }
  }
  cleanup_policies {
    id     = "delete-untagged"
    action = "DELETE"
    condition {
      tag_state  = "UNTAGGED"
      older_than = "604800s"
    }
  }
  depends_on = [google_project_service.api]
}

# BuildKit's registry cache (cloudbuild.yaml: --cache-to type=registry,mode=max) rewrites one tag,
# `buildcache`, on every build, which the release repository's immutable tags refuse; so the
# cache has a repository of its own with mutable tags. A replaced cache manifest is untagged and
# goes after two days.
resource "google_artifact_registry_repository" "build_cache" {
  # checkov:skip=CKV_GCP_84:Google-managed encryption, as for the image repository: build cache layers hold code and compiled dependencies, no data.
  for_each      = local.d.owns_shared ? { sluice-cache = var.region } : {}
  project       = local.project
  location      = each.value
  repository_id = each.key
  format        = "DOCKER"
  description   = "BuildKit layer cache of cloudbuild.yaml (mutable tag buildcache); safe to empty"
  docker_config {
    immutable_tags = false
  }
  cleanup_policy_dry_run = false
  cleanup_policies {
    id     = "delete-replaced-cache"
    action = "DELETE"
    condition {
      tag_state  = "UNTAGGED"
      older_than = "172800s"
    }
  }
  depends_on = [google_project_service.api]
}

resource "google_storage_bucket" "lake" {
  # checkov:skip=CKV_GCP_62:Access is recorded by Cloud Audit Logs (enable Data Access logs for storage.googleapis.com); a second bucket for usage logs would only duplicate them.
  for_each                    = local.d.owns_shared ? { (local.d.lake_bucket) = local.d.location } : {}
  project                     = local.project
  name                        = each.key
  location                    = each.value
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false
  versioning {
    enabled = true
  }
  soft_delete_policy {
    retention_duration_seconds = 604800
  }
  lifecycle_rule {
    action {
      type = "Delete"
    }
    condition {
      age            = var.lake_retention_days.raw
      matches_prefix = ["raw/"]
    }
  }
  lifecycle_rule {
    action {
      type = "Delete"
    }
    condition {
      age            = var.lake_retention_days.cdc
      matches_prefix = ["cdc/"]
    }
  }
  # Versioning keeps a replaced file; a noncurrent version goes after a week.
  lifecycle_rule {
    action {
      type = "Delete"
    }
    condition {
      days_since_noncurrent_time = 7
      with_state                 = "ARCHIVED"
    }
  }
  lifecycle_rule {
    action {
      type = "AbortIncompleteMultipartUpload"
    }
    condition {
      age = 1
    }
  }
  depends_on = [google_project_service.api]
}

# ---------------------------------------------------------------- datasets

resource "google_bigquery_dataset" "this" {
  # checkov:skip=CKV_GCP_81:Google-managed encryption. A customer-managed key would have to be granted to the BigQuery service agent and kept for as long as any table exists; a team that needs it sets default_encryption_configuration here.
  for_each                    = local.d.datasets
  project                     = local.project
  dataset_id                  = each.key
  location                    = local.d.location
  description                 = each.value.description
  labels                      = { sluice_role = each.value.role }
  default_table_expiration_ms = each.value.role == "staging" ? 86400000 : null
  delete_contents_on_destroy  = false
  depends_on                  = [google_project_service.api]
}

# ---------------------------------------------------------------- identities and grants

resource "google_service_account" "worker" {
  for_each     = module.plan.service_accounts
  project      = local.project
  account_id   = each.value.account_id
  display_name = each.value.display_name
  depends_on   = [google_project_service.api]
}

# Only BigQuery job creation is granted on the project: jobs are not a resource of a dataset.
resource "google_project_iam_member" "job_user" {
  for_each = module.plan.project_roles
  project  = local.project
  role     = each.value.role
  member   = "serviceAccount:${local.sa_email[each.value.account]}"
}

resource "google_bigquery_dataset_iam_member" "grant" {
  for_each   = module.plan.dataset_grants
  project    = each.value.project
  dataset_id = each.value.dataset
  role       = each.value.role
  member     = "serviceAccount:${local.sa_email[each.value.account]}"
  depends_on = [google_bigquery_dataset.this]
}

resource "google_storage_bucket_iam_member" "lake" {
  for_each   = module.plan.bucket_grants
  bucket     = local.d.lake_bucket
  role       = each.value
  member     = "serviceAccount:${local.sa_email[each.key]}"
  depends_on = [google_storage_bucket.lake]
}

# Secret containers only: the value is added with `gcloud secrets versions add` and never
# enters Terraform's state.
resource "google_secret_manager_secret" "dsn" {
  for_each  = module.plan.secrets
  project   = local.project
  secret_id = each.value
  replication {
    auto {}
  }
  depends_on = [google_project_service.api]
}

resource "google_secret_manager_secret_iam_member" "dsn" {
  for_each  = module.plan.secret_grants
  project   = local.project
  secret_id = startswith(each.value.secret, "projects/") ? each.value.secret : google_secret_manager_secret.dsn[each.value.secret].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${local.sa_email[each.value.account]}"
}

# The Cloud SQL connector needs cloudsql.client, which exists only at project level; the
# condition narrows it to the one instance.
resource "google_project_iam_member" "cloudsql_client" {
  for_each = var.cloudsql.mode == "connector" ? { for k, j in module.plan.jobs : k => j if j.postgres } : {}
  project  = local.project
  role     = "roles/cloudsql.client"
  member   = "serviceAccount:${local.sa_email[each.value.service_account]}"
  condition {
    title      = "only-${replace(split(":", var.cloudsql.instance)[2], "_", "-")}"
    expression = "resource.name == \"projects/${split(":", var.cloudsql.instance)[0]}/instances/${split(":", var.cloudsql.instance)[2]}\" && resource.service == \"sqladmin.googleapis.com\""
  }
}

# Workers and the service must be able to act as their own accounts when Terraform deploys
# them; the scheduler and push accounts are used by Google's service agents. Nothing else.

# ---------------------------------------------------------------- Cloud Run jobs and schedules

module "job" {
  source   = "./modules/cloud-run-job"
  for_each = module.plan.jobs

  project                         = local.project
  region                          = var.region
  name                            = each.value.name
  image                           = local.image
  command                         = ["/usr/local/bin/${each.value.worker}"]
  service_account_email           = local.sa_email[each.value.service_account]
  env                             = each.value.env
  secret_env                      = { for k, s in each.value.secret_env : k => startswith(s, "projects/") ? s : google_secret_manager_secret.dsn[s].id }
  cpu                             = each.value.cpu
  memory                          = each.value.memory
  timeout_seconds                 = each.value.timeout_seconds
  max_retries                     = each.value.max_retries
  schedules                       = each.value.schedules
  paused                          = each.value.paused
  scheduler_service_account_email = local.sa_email["scheduler"]
  cloudsql                        = each.value.postgres ? var.cloudsql : { mode = "none", instance = "", network = "", subnetwork = "" }
  labels                          = { sluice_worker = each.value.worker }

  depends_on = [google_secret_manager_secret_iam_member.dsn, google_project_iam_member.job_user]
}

# ---------------------------------------------------------------- log-ingest

module "log_ingest" {
  source   = "./modules/push-service"
  for_each = module.plan.service == null ? {} : { log-ingest = module.plan.service }

  project                    = local.project
  project_number             = data.google_project.this.number
  region                     = var.region
  name                       = each.value.name
  image                      = local.image
  args                       = each.value.args
  env                        = { SLUICE_TARGET = var.target, SLUICE_PIPELINE = "/etc/sluice/pipeline.yaml" }
  service_account_email      = local.sa_email["log-ingest"]
  push_service_account_email = each.value.push_service_account
  audience                   = coalesce(each.value.audience, "")
  topic                      = each.value.topic
  publishers                 = var.event_publishers
  subscription               = each.value.subscription
  dead_letter_topic          = each.value.dead_letter_topic
  dead_letter_subscription   = each.value.dead_letter_subscription
  max_delivery_attempts      = var.log_ingest.max_delivery_attempts
  min_instances              = var.log_ingest.min_instances
  max_instances              = var.log_ingest.max_instances
  concurrency                = var.log_ingest.concurrency
  labels                     = { sluice_worker = "log-ingest" }

  depends_on = [google_project_iam_member.job_user, google_bigquery_dataset_iam_member.grant, google_service_account.worker]
}

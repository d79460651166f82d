variable "target" {
  type        = string
  description = "The pipeline.yaml target this deployment is: dev, prod, or a pull-request name like pr-123 (whose entry `sluice-deploy export-deployment --for pr-123` adds to the deployment file). It must equal the selected workspace (`terraform workspace select TARGET`): each target has its own state."
  default     = "prod"
  validation {
    condition     = can(regex("^(dev|prod|pr[-_][a-z0-9]+|[a-z][a-z0-9_-]*)$", var.target)) && var.target != "default"
    error_message = "target must be a pipeline.yaml target name such as dev, prod or pr-123 (not `default`: that is the workspace no target uses)."
  }
}

variable "deployment_file" {
  type        = string
  description = "JSON written by `make deployment` (sluice-deploy export-deployment): what each target deploys."
  default     = "deployment.json"
}

variable "region" {
  type        = string
  description = "Region of Cloud Run, Cloud Scheduler and Artifact Registry, e.g. us-central1. BigQuery datasets and the lake use pipeline.yaml's bigquery.location."
  default     = "us-central1"
  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]$", var.region))
    error_message = "region must be a Google Cloud region such as us-central1 or europe-west1."
  }
}

variable "image_tag" {
  type        = string
  description = "Tag of the sluice image in the Artifact Registry repository (tags are immutable; usually the commit, as cloudbuild.yaml pushes it)."
  validation {
    condition     = can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", var.image_tag)) && var.image_tag != "latest"
    error_message = "image_tag must be a Docker tag other than `latest` (the repository's tags are immutable)."
  }
}

variable "dsn_secrets" {
  type        = map(string)
  description = "For each environment variable pipeline.yaml reads a secret from (a source's `dsn: {env: VAR}`, an alerts channel's `url: {env: VAR}`), the Secret Manager secret id that holds it, e.g. { SHOP_DATABASE_URL = \"shop-dsn\", SLACK_WEBHOOK_URL = \"slack-webhook\" }. Terraform creates the secret's container; add its value with `gcloud secrets versions add`."
  default     = {}
}

variable "cloudsql" {
  type = object({
    mode       = string
    instance   = optional(string, "")
    network    = optional(string, "")
    subnetwork = optional(string, "")
  })
  description = "How pg-copy and cdc-sync reach Postgres: `connector` (the Cloud SQL connector volume; instance = PROJECT:REGION:NAME, DSN host /cloudsql/PROJECT:REGION:NAME), `vpc` (direct VPC egress to network and subnetwork, DSN host the private IP) or `none` (a public endpoint the DSN names)."
  default     = { mode = "none" }
  validation {
    condition = (var.cloudsql.mode == "none"
      || (var.cloudsql.mode == "connector" && can(regex("^[a-z][a-z0-9-]*:[a-z0-9-]+:[a-z][a-z0-9-]*$", var.cloudsql.instance)))
    || (var.cloudsql.mode == "vpc" && var.cloudsql.network != "" && var.cloudsql.subnetwork != ""))
    error_message = "cloudsql: mode none; or connector with instance PROJECT:REGION:NAME; or vpc with network and subnetwork."
  }
}

variable "log_ingest" {
  type = object({
    min_instances         = optional(number, 0)
    max_instances         = optional(number, 5)
    concurrency           = optional(number, 80)
    max_delivery_attempts = optional(number, 10)
  })
  description = "Scaling of the log-ingest service and deliveries before a message is dead-lettered."
  default     = {}
}

variable "lake_retention_days" {
  type = object({
    raw = optional(number, 90)
    cdc = optional(number, 30)
  })
  description = "Days objects under raw/ (pg-copy's Parquet files) and cdc/ (cdc-sync's batches) stay in the lake; BigQuery holds the data, the files allow reloads (`pg-copy --from-lake`)."
  default     = {}
  validation {
    condition     = var.lake_retention_days.raw >= 1 && var.lake_retention_days.cdc >= 1
    error_message = "lake_retention_days must be at least one day each."
  }
}

variable "views_file" {
  description = "The monitor's ops views per target, written by `sluice-deploy export-views` (make deployment), relative to this module."
  type        = string
  default     = "views.json"
}

variable "monitor_project_metadata_roles" {
  description = "Grant the monitor roles/bigquery.metadataViewer and roles/bigquery.resourceViewer on the project, which the catalog, usage and cost views need (region-qualified INFORMATION_SCHEMA and JOBS check project-level listing; no dataset grant serves them). false leaves those views answering with a permission error."
  type        = bool
  default     = true
}

variable "secrets_ready" {
  description = "Set to true once every Secret Manager secret in dsn_secrets (and any pipeline.yaml names) has a version (`gcloud secrets versions add`). Until then the Cloud Scheduler jobs of the Cloud Run jobs that read a secret are created paused (output `paused_schedules`), so they do not fail every few minutes on an empty secret; the next apply with true resumes them."
  type        = bool
  default     = false
}

variable "event_publishers" {
  description = "IAM principals of the app that publish events, e.g. [\"serviceAccount:shop-api@acme-shop-data.iam.gserviceaccount.com\"]: each gets roles/pubsub.publisher on this target's events topic and nothing else."
  type        = set(string)
  default     = []
  validation {
    condition     = alltrue([for p in var.event_publishers : can(regex("^(serviceAccount|user|group|principal|principalSet):[^\\s]+$", p))])
    error_message = "event_publishers are IAM principals such as serviceAccount:NAME@PROJECT.iam.gserviceaccount.com or group:team@example.com; public members are refused."
  }
}

variable "image_retention" {
  type = object({
    keep_count   = optional(number, 20)
    min_age_days = optional(number, 30)
  })
  description = "Artifact Registry cleanup of the image repository: the newest keep_count images are always kept; any other image is deleted once older than min_age_days (so an image deployed a week ago is never deleted by a burst of builds). Untagged images go after 7 days. The deployed image must outlive both: keep_count should exceed the builds made between two deploys."
  default     = {}
  validation {
    condition     = var.image_retention.keep_count >= 2 && var.image_retention.min_age_days >= 1
    error_message = "image_retention: keep_count at least 2 (the running image and one to roll back to), min_age_days at least 1."
  }
}

variable "build_submitters" {
  description = "Principals who run `gcloud builds submit` with the build service account (roles/iam.serviceAccountUser on that account, and object creation in the build source bucket), e.g. [\"group:data-team@example.com\"]. Project owners need no entry. They also need roles/cloudbuild.builds.editor on the project, which this module does not grant."
  type        = set(string)
  default     = []
  validation {
    condition     = alltrue([for p in var.build_submitters : can(regex("^(serviceAccount|user|group|principal|principalSet):[^\\s]+$", p))])
    error_message = "build_submitters are IAM principals such as user:me@example.com or group:team@example.com."
  }
}

variable "github_repository" {
  description = "OWNER/NAME of the GitHub repository whose pull-request workflow may act as the pull-request account through workload identity federation (only that repository's tokens are accepted), or null for none. Used by the target that owns the shared resources (prod); pull-request targets derive from the dev target of the deployment file."
  type        = string
  default     = null
  validation {
    condition     = var.github_repository == null || can(regex("^[A-Za-z0-9-]+/[A-Za-z0-9._-]+$", coalesce(var.github_repository, "-")))
    error_message = "github_repository must be OWNER/NAME, e.g. acme/sluice."
  }
}

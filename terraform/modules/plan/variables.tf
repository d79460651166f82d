variable "deployment" {
  description = "One target of terraform/deployment.json (written by `sluice-deploy export-deployment`): datasets, workers, schedules, service, scheduled queries."
  type = object({
    project           = string
    location          = string
    name_suffix       = string
    lake_bucket       = string
    owns_shared       = bool
    datasets          = map(object({ role = string, description = string }))
    workers           = map(object({ writes = list(string), reads = list(string), lake = bool, postgres = bool, secrets = list(string), dsn_env = list(string), table_writes = list(string), project_roles = list(string), lake_prefix = string }))
    schedules         = map(object({ worker = string, description = string, args = list(string), schedule = string, time_zone = string, task_count = number, timeout_seconds = number, max_retries = number, cpu = string, memory = string }))
    ops_tables        = any
    service           = any
    scheduled_queries = any
  })
  validation {
    condition     = alltrue([for w in keys(var.deployment.workers) : contains(["pg-copy", "cdc-sync", "log-ingest", "mart-build", "monitor"], w)])
    error_message = "deployment.workers may only name pg-copy, cdc-sync, log-ingest, mart-build and monitor."
  }
}

variable "target" {
  description = "The pipeline.yaml target: dev, prod, or a pull-request name like pr-123."
  type        = string
  validation {
    condition     = can(regex("^(dev|prod|pr[-_][a-z0-9]+|[a-z][a-z0-9_-]*)$", var.target)) && var.target != "default"
    error_message = "target must be a pipeline.yaml target name such as dev, prod or pr-123 (not `default`, the name of Terraform's unselected workspace)."
  }
}

variable "workspace" {
  description = "The Terraform workspace the root runs in (terraform.workspace). Each target keeps its state in the workspace of its own name, so a plan whose workspace is not its target would plan one target into another's state; output `workspace` refuses it."
  type        = string
  validation {
    condition     = length(var.workspace) > 0
    error_message = "workspace is the root's terraform.workspace, never empty."
  }
}

variable "secrets_ready" {
  description = "Whether every Secret Manager secret the workers read has a version. While false, the Cloud Scheduler jobs of the Cloud Run jobs that read a secret are created paused (jobs[*].paused), so a job does not fail every few minutes on an empty secret from the first apply."
  type        = bool
  default     = false
}

variable "github_repository" {
  description = "owner/name of the GitHub repository whose pull-request workflow may act as the pull-request account (workload identity federation), or null for none. Only the target that owns the shared resources (prod) creates it."
  type        = string
  default     = null
  validation {
    condition     = var.github_repository == null || can(regex("^[A-Za-z0-9-]+/[A-Za-z0-9._-]+$", coalesce(var.github_repository, "-")))
    error_message = "github_repository must be OWNER/NAME, e.g. acme/sluice."
  }
}

variable "pull_request_base" {
  description = "The target of deployment.json that pull-request targets derive from (dev: pr-123 writes <dataset>_dev_pr_123 in dev's project and reads what dev's marts read), or null when the deployment file has none."
  type        = any
  default     = null
}

variable "dsn_secrets" {
  description = "For each environment variable pipeline.yaml reads a secret from (a source's `dsn: {env: VAR}`, an alerts channel's `url: {env: VAR}`), the Secret Manager secret id that holds it in the cloud, e.g. { SHOP_DATABASE_URL = \"shop-dsn\" }. Values never pass through Terraform."
  type        = map(string)
  default     = {}
  validation {
    condition     = alltrue([for k, v in var.dsn_secrets : can(regex("^[A-Z_][A-Z0-9_]*$", k)) && can(regex("^[A-Za-z0-9_-]{1,255}$", v))])
    error_message = "dsn_secrets maps environment variable names (A-Z, 0-9, _) to secret ids (letters, digits, - and _)."
  }
}

variable "project_metadata_roles" {
  description = "Grant the monitor roles/bigquery.metadataViewer and roles/bigquery.resourceViewer on the project: region-qualified INFORMATION_SCHEMA (the catalog, storage cost) checks table listing on the project, and JOBS (usage, query cost) job listing; no dataset-level grant serves them. Without them those views answer with a permission error and the rest of the monitor works."
  type        = bool
  default     = true
}

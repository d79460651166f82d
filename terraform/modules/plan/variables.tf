variable "deployment" {
  description = "One target of terraform/deployment.json (written by `mart-build export-deployment`): datasets, workers, schedules, service, scheduled queries."
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
    condition     = can(regex("^(dev|prod|pr[-_][a-z0-9]+|[a-z][a-z0-9_-]*)$", var.target))
    error_message = "target must be a pipeline.yaml target name such as dev, prod or pr-123."
  }
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

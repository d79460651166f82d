variable "project" {
  description = "Project of the job and its schedules."
  type        = string
}

variable "region" {
  description = "Region of the Cloud Run job and the Cloud Scheduler jobs."
  type        = string
}

variable "name" {
  description = "Cloud Run job name, e.g. pg-copy or pg-copy-dev."
  type        = string
  validation {
    condition     = can(regex("^[a-z]([a-z0-9-]{0,47}[a-z0-9])?$", var.name))
    error_message = "name must be 1-49 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "image" {
  description = "Container image, e.g. us-docker.pkg.dev/P/sluice/sluice:abc123."
  type        = string
}

variable "command" {
  description = "The worker binary in the image, e.g. [\"/usr/local/bin/pg-copy\"]."
  type        = list(string)
}

variable "service_account_email" {
  description = "The worker's service account, which the job runs as."
  type        = string
}

variable "env" {
  description = "Plain environment variables (never secrets)."
  type        = map(string)
  default     = {}
}

variable "secret_env" {
  description = "Environment variables filled from Secret Manager: name => secret id or projects/P/secrets/S (latest version)."
  type        = map(string)
  default     = {}
}

variable "cpu" {
  description = "vCPUs per task."
  type        = string
  default     = "1"
  validation {
    condition     = contains(["1", "2", "4", "8"], var.cpu)
    error_message = "cpu must be 1, 2, 4 or 8."
  }
}

variable "memory" {
  description = "Memory per task, e.g. 1Gi."
  type        = string
  default     = "1Gi"
  validation {
    condition     = can(regex("^[0-9]+(Mi|Gi)$", var.memory))
    error_message = "memory must look like 512Mi or 4Gi."
  }
}

variable "timeout_seconds" {
  description = "Task timeout of an execution without overrides (each schedule passes its own)."
  type        = number
  default     = 3600
  validation {
    condition     = var.timeout_seconds >= 60 && var.timeout_seconds <= 86400
    error_message = "timeout_seconds must be between 60 and 86400."
  }
}

variable "max_retries" {
  description = "Retries of a failed task (workers are idempotent, so a retry is safe)."
  type        = number
  default     = 0
}

variable "schedules" {
  description = "Cloud Scheduler jobs that run this job, keyed by name: cron, its time_zone (default Etc/UTC), args, task_count, timeout_seconds, description."
  type = map(object({
    cron            = string
    time_zone       = optional(string, "Etc/UTC")
    args            = list(string)
    task_count      = number
    timeout_seconds = number
    description     = string
  }))
  default = {}
}

variable "paused" {
  description = "Create (or keep) this job's Cloud Scheduler jobs paused: the job reads a secret that may have no version yet, and every run would fail until it has one. false resumes them."
  type        = bool
  default     = false
}

variable "scheduler_service_account_email" {
  description = "The account Cloud Scheduler calls jobs:run as; it may run (with overrides) this job only."
  type        = string
}

variable "cloudsql" {
  description = "How the job reaches Cloud SQL: mode none, connector (instance = PROJECT:REGION:NAME, mounted at /cloudsql) or vpc (direct VPC egress to network/subnetwork)."
  type = object({
    mode       = string
    instance   = optional(string, "")
    network    = optional(string, "")
    subnetwork = optional(string, "")
  })
  default = { mode = "none" }
  validation {
    condition     = contains(["none", "connector", "vpc"], var.cloudsql.mode)
    error_message = "cloudsql.mode must be none, connector or vpc."
  }
}

variable "labels" {
  description = "Labels on the job."
  type        = map(string)
  default     = {}
}

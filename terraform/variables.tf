variable "target" {
  type        = string
  description = "The pipeline.yaml target this deployment is: dev, prod, or a pull-request name like pr-123."
  default     = "prod"
  validation {
    condition     = can(regex("^(dev|prod|pr[-_][a-z0-9]+)$", var.target))
    error_message = "target must be dev, prod, or a pull-request name like pr-123."
  }
}

variable "pipeline_file" {
  type        = string
  description = "Path of pipeline.yaml, the one source of truth for tables, modes and schedules."
  default     = "../pipeline.yaml"
}

variable "scheduled_queries_file" {
  type        = string
  description = "JSON written by `mart-build export-scheduled-queries`: marts that run as BigQuery scheduled queries."
  default     = "scheduled_queries.json"
}

variable "project" {
  description = "The Google Cloud project that holds production (pipeline.yaml's bigquery.project), e.g. acme-shop-data; the state bucket lives there."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project))
    error_message = "project must be a Google Cloud project id: 6-30 lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "location" {
  description = "Location of the state bucket: a region (us-central1) or multi-region (US, EU)."
  type        = string
  default     = "US"
  validation {
    condition     = can(regex("^([A-Z]+|[a-z]+-[a-z]+[0-9])$", var.location))
    error_message = "location must be a multi-region such as US or EU, or a region such as us-central1."
  }
}

variable "bucket" {
  description = "Name of the state bucket; null names it PROJECT-sluice-tfstate."
  type        = string
  default     = null
  validation {
    condition     = var.bucket == null || can(regex("^[a-z0-9][a-z0-9_.-]{1,61}[a-z0-9]$", coalesce(var.bucket, "x")))
    error_message = "bucket must be a Cloud Storage bucket name: 3-63 lowercase letters, digits, -, _ and ."
  }
}

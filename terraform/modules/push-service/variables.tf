variable "project" {
  description = "Project of the service, topics and subscriptions."
  type        = string
}

variable "project_number" {
  description = "Number of that project: the Pub/Sub service agent is service-NUMBER@gcp-sa-pubsub.iam.gserviceaccount.com."
  type        = string
}

variable "region" {
  description = "Region of the Cloud Run service."
  type        = string
}

variable "name" {
  description = "Cloud Run service name, e.g. log-ingest."
  type        = string
  validation {
    condition     = can(regex("^[a-z]([a-z0-9-]{0,47}[a-z0-9])?$", var.name))
    error_message = "name must be 1-49 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "image" {
  description = "Container image."
  type        = string
}

variable "args" {
  description = "Arguments of /usr/local/bin/log-ingest."
  type        = list(string)
  default     = ["serve"]
}

variable "env" {
  description = "Plain environment variables."
  type        = map(string)
  default     = {}
}

variable "service_account_email" {
  description = "log-ingest's own account, which the service runs as."
  type        = string
}

variable "push_service_account_email" {
  description = "The account Pub/Sub signs push OIDC tokens as; the only run.invoker of the service."
  type        = string
}

variable "audience" {
  description = "Audience of the push OIDC tokens (events.push.audience in pipeline.yaml); also a custom audience of the service. Empty: the service URL."
  type        = string
  default     = ""
}

variable "topic" {
  description = "Topic the app publishes events to."
  type        = string
}

variable "publishers" {
  description = "IAM principals that may publish to the events topic (roles/pubsub.publisher on that topic only), e.g. the app's service account."
  type        = set(string)
  default     = []
  validation {
    # Public members have no `type:` prefix, so the pattern refuses them.
    condition     = alltrue([for p in var.publishers : can(regex("^(serviceAccount|user|group|principal|principalSet):[^\\s]+$", p))])
    error_message = "publishers are IAM principals such as serviceAccount:NAME@PROJECT.iam.gserviceaccount.com or group:app@example.com; public members are refused."
  }
}

variable "subscription" {
  description = "The push subscription."
  type        = string
}

variable "dead_letter_topic" {
  description = "Topic that receives messages Pub/Sub could not deliver within max_delivery_attempts."
  type        = string
}

variable "dead_letter_subscription" {
  description = "Pull subscription that holds the dead-letter topic's messages for inspection and replay."
  type        = string
}

variable "max_delivery_attempts" {
  description = "Deliveries before a message goes to the dead-letter topic (5-100)."
  type        = number
  default     = 10
  validation {
    condition     = var.max_delivery_attempts >= 5 && var.max_delivery_attempts <= 100
    error_message = "max_delivery_attempts must be between 5 and 100 (Pub/Sub's limits)."
  }
}

variable "min_instances" {
  description = "Instances kept warm (0 scales to zero)."
  type        = number
  default     = 0
}

variable "max_instances" {
  description = "Instance ceiling."
  type        = number
  default     = 5
  validation {
    condition     = var.max_instances >= 1
    error_message = "max_instances must be at least 1."
  }
}

variable "concurrency" {
  description = "Push requests one instance serves at once."
  type        = number
  default     = 80
}

variable "labels" {
  description = "Labels on every resource."
  type        = map(string)
  default     = {}
}

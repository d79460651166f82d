# log-ingest as a Cloud Run v2 service behind a Pub/Sub push subscription: internal ingress,
# invocable by the push account only (OIDC token with the pipeline's audience), a retry
# policy, and a dead-letter topic whose messages a pull subscription keeps.

locals {
  audience      = var.audience != "" ? var.audience : null
  pubsub_agent  = "serviceAccount:service-${var.project_number}@gcp-sa-pubsub.iam.gserviceaccount.com"
  retention_one = "604800s" # seven days
}

resource "google_cloud_run_v2_service" "this" {
  project             = var.project
  location            = var.region
  name                = var.name
  labels              = var.labels
  ingress             = "INGRESS_TRAFFIC_INTERNAL_ONLY"
  custom_audiences    = local.audience == null ? [] : [local.audience]
  deletion_protection = false

  template {
    service_account                  = var.service_account_email
    max_instance_request_concurrency = var.concurrency
    timeout                          = "60s"
    scaling {
      min_instance_count = var.min_instances
      max_instance_count = var.max_instances
    }
    containers {
      image   = var.image
      command = ["/usr/local/bin/log-ingest"]
      args    = var.args
      ports {
        container_port = 8080
      }
      dynamic "env" {
        for_each = var.env
        content {
          name  = env.key
          value = env.value
        }
      }
      startup_probe {
        http_get {
          path = "/healthz"
        }
        period_seconds    = 2
        failure_threshold = 15
      }
      liveness_probe {
        http_get {
          path = "/healthz"
        }
        period_seconds = 30
      }
    }
  }
}

# Only the push account may invoke the service: never allUsers or allAuthenticatedUsers.
resource "google_cloud_run_v2_service_iam_member" "push" {
  project  = var.project
  location = var.region
  name     = google_cloud_run_v2_service.this.name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${var.push_service_account_email}"
}

resource "google_pubsub_topic" "events" {
  # checkov:skip=CKV_GCP_83:Google-managed encryption; messages live at most seven days and a customer-managed key would need a Cloud KMS key ring granted to the Pub/Sub agent.
  project                    = var.project
  name                       = var.topic
  labels                     = var.labels
  message_retention_duration = local.retention_one
}

# The app's publishers: this topic only, never the project, so they cannot read or publish elsewhere.
resource "google_pubsub_topic_iam_member" "publisher" {
  for_each = var.publishers
  project  = var.project
  topic    = google_pubsub_topic.events.name
  role     = "roles/pubsub.publisher"
  member   = each.value
}

resource "google_pubsub_topic" "dead_letter" {
  # checkov:skip=CKV_GCP_83:Google-managed encryption; messages live at most seven days and a customer-managed key would need a Cloud KMS key ring granted to the Pub/Sub agent.
  project                    = var.project
  name                       = var.dead_letter_topic
  labels                     = var.labels
  message_retention_duration = local.retention_one
}

resource "google_pubsub_subscription" "push" {
  project                    = var.project
  name                       = var.subscription
  topic                      = google_pubsub_topic.events.id
  labels                     = var.labels
  ack_deadline_seconds       = 60
  message_retention_duration = local.retention_one

  push_config {
    push_endpoint = google_cloud_run_v2_service.this.uri
    oidc_token {
      service_account_email = var.push_service_account_email
      audience              = local.audience
    }
  }

  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = var.max_delivery_attempts
  }

  depends_on = [google_cloud_run_v2_service_iam_member.push]
}

# Holds what could not be delivered. Nothing pushes from it and nothing nacks it, so its own
# dead-letter policy points back at the same topic only to satisfy the rule that every
# subscription has one; messages stay for seven days (inspect with gcloud, replay by
# republishing to the events topic).
resource "google_pubsub_subscription" "dead_letter" {
  project                    = var.project
  name                       = var.dead_letter_subscription
  topic                      = google_pubsub_topic.dead_letter.id
  labels                     = var.labels
  ack_deadline_seconds       = 60
  message_retention_duration = local.retention_one
  retain_acked_messages      = true
  expiration_policy {
    ttl = ""
  }
  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = 100
  }
}

# The Pub/Sub service agent forwards undeliverable messages: publisher on the dead-letter
# topic, subscriber on the push subscription (to acknowledge what it forwarded), nothing more.
resource "google_pubsub_topic_iam_member" "agent_publishes_dead_letters" {
  project = var.project
  topic   = google_pubsub_topic.dead_letter.name
  role    = "roles/pubsub.publisher"
  member  = local.pubsub_agent
}

resource "google_pubsub_subscription_iam_member" "agent_acks_forwarded" {
  project      = var.project
  subscription = google_pubsub_subscription.push.name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent
}

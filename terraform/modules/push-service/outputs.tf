output "uri" {
  description = "The service's URL (internal ingress: reachable from the project's VPC and Google services, not the internet)."
  value       = google_cloud_run_v2_service.this.uri
}

output "topic" {
  description = "The events topic's id: where the app publishes."
  value       = google_pubsub_topic.events.id
}

output "subscription" {
  description = "The push subscription's id."
  value       = google_pubsub_subscription.push.id
}

output "dead_letter_subscription" {
  description = "The subscription that keeps undeliverable messages."
  value       = google_pubsub_subscription.dead_letter.id
}

output "bucket" {
  description = "The state bucket: give it to the main root's init (`-backend-config=bucket=...`)."
  value       = google_storage_bucket.this.name
}

output "init_command" {
  description = "The command that initialises terraform/ against this bucket."
  value       = "terraform -chdir=terraform init -backend-config=bucket=${google_storage_bucket.this.name}"
}

terraform {
  required_version = ">= 1.9"
  # No backend: this root creates the bucket every other state lives in, so its own (one bucket)
  # state stays local. Lost, it is rebuilt with `terraform import google_storage_bucket.this BUCKET`.
  required_providers {
    google = {
      source = "hashicorp/google"
      # The version the offline checks know and .terraform.lock.hcl holds checksums for.
      version = "6.50.0"
    }
  }
}

provider "google" {
  project = var.project
}

terraform {
  required_version = ">= 1.9"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.50, < 8.0"
    }
  }
}

provider "google" {
  project = local.project
  region  = var.region
  default_labels = {
    sluice_pipeline = local.pipeline_label
    sluice_target   = replace(var.target, "_", "-")
  }
}

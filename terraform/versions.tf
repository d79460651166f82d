terraform {
  required_version = ">= 1.9"

  # One state per target: `terraform init -backend-config=bucket=BUCKET` (the bucket from
  # terraform/bootstrap), then `terraform workspace select -or-create TARGET`. The gcs backend keeps
  # workspace W at sluice/W.tfstate, and modules/plan refuses a plan whose workspace is not its
  # target (output `project`, which the provider and every resource use), so a dev plan can never
  # run against production's state.
  backend "gcs" {
    prefix = "sluice"
  }

  required_providers {
    google = {
      source = "hashicorp/google"
      # Exactly the version the offline checks know (tests/deploy/provider_schema.py reads
      # hashicorp/google 6.50.0's schema), and the one .terraform.lock.hcl holds checksums for.
      # Upgrading is a deliberate change: new version here, `terraform init -upgrade`, the new
      # @cdktf/provider-google schema in scripts/deploy-check.sh.
      version = "6.50.0"
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

# The bucket that holds the main root's state, one object per target (workspace):
# sluice/prod.tfstate, sluice/dev.tfstate. Versioned, because a state overwritten by mistake is
# recovered from its previous generation; never public; never destroyed by Terraform.

resource "google_storage_bucket" "this" {
  # checkov:skip=CKV_GCP_62:Access to the state is recorded by Cloud Audit Logs (Data Access logs for storage.googleapis.com); a second bucket for usage logs would only duplicate them.
  name                        = coalesce(var.bucket, "${var.project}-sluice-tfstate")
  location                    = var.location
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  versioning {
    enabled = true
  }

  # Every apply writes a new generation; the last 20 of each state are plenty to roll back to.
  lifecycle_rule {
    action {
      type = "Delete"
    }
    condition {
      num_newer_versions = 20
      with_state         = "ARCHIVED"
    }
  }

  lifecycle {
    prevent_destroy = true
  }
}

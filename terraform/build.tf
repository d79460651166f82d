# The account cloudbuild.yaml runs as (`gcloud builds submit --service-account=...`). New
# projects build as the Compute Engine default account, which may hold no role at all; this one
# holds exactly what the build does: read its uploaded source, push the image and the layer cache,
# write its log. Production owns it, as it owns the repositories.

locals {
  build = local.d.owns_shared ? { sluice = local.project } : {}
}

resource "google_service_account" "build" {
  for_each     = local.build
  project      = each.value
  account_id   = "sluice-build"
  display_name = "sluice Cloud Build: builds and pushes the sluice image"
  depends_on   = [google_project_service.api]
}

# `gcloud builds submit --gcs-source-staging-dir=gs://THIS/source` uploads the source here; the
# build fetches it as its own account. Uploads are only needed for the build that reads them.
resource "google_storage_bucket" "build_source" {
  # checkov:skip=CKV_GCP_62:Holds build sources for a day; access is recorded by Cloud Audit Logs like the lake's.
  # checkov:skip=CKV_GCP_78:Versioning would keep every uploaded source tarball; each upload is a new object name and is read once.
  for_each                    = local.build
  project                     = each.value
  name                        = "${each.value}-sluice-build-source"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = true
  lifecycle_rule {
    action {
      type = "Delete"
    }
    condition {
      age = 1
    }
  }
  depends_on = [google_project_service.api]
}

resource "google_storage_bucket_iam_member" "build_source_reader" {
  for_each = local.build
  bucket   = google_storage_bucket.build_source[each.key].name
  role     = "roles/storage.objectViewer"
  member   = "serviceAccount:${google_service_account.build[each.key].email}"
}

# Push the release image and read and write the layer cache: writer on the two repositories only.
resource "google_artifact_registry_repository_iam_member" "build_writer" {
  for_each = merge(
    { for k, r in google_artifact_registry_repository.images : "images/${k}" => r },
    { for k, r in google_artifact_registry_repository.build_cache : "cache/${k}" => r },
  )
  project    = each.value.project
  location   = each.value.location
  repository = each.value.name
  role       = "roles/artifactregistry.writer"
  member     = "serviceAccount:${google_service_account.build["sluice"].email}"
}

# A build with a user-specified account must log to Cloud Logging (cloudbuild.yaml:
# logging: CLOUD_LOGGING_ONLY) and the account needs logging.logEntries.create, which exists
# only on the project (and folders, organizations); no log-level grant serves it.
resource "google_project_iam_member" "build_log_writer" {
  for_each = local.build
  project  = each.value
  role     = "roles/logging.logWriter"
  member   = "serviceAccount:${google_service_account.build[each.key].email}"
}

# Who may start builds as this account (actAs), and upload their source. Owners need no entry.
resource "google_service_account_iam_member" "build_submitter" {
  for_each           = local.d.owns_shared ? var.build_submitters : toset([])
  service_account_id = google_service_account.build["sluice"].name
  role               = "roles/iam.serviceAccountUser"
  member             = each.value
}

# gcloud first reads the staging bucket (storage.buckets.get, or it tries to create it), then
# uploads: legacyBucketWriter holds both and is granted on this bucket only.
resource "google_storage_bucket_iam_member" "build_source_uploader" {
  for_each = local.d.owns_shared ? var.build_submitters : toset([])
  bucket   = google_storage_bucket.build_source["sluice"].name
  role     = "roles/storage.legacyBucketWriter"
  member   = each.value
}

# The pull-request workflow's identity (.github/workflows/pull-request.yml): GitHub's OIDC token
# for this repository only is exchanged through workload identity federation for the
# pull-request account, so no key exists anywhere. That account runs `mart-build run --target
# pr-<n>`: it reads what dev's marts read (production inputs) and writes only `_pr_` datasets.
# modules/plan decides what (output `pull_requests`); production creates it once.

locals {
  pull_requests = module.plan.pull_requests == null ? {} : { github = module.plan.pull_requests }
}

resource "google_iam_workload_identity_pool" "github" {
  for_each                  = local.pull_requests
  project                   = each.value.project
  workload_identity_pool_id = "github"
  display_name              = "GitHub Actions"
  description               = "Pull-request workflows of ${each.value.repository}"
  depends_on                = [google_project_service.api]
}

# GitHub issues tokens for every repository from one issuer, so the provider must refuse all but
# this repository's: the attribute condition is evaluated before any token is exchanged. The
# subject pins the event too: only pull_request runs (repo:OWNER/NAME:pull_request; a fork's
# pull request gets no token) may act as the account, not a push to some branch.
resource "google_iam_workload_identity_pool_provider" "github" {
  # checkov:skip=CKV_GCP_125:The condition pins assertion.sub to repo:OWNER/NAME:pull_request, but OWNER/NAME comes through for_each, which checkov does not resolve; tests/deploy/policy.py checks this condition instead.
  for_each                           = local.pull_requests
  project                            = each.value.project
  workload_identity_pool_id          = google_iam_workload_identity_pool.github[each.key].workload_identity_pool_id
  workload_identity_pool_provider_id = "github-actions"
  display_name                       = "GitHub Actions OIDC"
  attribute_mapping = {
    "google.subject"       = "assertion.sub"
    "attribute.repository" = "assertion.repository"
  }
  attribute_condition = "assertion.repository == '${each.value.repository}' && assertion.sub == 'repo:${each.value.repository}:pull_request'"
  oidc {
    issuer_uri = "https://token.actions.githubusercontent.com"
  }
}

resource "google_service_account" "pull_request" {
  for_each     = local.pull_requests
  project      = each.value.project
  account_id   = each.value.account_id
  display_name = "sluice pull requests of ${each.value.repository} (mart-build --target pr-N)"
  depends_on   = [google_project_service.api]
}

# Only identities of this repository (the principal set its provider admits) may act as it.
resource "google_service_account_iam_member" "pull_request_federation" {
  for_each           = local.pull_requests
  service_account_id = google_service_account.pull_request[each.key].name
  role               = "roles/iam.workloadIdentityUser"
  member             = "principalSet://iam.googleapis.com/${google_iam_workload_identity_pool.github[each.key].name}/attribute.repository/${each.value.repository}"
}

# Production inputs: read only, dataset by dataset.
resource "google_bigquery_dataset_iam_member" "pull_request_read" {
  for_each   = length(local.pull_requests) == 0 ? {} : local.pull_requests["github"].read_grants
  project    = each.value.project
  dataset_id = each.value.dataset
  role       = each.value.role
  member     = "serviceAccount:${google_service_account.pull_request["github"].email}"
}

resource "google_project_iam_member" "pull_request_job_user" {
  for_each = local.pull_requests
  project  = each.value.project
  role     = "roles/bigquery.jobUser"
  member   = "serviceAccount:${google_service_account.pull_request[each.key].email}"
}

# Writes: tables and datasets named `_pr_` only. An IAM condition can narrow a project-level
# grant to resource names (projects/P/datasets/D, .../tables/T), including datasets that do not
# exist yet; every production and dev dataset fails it.
resource "google_project_iam_member" "pull_request_write" {
  for_each = local.pull_requests
  project  = each.value.project
  role     = "roles/bigquery.dataEditor"
  member   = "serviceAccount:${google_service_account.pull_request[each.key].email}"
  condition {
    title       = "only-pull-request-datasets"
    description = "datasets (and their tables) whose name carries _pr_: <dataset>_dev_pr_<n>"
    expression  = each.value.write_condition
  }
}

# Creating a dataset is checked on the project (datasets.insert requires bigquery.datasets.create
# on the project), where a dataset-name condition has nothing to match; so creation alone is
# granted unconditioned, through a role that holds nothing else. What the account creates it may
# write (pull_request_write), and it has no write role on any dataset it did not create.
resource "google_project_iam_custom_role" "pull_request_datasets" {
  for_each    = local.pull_requests
  project     = each.value.project
  role_id     = "sluicePullRequestDatasets"
  title       = "sluice pull requests: create datasets"
  description = "bigquery.datasets.create only; writes are limited to _pr_ datasets by a conditional dataEditor grant"
  permissions = ["bigquery.datasets.create"]
}

resource "google_project_iam_member" "pull_request_create_datasets" {
  for_each = local.pull_requests
  project  = each.value.project
  role     = google_project_iam_custom_role.pull_request_datasets[each.key].name
  member   = "serviceAccount:${google_service_account.pull_request[each.key].email}"
}

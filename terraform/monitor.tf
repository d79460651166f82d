# The monitor's part of ops: the ledger tables exist from the first apply (the monitor may
# write only alerts, declared_tables and its own rows in runs, so it cannot create the others), the views for the
# BigQuery console and Looker Studio (their SQL from `sluice-deploy export-views`), the
# table-level writes, and the lake's status/ prefix for the status page.

locals {
  views_all   = jsondecode(file("${path.module}/${var.views_file}"))
  views       = try(local.views_all.targets[var.target].views, {})
  ops_dataset = one([for k, v in local.d.datasets : k if v.role == "ops"])
}

check "views_are_exported_for_the_target" {
  assert {
    condition     = contains(keys(local.views_all.targets), var.target)
    error_message = "${var.views_file} has no target ${var.target}: run `make deployment` (sluice-deploy export-views)."
  }
}

resource "google_bigquery_table" "ops" {
  # checkov:skip=CKV_GCP_80:Google-managed encryption, as for the datasets (see google_bigquery_dataset.this).
  for_each            = module.plan.ops_tables
  project             = local.project
  dataset_id          = local.ops_dataset
  table_id            = each.key
  description         = each.value.description
  schema              = jsonencode(each.value.schema.fields)
  clustering          = try(each.value.clustering.fields, null)
  deletion_protection = true
  time_partitioning {
    type  = "DAY"
    field = each.value.timePartitioning.field
  }
  # The workers add columns as they evolve; Terraform creates the table and leaves its schema.
  lifecycle {
    ignore_changes = [schema]
  }
  depends_on = [google_bigquery_dataset.this]
}

resource "google_bigquery_table" "view" {
  # checkov:skip=CKV_GCP_80:A view stores no data to encrypt.
  # checkov:skip=CKV_GCP_121:A view holds no data; a view dropped from views.json goes with the next apply.
  for_each            = local.views
  project             = local.project
  dataset_id          = local.ops_dataset
  table_id            = each.key
  description         = each.value.description
  deletion_protection = false
  view {
    query          = each.value.query
    use_legacy_sql = false
  }
  depends_on = [google_bigquery_table.ops]
}

resource "google_bigquery_table_iam_member" "write" {
  for_each   = module.plan.table_grants
  project    = local.project
  dataset_id = each.value.dataset
  table_id   = each.value.table
  role       = each.value.role
  member     = "serviceAccount:${local.sa_email[each.value.account]}"
  depends_on = [google_bigquery_table.ops]
}

# Objects under one prefix only: the condition names it (the bucket has uniform access).
resource "google_storage_bucket_iam_member" "prefix" {
  for_each = module.plan.prefix_grants
  bucket   = local.d.lake_bucket
  role     = "roles/storage.objectUser"
  member   = "serviceAccount:${local.sa_email[each.key]}"
  condition {
    title      = "only-${trimsuffix(each.value, "/")}"
    expression = "resource.name.startsWith(\"projects/_/buckets/${local.d.lake_bucket}/objects/${each.value}\")"
  }
  depends_on = [google_storage_bucket.lake]
}

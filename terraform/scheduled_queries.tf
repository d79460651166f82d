# BigQuery scheduled queries for marts with `runner: scheduled_query`, from deployment.json
# (the same SQL `sluice-deploy export-scheduled-queries` prints). They run as their own account,
# which may write their marts' datasets and read the inputs.

locals {
  scheduled_queries = { for q in local.d.scheduled_queries : q.key => q }
}

resource "google_bigquery_data_transfer_config" "mart" {
  for_each = local.scheduled_queries

  project                = local.project
  display_name           = "${each.value.display_name}${local.d.name_suffix}"
  location               = each.value.location
  data_source_id         = "scheduled_query"
  schedule               = each.value.schedule
  destination_dataset_id = each.value.dataset
  service_account_name   = local.sa_email["queries"]
  params = {
    query                           = each.value.query
    destination_table_name_template = each.value.destination_table_name_template
    write_disposition               = each.value.write_disposition
    partitioning_field              = each.value.partitioning_field
  }
  depends_on = [google_bigquery_dataset_iam_member.grant, google_project_iam_member.job_user]
}

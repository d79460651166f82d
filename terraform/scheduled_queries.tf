# BigQuery scheduled queries for marts with `runner: scheduled_query`. The JSON comes from
#   mart-build export-scheduled-queries --target <target> > terraform/scheduled_queries.json
# (run it whenever marts/ changes; CI can run it before `terraform plan`). No file, no queries.

locals {
  scheduled_queries = {
    for q in try(jsondecode(file(var.scheduled_queries_file)), []) : q.key => q
  }
}

resource "google_bigquery_data_transfer_config" "mart" {
  for_each = local.scheduled_queries

  project                = local.project
  display_name           = each.value.display_name
  location               = each.value.location
  data_source_id         = "scheduled_query"
  schedule               = each.value.schedule
  destination_dataset_id = each.value.dataset
  params = {
    query                           = each.value.query
    destination_table_name_template = each.value.destination_table_name_template
    write_disposition               = each.value.write_disposition
    partitioning_field              = each.value.partitioning_field
  }
}

output "scheduled_queries" {
  description = "Marts run as BigQuery scheduled queries, keyed dataset__name, with their schedules."
  value       = { for k, q in local.scheduled_queries : k => q.schedule }
}

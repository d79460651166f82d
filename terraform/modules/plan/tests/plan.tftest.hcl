# terraform test (offline, no provider): the sample pipeline's prod and dev targets from the
# checked-in deployment.json, and the failures a user can hit.

variables {
  target      = "prod"
  workspace   = "prod"
  deployment  = jsondecode(file("../../deployment.json")).targets.prod
  dsn_secrets = { SHOP_DATABASE_URL = "shop-dsn", SLACK_WEBHOOK_URL = "slack-webhook", TEAMS_WEBHOOK_URL = "teams-webhook" }
}

run "prod_accounts_jobs_and_schedules" {
  command = plan

  assert {
    condition     = keys(output.service_accounts) == ["cdc-sync", "log-ingest", "mart-build", "monitor", "pg-copy", "push", "queries", "scheduler"]
    error_message = "one account per worker, plus scheduler, push and queries: ${jsonencode(keys(output.service_accounts))}"
  }
  assert {
    condition     = output.service_accounts["mart-build"].account_id == "sluice-mart-build"
    error_message = "prod accounts carry no suffix"
  }
  assert {
    condition     = output.service_accounts["push"].account_id == "pubsub-push"
    error_message = "the push account is the one pipeline.yaml names for log-ingest's token check"
  }
  assert {
    condition     = keys(output.jobs) == ["cdc-sync", "mart-build", "monitor", "pg-copy"] && keys(output.jobs["pg-copy"].schedules) == ["pg-copy-daily"]
    error_message = "one job per worker, one schedule per group: ${jsonencode({ for k, j in output.jobs : k => keys(j.schedules) })}"
  }
  assert {
    condition     = output.jobs["pg-copy"].schedules["pg-copy-daily"].args == tolist(["--table", "shop.order_items", "--table", "shop.orders", "--table", "shop.payments", "--table", "shop.products", "--table", "shop.users"])
    error_message = "the daily schedule passes every daily table as argument overrides"
  }
  assert {
    condition     = output.jobs["cdc-sync"].schedules["cdc-sync-shop"].cron == "*/5 * * * *" && output.jobs["cdc-sync"].timeout_seconds > 240 && output.jobs["cdc-sync"].max_retries == 0
    error_message = "cdc-sync runs every five minutes, stops starting batches after 4m, within its timeout, without retries"
  }
  assert {
    condition     = output.jobs["pg-copy"].secret_env == { SHOP_DATABASE_URL = "shop-dsn" } && output.jobs["pg-copy"].postgres
    error_message = "pg-copy reads its DSN from the secret given for SHOP_DATABASE_URL"
  }
  assert {
    condition     = output.jobs["mart-build"].secret_env == {} && !output.jobs["mart-build"].postgres
    error_message = "mart-build gets no database secret"
  }
  assert {
    condition     = output.jobs["pg-copy"].env.SLUICE_TARGET == "prod"
    error_message = "every job runs for its target"
  }
  assert {
    condition     = output.jobs["monitor"].schedules["monitor-check"].cron == "*/10 * * * *" && output.jobs["monitor"].schedules["monitor-check"].time_zone == "Etc/UTC"
    error_message = "monitor check runs every ten minutes"
  }
  assert {
    condition     = output.jobs["monitor"].schedules["monitor-digest"].cron == "30 8 * * *" && output.jobs["monitor"].schedules["monitor-digest"].time_zone == "Europe/Berlin"
    error_message = "the digest runs at alerts.digest.at in its time zone"
  }
  assert {
    condition     = output.jobs["monitor"].secret_env == { SLACK_WEBHOOK_URL = "slack-webhook", TEAMS_WEBHOOK_URL = "teams-webhook" } && !output.jobs["monitor"].postgres
    error_message = "the monitor reads the webhook URLs from their secrets, and no database"
  }
}

run "prod_grants_are_per_resource" {
  command = plan

  assert {
    condition     = output.dataset_grants["pg-copy/shop_raw"].role == "roles/bigquery.dataEditor"
    error_message = "pg-copy edits the dataset it copies into"
  }
  assert {
    condition     = !contains(keys(output.dataset_grants), "pg-copy/shop_replica") && !contains(keys(output.dataset_grants), "log-ingest/shop_raw")
    error_message = "a worker gets no role on datasets it does not write"
  }
  assert {
    condition     = output.dataset_grants["log-ingest/events"].role == "roles/bigquery.dataEditor" && output.dataset_grants["cdc-sync/shop_replica"].role == "roles/bigquery.dataEditor"
    error_message = "log-ingest edits events, cdc-sync the replicas"
  }
  assert {
    condition     = output.bucket_grants == { "pg-copy" = "roles/storage.objectAdmin" } && output.prefix_grants == { monitor = "status/" }
    error_message = "only pg-copy writes the lake, the monitor its status/ prefix: ${jsonencode(output.bucket_grants)}"
  }
  assert {
    condition     = keys(output.secret_grants) == ["cdc-sync/SHOP_DATABASE_URL", "monitor/SLACK_WEBHOOK_URL", "monitor/TEAMS_WEBHOOK_URL", "pg-copy/SHOP_DATABASE_URL"]
    error_message = "the DSN secret is readable by pg-copy and cdc-sync only, the webhooks by the monitor: ${jsonencode(keys(output.secret_grants))}"
  }
  assert {
    condition     = output.secrets == toset(["shop-dsn", "slack-webhook", "teams-webhook"])
    error_message = "Terraform creates the container of the secret it was given"
  }
  assert {
    condition     = alltrue([for k, g in output.project_roles : g.role == "roles/bigquery.jobUser" || (startswith(k, "monitor/") && contains(["roles/bigquery.metadataViewer", "roles/bigquery.resourceViewer"], g.role))]) && !contains(keys(output.project_roles), "scheduler/roles/bigquery.jobUser")
    error_message = "project-level roles: bigquery.jobUser (not for the scheduler), and the monitor's metadata roles"
  }
  assert {
    condition     = output.dataset_grants["monitor/acme-shop-data.ops"].role == "roles/bigquery.dataViewer" && !contains(keys(output.dataset_grants), "monitor/ops")
    error_message = "the monitor reads ops and edits no dataset"
  }
  assert {
    condition     = keys(output.table_grants) == ["monitor/ops.alerts", "monitor/ops.declared_tables", "monitor/ops.runs"] && output.table_grants["monitor/ops.runs"].role == "roles/bigquery.dataEditor"
    error_message = "the monitor writes ops.alerts, ops.declared_tables and its own ledger rows in ops.runs only: ${jsonencode(keys(output.table_grants))}"
  }
  assert {
    condition     = keys(output.ops_tables) == ["alerts", "dead_letter", "declared_tables", "dq_results", "runs"]
    error_message = "Terraform creates the ops tables"
  }
  assert {
    condition     = output.dataset_grants["queries/finance"].role == "roles/bigquery.dataEditor" && output.dataset_grants["queries/shop_raw"].role == "roles/bigquery.dataViewer"
    error_message = "the scheduled-query account writes its mart's dataset and reads the inputs"
  }
}

run "dev_reads_production_inputs_and_suffixes_names" {
  command = plan
  variables {
    target     = "dev"
    workspace  = "dev"
    deployment = jsondecode(file("../../deployment.json")).targets.dev
  }

  assert {
    condition     = output.service_accounts["pg-copy"].account_id == "sluice-pg-copy-dev" && output.jobs["pg-copy"].name == "pg-copy-dev" && keys(output.jobs["pg-copy"].schedules) == ["pg-copy-daily-dev"]
    error_message = "dev names carry -dev, so dev and prod share a project"
  }
  assert {
    condition     = output.dataset_grants["mart-build/acme-shop-data.shop_raw"].role == "roles/bigquery.dataViewer"
    error_message = "dev marts read production's inputs, and only read them"
  }
  assert {
    condition     = output.dataset_grants["mart-build/finance_dev"].role == "roles/bigquery.dataEditor"
    error_message = "dev marts write their suffixed datasets"
  }
  assert {
    condition     = output.service.subscription == "log-ingest-push-dev"
    error_message = "dev has its own push subscription"
  }
  assert {
    condition     = !contains(keys(output.service_accounts), "push") && output.service.push_service_account == "pubsub-push@acme-shop-data.iam.gserviceaccount.com"
    error_message = "dev pushes as production's push account (the one log-ingest accepts) and does not create it again"
  }
}

run "the_monitor_can_do_without_project_roles" {
  command = plan
  variables {
    project_metadata_roles = false
  }
  assert {
    condition     = alltrue([for g in values(output.project_roles) : g.role == "roles/bigquery.jobUser"])
    error_message = "project_metadata_roles = false leaves only bigquery.jobUser on the project"
  }
}

run "a_dsn_variable_without_a_secret_is_refused" {
  command = plan
  variables {
    dsn_secrets = {}
  }
  expect_failures = [output.secret_grants]
}

run "an_unknown_worker_is_refused" {
  command = plan
  variables {
    deployment = merge(jsondecode(file("../../deployment.json")).targets.prod, {
      workers = { monitorr = { writes = [], reads = [], lake = false, postgres = false, secrets = [], dsn_env = [], table_writes = [], project_roles = [], lake_prefix = null } }
    })
  }
  expect_failures = [var.deployment]
}

run "a_push_account_outside_the_project_is_refused" {
  command = plan
  variables {
    deployment = merge(jsondecode(file("../../deployment.json")).targets.prod, {
      service = merge(jsondecode(file("../../deployment.json")).targets.prod.service, { push_service_account = "push@elsewhere.iam.gserviceaccount.com" })
    })
  }
  expect_failures = [output.service]
}

# Each target keeps its state in the workspace of its own name: a dev plan in production's state
# (the workspace the previous apply left selected) must stop before it plans anything.
run "a_target_planned_into_another_targets_state_is_refused" {
  command = plan
  variables {
    target     = "dev"
    workspace  = "prod"
    deployment = jsondecode(file("../../deployment.json")).targets.dev
  }
  expect_failures = [output.project]
}

run "the_default_workspace_belongs_to_no_target" {
  command = plan
  variables {
    workspace = "default"
  }
  expect_failures = [output.project]
}

run "schedules_of_jobs_reading_secrets_wait_for_secrets_ready" {
  command = plan

  assert {
    condition     = output.jobs["pg-copy"].paused && output.jobs["cdc-sync"].paused && output.jobs["monitor"].paused && !output.jobs["mart-build"].paused
    error_message = "jobs that read a DSN or webhook secret start paused; mart-build reads none: ${jsonencode({ for k, j in output.jobs : k => j.paused })}"
  }
  assert {
    condition     = output.paused_schedules == tolist(["cdc-sync-shop", "cdc-sync-verify-shop", "monitor-check", "monitor-digest", "pg-copy-daily"])
    error_message = "the paused schedules are listed by name: ${jsonencode(output.paused_schedules)}"
  }
}

run "secrets_ready_resumes_every_schedule" {
  command = plan
  variables {
    secrets_ready = true
  }
  assert {
    condition     = alltrue([for j in values(output.jobs) : !j.paused]) && length(output.paused_schedules) == 0
    error_message = "secrets_ready = true leaves no schedule paused"
  }
}

run "pull_requests_read_production_inputs_and_write_only_pr_datasets" {
  command = plan
  variables {
    github_repository = "acme/sluice"
    pull_request_base = jsondecode(file("../../deployment.json")).targets.dev
  }
  assert {
    condition     = output.pull_requests.repository == "acme/sluice" && output.pull_requests.project == "acme-shop-data"
    error_message = "the pull-request identity belongs to the repository and writes into dev's project"
  }
  assert {
    condition     = keys(output.pull_requests.read_grants) == ["pull-requests/acme-shop-data.events", "pull-requests/acme-shop-data.ops", "pull-requests/acme-shop-data.shop_raw"] && alltrue([for g in values(output.pull_requests.read_grants) : g.role == "roles/bigquery.dataViewer"])
    error_message = "pull requests only read what dev's marts read: ${jsonencode(output.pull_requests.read_grants)}"
  }
  # The condition's regular expression, tried on the names IAM evaluates (RE2, as CEL's matches()).
  assert {
    condition = alltrue([for n in [
      "projects/acme-shop-data/datasets/finance_dev_pr_42",
      "projects/acme-shop-data/datasets/ops_dev_pr_42/tables/runs",
      "projects/acme-shop-data/datasets/sluice_staging_dev_pr_7/tables/stg_x",
    ] : can(regex(regex("matches\\('(.*)'\\)$", output.pull_requests.write_condition)[0], n))])
    error_message = "the write condition admits the pull request's own datasets and tables: ${output.pull_requests.write_condition}"
  }
  assert {
    condition = !anytrue([for n in [
      "projects/acme-shop-data/datasets/finance",
      "projects/acme-shop-data/datasets/finance_dev",
      "projects/acme-shop-data/datasets/ops/tables/runs",
      "projects/acme-shop-data/datasets/shop_raw/tables/users_pr_1",
      "projects/acme-shop-data/datasets/sales_pr_emea",
      "projects/acme-shop-data/datasets/sales_pr_emea/tables/t",
      "projects/acme-shop-data/datasets/finance_dev_pr_42extra/x",
      "projects/other-project/datasets/finance_dev_pr_42",
      "projects/acme-shop-data",
    ] : can(regex(regex("matches\\('(.*)'\\)$", output.pull_requests.write_condition)[0], n))])
    error_message = "the write condition admits no production, dev or other project's dataset, nor the project itself: ${output.pull_requests.write_condition}"
  }
}

run "only_the_target_owning_shared_resources_creates_the_pull_request_identity" {
  command = plan
  variables {
    target            = "dev"
    workspace         = "dev"
    deployment        = jsondecode(file("../../deployment.json")).targets.dev
    github_repository = "acme/sluice"
    pull_request_base = jsondecode(file("../../deployment.json")).targets.dev
  }
  assert {
    condition     = output.pull_requests == null
    error_message = "dev shares production's project; production creates the identity once"
  }
}

run "pull_requests_need_a_dev_target" {
  command = plan
  variables {
    github_repository = "acme/sluice"
    pull_request_base = null
  }
  expect_failures = [output.pull_requests]
}

# terraform test (offline, no provider): the sample pipeline's prod and dev targets from the
# checked-in deployment.json, and the failures a user can hit.

variables {
  target      = "prod"
  deployment  = jsondecode(file("../../deployment.json")).targets.prod
  dsn_secrets = { SHOP_DATABASE_URL = "shop-dsn" }
}

run "prod_accounts_jobs_and_schedules" {
  command = plan

  assert {
    condition     = keys(output.service_accounts) == ["cdc-sync", "log-ingest", "mart-build", "pg-copy", "push", "queries", "scheduler"]
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
    condition     = keys(output.jobs) == ["cdc-sync", "mart-build", "pg-copy"] && keys(output.jobs["pg-copy"].schedules) == ["pg-copy-daily"]
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
    condition     = output.bucket_grants == { "pg-copy" = "roles/storage.objectAdmin" }
    error_message = "only pg-copy writes the lake: ${jsonencode(output.bucket_grants)}"
  }
  assert {
    condition     = keys(output.secret_grants) == ["cdc-sync/SHOP_DATABASE_URL", "pg-copy/SHOP_DATABASE_URL"]
    error_message = "the DSN secret is readable by pg-copy and cdc-sync only: ${jsonencode(keys(output.secret_grants))}"
  }
  assert {
    condition     = output.secrets == toset(["shop-dsn"])
    error_message = "Terraform creates the container of the secret it was given"
  }
  assert {
    condition     = alltrue([for g in values(output.project_roles) : g.role == "roles/bigquery.jobUser"]) && !contains(keys(output.project_roles), "scheduler/roles/bigquery.jobUser")
    error_message = "the only project-level role is bigquery.jobUser, and not for the scheduler"
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
      workers = { monitorr = { writes = [], reads = [], lake = false, postgres = false, secrets = [], dsn_env = [] } }
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

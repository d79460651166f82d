# Turns one target of deployment.json into the keyed maps the root's resources iterate over:
# service accounts, dataset / bucket / secret grants, jobs with their environment, schedules.
# Every key is a name (never an index), so adding a table or a mart never reshuffles others.

locals {
  d          = var.deployment
  suffix     = local.d.name_suffix
  push_email = try(local.d.service.push_service_account, null)

  # One service account per worker, one for Cloud Scheduler, one for Pub/Sub push, one for
  # the BigQuery scheduled queries. Account ids are at most 30 characters.
  service_accounts = merge(
    { for w in keys(local.d.workers) : w => {
      account_id   = "sluice-${w}${local.suffix}"
      display_name = "sluice ${w} (${var.target})"
    } },
    length(local.d.schedules) == 0 ? {} : { scheduler = {
      account_id   = "sluice-scheduler${local.suffix}"
      display_name = "sluice Cloud Scheduler: runs the sluice jobs (${var.target})"
    } },
    # The push account is the one pipeline.yaml names (events.push.service_account): log-ingest
    # accepts tokens of that account only. Targets sharing production's project share it.
    local.push_email == null || !local.d.owns_shared ? {} : { push = {
      account_id   = split("@", local.push_email)[0]
      display_name = "sluice Pub/Sub push to log-ingest"
    } },
    length(local.d.scheduled_queries) == 0 ? {} : { queries = {
      account_id   = "sluice-queries${local.suffix}"
      display_name = "sluice BigQuery scheduled queries (${var.target})"
    } },
  )

  # dataEditor on each dataset a worker writes; dataViewer on each it only reads. Reads
  # are `project.dataset` (production's inputs for dev and pull-request targets).
  write_grants = merge([
    for w, spec in local.d.workers : {
      for ds in spec.writes : "${w}/${ds}" => {
        account = w, project = local.d.project, dataset = ds, role = "roles/bigquery.dataEditor"
      }
    }
  ]...)
  read_grants = merge([
    for w, spec in local.d.workers : {
      for ref in spec.reads : "${w}/${ref}" => {
        account = w, project = split(".", ref)[0], dataset = split(".", ref)[1], role = "roles/bigquery.dataViewer"
      }
    }
  ]...)
  # Scheduled queries write their marts' datasets and read what the marts read.
  query_grants = length(local.d.scheduled_queries) == 0 ? {} : merge(
    { for q in local.d.scheduled_queries : "queries/${q.dataset}" => {
      account = "queries", project = local.d.project, dataset = q.dataset, role = "roles/bigquery.dataEditor"
    } },
    { for ds, spec in local.d.datasets : "queries/${ds}" => {
      account = "queries", project = local.d.project, dataset = ds, role = "roles/bigquery.dataViewer"
    } if contains(["raw", "replica", "events"], spec.role) },
    { for ref in try(local.d.workers["mart-build"].reads, []) : "queries/${ref}" => {
      account = "queries", project = split(".", ref)[0], dataset = split(".", ref)[1], role = "roles/bigquery.dataViewer"
    } },
  )
  dataset_grants = merge(local.read_grants, local.query_grants, local.write_grants)

  # The lake: object admin for the workers that write Parquet files (their BigQuery load
  # jobs read the files with the same credentials); a worker writing under one prefix (the
  # monitor's status/) gets objects there only.
  bucket_grants = { for w, spec in local.d.workers : w => "roles/storage.objectAdmin" if spec.lake }
  prefix_grants = { for w, spec in local.d.workers : w => spec.lake_prefix if spec.lake_prefix != null }

  # Tables a worker writes in a dataset it otherwise only reads (the monitor's ops.alerts and
  # ops.declared_tables): dataEditor on those tables alone.
  table_grants = merge([
    for w, spec in local.d.workers : {
      for t in spec.table_writes : "${w}/${t}" => {
        account = w, dataset = split(".", t)[0], table = split(".", t)[1], role = "roles/bigquery.dataEditor"
      }
    }
  ]...)

  # DSNs: secrets pipeline.yaml names, and secrets given for its `dsn: {env: VAR}` variables.
  missing_dsn = sort(distinct(flatten([
    for w, spec in local.d.workers : [for v in spec.dsn_env : v if !contains(keys(var.dsn_secrets), v)]
  ])))
  secret_env = {
    for w, spec in local.d.workers : w => { for v in spec.dsn_env : v => lookup(var.dsn_secrets, v, "") }
  }
  secret_grants = merge([
    for w, spec in local.d.workers : merge(
      { for s in spec.secrets : "${w}/${s}" => { account = w, secret = s } },
      { for v in spec.dsn_env : "${w}/${v}" => { account = w, secret = lookup(var.dsn_secrets, v, "") } },
    )
  ]...)
  secrets = toset([for g in values(local.secret_grants) : g.secret if !startswith(g.secret, "projects/")])

  # One Cloud Run job per worker; each schedule of deployment.json is a Cloud Scheduler job
  # that runs it with its own arguments, task count and timeout. The job is sized for the
  # largest of its schedules (Cloud Run cannot override resources per execution).
  job_workers = toset([for s in values(local.d.schedules) : s.worker])
  # A job that reads a secret fails on every run until the secret has a version; its schedules
  # stay paused until var.secrets_ready says the values are in.
  reads_secret = { for w, spec in local.d.workers : w => length(spec.secrets) + length(spec.dsn_env) > 0 }
  jobs = {
    for w in local.job_workers : w => {
      name            = "${w}${local.suffix}"
      worker          = w
      service_account = w
      postgres        = local.d.workers[w].postgres
      paused          = local.reads_secret[w] && !var.secrets_ready
      cpu             = tostring(max([for s in values(local.d.schedules) : tonumber(s.cpu) if s.worker == w]...))
      memory          = "${max([for s in values(local.d.schedules) : tonumber(trimsuffix(s.memory, "Gi")) if s.worker == w]...)}Gi"
      timeout_seconds = max([for s in values(local.d.schedules) : s.timeout_seconds if s.worker == w]...)
      max_retries     = max([for s in values(local.d.schedules) : s.max_retries if s.worker == w]...)
      env             = { SLUICE_TARGET = var.target, SLUICE_PIPELINE = "/etc/sluice/pipeline.yaml" }
      secret_env      = local.secret_env[w]
      schedules = {
        for name, s in local.d.schedules : name => {
          cron = s.schedule, time_zone = s.time_zone, args = s.args, task_count = s.task_count, timeout_seconds = s.timeout_seconds, description = s.description
        } if s.worker == w
      }
    }
  }

  # Every project-level role: BigQuery job creation (jobs are not a dataset resource), and
  # the monitor's metadata roles (see var.project_metadata_roles), which exist only there.
  project_roles = merge(
    {
      for a in keys(local.service_accounts) : "${a}/roles/bigquery.jobUser" => {
        account = a, role = "roles/bigquery.jobUser"
      } if !contains(["scheduler", "push"], a)
    },
    merge([
      for w, spec in local.d.workers : {
        for r in spec.project_roles : "${w}/${r}" => { account = w, role = r }
      } if var.project_metadata_roles
    ]...),
  )

  paused_schedules = sort(flatten([for j in values(local.jobs) : keys(j.schedules) if j.paused]))

  # Pull requests (the GitHub workflow's `mart-build run --target pr-<n>`) act as one account
  # through workload identity federation: they read what the base target's marts read (production
  # inputs) and write only datasets whose names carry `_pr_` (<dataset>_dev_pr_<n>) in the base
  # target's project. Created by the target that owns the shared resources.
  pr_project = try(var.pull_request_base.project, "")
  # The base target's dataset suffix (`_dev`), from its resource-name suffix (`-dev`).
  pr_suffix = replace(try(var.pull_request_base.name_suffix, ""), "-", "_")
  pull_requests = var.github_repository == null || !local.d.owns_shared || local.pr_project == "" ? null : {
    repository = var.github_repository
    project    = local.pr_project
    account_id = "sluice-pull-requests"
    read_grants = {
      for ref in try(var.pull_request_base.workers["mart-build"].reads, []) : "pull-requests/${ref}" => {
        project = split(".", ref)[0], dataset = split(".", ref)[1], role = "roles/bigquery.dataViewer"
      }
    }
    # IAM conditions see a dataset as projects/P/datasets/D and a table as
    # projects/P/datasets/D/tables/T; both match when D ends in the base target's suffix and
    # `_pr_<n>` (finance_dev_pr_42), so a production dataset that merely contains `_pr_`
    # (sales_pr_emea) does not.
    write_condition = "resource.name.matches('^projects/${local.pr_project}/datasets/[A-Za-z0-9_]+${local.pr_suffix}_pr_[A-Za-z0-9]+(/tables/.+)?$')"
  }
}

check "account_ids_fit" {
  assert {
    condition     = alltrue([for a in values(local.service_accounts) : length(a.account_id) <= 30])
    error_message = "a service account id is longer than 30 characters: ${join(", ", [for a in values(local.service_accounts) : a.account_id if length(a.account_id) > 30])}; use a shorter target name."
  }
}

"""Policy tests and the offline resource inventory of terraform/.

    python policy.py TERRAFORM_DIR TFVARS      policies, then the resources a plan would create
    python policy.py --policies-only DIR       policies only (the bad-policy fixture must fail)

Policies (each failure is one line naming the file and block):
  - no allUsers / allAuthenticatedUsers anywhere, and no Cloud Run service with its invoker IAM
    check disabled;
  - every google_pubsub_subscription has a dead_letter_policy;
  - project-level roles: no iam_binding / iam_policy on the project; members are only
    roles/bigquery.jobUser (evaluated: every key of the plan's project_roles), the monitor's
    roles/bigquery.metadataViewer and roles/bigquery.resourceViewer (the region-qualified
    INFORMATION_SCHEMA and JOBS views check project-level listing; nothing narrower serves
    them), roles/cloudsql.client narrowed by an IAM condition to one instance,
    roles/logging.logWriter for the build account (a build with its own account logs to Cloud
    Logging; logging.logEntries.create exists only on projects, folders and organizations), and
    for the pull-request account roles/bigquery.dataEditor under a condition naming `_pr_`
    datasets plus a custom role holding only bigquery.datasets.create (checked on the project,
    where no dataset-name condition applies);
  - the GitHub workload identity provider admits one repository's pull_request tokens
    (attribute_condition on assertion.repository and assertion.sub), and workloadIdentityUser
    goes to that repository's principal set only;
  - an Artifact Registry repository with immutable tags has a delete policy that reaches tagged
    images (tag_state ANY or TAGGED) beside its keep-newest policy: a keep policy alone deletes
    nothing, and every image there is tagged;
  - every Cloud Scheduler job sets `paused` (jobs reading a secret wait for secrets_ready);
  - a root module (a directory configuring provider "google") pins the google provider to one
    exact version and commits a .terraform.lock.hcl for it; the main root (the one calling
    modules/plan) keeps its state in a gcs backend, passes terraform.workspace to the plan, and
    takes its project from the plan's output `project`, whose precondition refuses a plan into
    another target's state (the provider and every resource depend on it, -target plans too);
  - a role on the lake bucket under an IAM condition names one object prefix;
  - roles/run.invoker only on the log-ingest service, for the push account;
  - no secret value: no google_secret_manager_secret_version, no secret_data, no DSN with a
    password or private key in any file under terraform/.

The inventory evaluates the root module offline with tfparse (pipeline.yaml's deployment.json
for the target in TFVARS): resources it expands itself are counted as it expands them; those
whose for_each iterates over an output of modules/plan (directly, or through local.pull_requests)
are counted from that output, which tfparse evaluates but does not feed back into for_each.
"""

import os
import re
import sys

import hcl2

PUBLIC = re.compile(r"all(Authenticated)?Users")
SECRET_TEXT = re.compile(r"postgres(ql)?://[^:/@\s\"']+:[^@\s\"']+@|-----BEGIN [A-Z ]*PRIVATE KEY-----")
PLAN_OUTPUT = re.compile(r"module\.plan\.(\w+)")
MONITOR_PROJECT_ROLES = ("roles/bigquery.metadataViewer", "roles/bigquery.resourceViewer")
# The google provider version the offline schema check reads (@cdktf/provider-google 16.12.1).
PROVIDER_VERSION = "6.50.0"
LOCKED_GOOGLE = re.compile(
    r'provider "registry\.terraform\.io/hashicorp/google" \{\s*version\s*=\s*"([^"]+)"[^}]*?hashes = \[([^\]]*)\]', re.S)


def attr(body, key):
    """An argument's value as text (bc-python-hcl2 wraps each in a one-element list)."""
    v = body.get(key, "")
    if isinstance(v, list) and len(v) == 1 and not isinstance(v[0], dict):
        v = v[0]
    return str(v)


def tf_files(root):
    for dirpath, dirnames, files in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and d != "tests"]
        for f in sorted(files):
            if f.endswith(".tf"):
                yield os.path.join(dirpath, f)


def blocks(doc, kind="resource"):
    for item in doc.get(kind, []):
        for rtype, named in item.items():
            for name, body in named.items():
                yield rtype, name, body


def root_module_problems(root):
    """Provider pins, lock files, the state backend and the workspace guard, per root module."""
    problems = []
    dirs = {}
    for path in tf_files(root):
        dirs.setdefault(os.path.dirname(path), []).append(hcl2.loads(open(path, encoding="utf-8").read()))
    for d, docs in sorted(dirs.items()):
        if not any("google" in item for doc in docs for item in doc.get("provider", [])):
            continue  # a child module or an example calling the root: no provider configuration of its own
        rel = os.path.relpath(d, root)
        versions = [g.get("version") for doc in docs for t in doc.get("terraform", [])
                    for rp in t.get("required_providers", []) for g in (rp.get("google") or [])]
        if versions != [PROVIDER_VERSION]:
            problems.append(f"{rel}: required_providers pins google to {versions or 'nothing'}; pin exactly \"{PROVIDER_VERSION}\", the version the offline checks know")
        lock = os.path.join(d, ".terraform.lock.hcl")
        m = LOCKED_GOOGLE.search(open(lock, encoding="utf-8").read()) if os.path.isfile(lock) else None
        if m is None:
            problems.append(f"{rel}: no .terraform.lock.hcl locking registry.terraform.io/hashicorp/google; commit one")
        elif m.group(1) != PROVIDER_VERSION or not re.search(r'"(h1|zh):', m.group(2)):
            problems.append(f"{rel}/.terraform.lock.hcl: google is locked to {m.group(1)} with {len(re.findall(r'[hz]h?1?:', m.group(2)))} checksums; lock {PROVIDER_VERSION} with its checksums")
        plan_calls = [b for doc in docs for item in doc.get("module", []) for n, b in item.items() if n == "plan"]
        if os.path.basename(d) == "bootstrap":
            continue  # creates the state bucket, so its own state is local by design
        backends = [bk for doc in docs for t in doc.get("terraform", []) for bk in t.get("backend", [])]
        if not any("gcs" in bk for bk in backends):
            problems.append(f"{rel}: no backend \"gcs\"; every target's state must live in the state bucket, one workspace per target")
        if not plan_calls or attr(plan_calls[0], "workspace") != "${terraform.workspace}":
            problems.append(f"{rel}: module \"plan\" is not given workspace = terraform.workspace, so nothing refuses a plan into another target's state")
        project = [attr(loc, "project") for doc in docs for loc in doc.get("locals", []) if "project" in loc]
        providers = [item["google"] for doc in docs for item in doc.get("provider", []) if "google" in item]
        if project != ["${module.plan.project}"] or any(attr(p, "project") != "${local.project}" for p in providers):
            problems.append(f"{rel}: the provider's project does not come from module.plan.project (through local.project), so a plan, or a -target one, can skip the workspace guard")
    return problems


def policies(root, evaluated_outputs=None):
    problems = root_module_problems(root)
    custom_roles = {}
    for path in tf_files(root):
        for rtype, name, body in blocks(hcl2.loads(open(path, encoding="utf-8").read())):
            if rtype == "google_project_iam_custom_role":
                custom_roles[name] = sorted(body.get("permissions", [[]])[0])
    for path in tf_files(root):
        rel = os.path.relpath(path, root)
        text = open(path, encoding="utf-8").read()
        for n, line in enumerate(text.splitlines(), 1):
            if PUBLIC.search(line) and not line.lstrip().startswith("#"):
                problems.append(f"{rel}:{n}: a public member (allUsers/allAuthenticatedUsers)")
            if SECRET_TEXT.search(line):
                problems.append(f"{rel}:{n}: a secret value (a DSN with a password, or a private key)")
        doc = hcl2.loads(text)
        for rtype, name, body in blocks(doc):
            where = f"{rel}: {rtype}.{name}"
            if rtype == "google_pubsub_subscription" and "dead_letter_policy" not in body:
                problems.append(f"{where}: a subscription without a dead_letter_policy")
            # On Cloud Run log-ingest lets Cloud Run's IAM check push tokens' signatures: a
            # service that skips that check would let anyone in with a forged token.
            if rtype == "google_cloud_run_v2_service" and attr(body, "invoker_iam_disabled") not in ("", "False", "false"):
                problems.append(f"{where}: invoker_iam_disabled: anyone could call it, and log-ingest relies on Cloud Run's invoker check")
            if rtype in ("google_project_iam_binding", "google_project_iam_policy"):
                problems.append(f"{where}: authoritative project IAM; grant members on resources instead")
            if rtype == "google_project_iam_member":
                role, member = attr(body, "role"), attr(body, "member")
                condition = str(body.get("condition", ""))
                custom = re.match(r"\$\{google_project_iam_custom_role\.(\w+)\[", role)
                if role == "roles/cloudsql.client":
                    if "condition" not in body:
                        problems.append(f"{where}: roles/cloudsql.client without a condition naming the instance")
                elif "each.value.role" in role and "project_roles" in attr(body, "for_each"):
                    pass  # evaluated below
                elif role == "roles/logging.logWriter":
                    if "google_service_account.build[" not in member:
                        problems.append(f"{where}: roles/logging.logWriter on the project for {member}; only the build account writes its build log")
                elif role == "roles/bigquery.dataEditor":
                    if "write_condition" not in condition and "_pr_" not in condition:
                        problems.append(f"{where}: project-level roles/bigquery.dataEditor without a condition naming _pr_ datasets")
                elif custom:
                    if custom_roles.get(custom.group(1)) != ["bigquery.datasets.create"]:
                        problems.append(f"{where}: custom role {custom.group(1)} on the project holds {custom_roles.get(custom.group(1))}; only bigquery.datasets.create may be granted this way")
                elif role != "roles/bigquery.jobUser":
                    problems.append(f"{where}: project-level role {role}; only roles/bigquery.jobUser is granted on the project")
            if rtype == "google_iam_workload_identity_pool_provider":
                cond = attr(body, "attribute_condition")
                if "assertion.repository ==" not in cond or "assertion.sub ==" not in cond or ":pull_request" not in cond:
                    problems.append(f"{where}: the provider must admit one repository's pull_request tokens (attribute_condition on assertion.repository and assertion.sub)")
            if rtype == "google_service_account_iam_member" and attr(body, "role") == "roles/iam.workloadIdentityUser":
                member = attr(body, "member")
                if not member.startswith("principalSet://") or "/attribute.repository/" not in member:
                    problems.append(f"{where}: workloadIdentityUser for {member}; grant it to one repository's principal set (…/attribute.repository/OWNER/NAME)")
            if rtype == "google_artifact_registry_repository":
                immutable = any(str(c.get("immutable_tags")) in ("[True]", "[true]", "True", "true") for c in body.get("docker_config", []))
                cleanups = body.get("cleanup_policies", [])
                deletes = [c for c in cleanups if attr(c, "action") == "DELETE"]
                if not deletes:
                    problems.append(f"{where}: no DELETE cleanup policy; the repository only grows")
                if immutable:
                    if not any(attr(c.get("condition", [{}])[0], "tag_state") in ("ANY", "TAGGED") for c in deletes):
                        problems.append(f"{where}: tags are immutable and every image is tagged, but no DELETE policy reaches tagged images (tag_state ANY or TAGGED); the keep policy alone deletes nothing")
                    if not any(attr(c, "action") == "KEEP" and "most_recent_versions" in c for c in cleanups):
                        problems.append(f"{where}: no KEEP most_recent_versions policy; the newest images must survive the delete policy")
            if rtype == "google_cloud_scheduler_job" and "paused" not in body:
                problems.append(f"{where}: no `paused`; a job reading a secret must wait for secrets_ready")
            if rtype == "google_storage_bucket_iam_member" and "condition" in body:
                if "startsWith" not in str(body["condition"]):
                    problems.append(f"{where}: a conditional bucket grant that does not name an object prefix")
            if rtype == "google_secret_manager_secret_version" or "secret_data" in body:
                problems.append(f"{where}: a secret value in Terraform (it would be stored in the state)")
            if "run.invoker" in attr(body, "role"):
                if rtype != "google_cloud_run_v2_service_iam_member" or "push" not in attr(body, "member"):
                    problems.append(f"{where}: run.invoker for anything but the push account on the log-ingest service")
    if evaluated_outputs is not None:
        pr = pull_requests(evaluated_outputs)
        if pr:
            cond = pr.get("write_condition", "")
            if f"'^projects/{pr.get('project')}/datasets/" not in cond or "_pr_" not in cond:
                problems.append(f"modules/plan: pull_requests.write_condition {cond!r} does not name `_pr_` datasets of {pr.get('project')}")
            for key, grant in (pr.get("read_grants") or {}).items():
                if grant.get("role") != "roles/bigquery.dataViewer":
                    problems.append(f"modules/plan: pull_requests.read_grants[{key}] is {grant.get('role')}; pull requests only read production")
        for key, grant in (evaluated_outputs.get("project_roles") or {}).items():
            role = grant.get("role")
            if role == "roles/bigquery.jobUser":
                continue
            if key.startswith("monitor/") and role in MONITOR_PROJECT_ROLES:
                continue
            problems.append(f"modules/plan: project_roles[{key}] is {role}; only roles/bigquery.jobUser (and the monitor's metadata roles)")
    return problems


def pull_requests(outputs):
    """modules/plan's pull_requests, or {}: tfparse renders its null (no github_repository) as an
    object of empty attributes, so only one naming a repository counts."""
    pr = outputs.get("pull_requests") or {}
    return pr if isinstance(pr, dict) and pr.get("repository") else {}


def module_resources(mod_dir, inputs):
    """Resources of a child module; for_each over var.schedules counts its schedules."""
    out = []
    for path in tf_files(mod_dir):
        doc = hcl2.load(open(path, encoding="utf-8"))
        for rtype, name, body in blocks(doc):
            fe = attr(body, "for_each")
            n = len(inputs.get("schedules", {})) if "var.schedules" in fe else 1
            out += [f"{rtype}.{name}"] * n
    return out


def inventory(root, tfvars):
    import tfparse

    parsed = tfparse.load_from_path(root, vars_paths=[os.path.relpath(tfvars, root)], allow_downloads=False)
    outputs = {o["__tfmeta"]["label"]: o.get("value") for o in parsed.get("output", [])}
    expanded = {}
    for rtype, items in parsed.items():
        if rtype.startswith("google_") and isinstance(items, list):
            for it in items:
                if it["__tfmeta"].get("mode", "managed") == "managed" and it["__tfmeta"].get("type", "resource") != "data":
                    expanded.setdefault(rtype, []).append(it["__tfmeta"]["path"])
    counted = {}
    for path in tf_files(root):
        if os.path.dirname(os.path.relpath(path, root)).startswith("modules"):
            continue
        doc = hcl2.load(open(path, encoding="utf-8"))
        for rtype, name, body in blocks(doc):
            fe = attr(body, "for_each")
            if "local.pull_requests" in fe:  # github.tf: one identity, or none; its read grants
                pr = pull_requests(outputs)
                counted[f"{rtype}.{name}"] = len(pr.get("read_grants") or {}) if "read_grants" in fe else int(bool(pr))
                continue
            m = PLAN_OUTPUT.search(fe)
            if m:
                value = outputs.get(m.group(1)) or {}
                if rtype == "google_project_iam_member" and name == "cloudsql_client":
                    mode = "connector" in open(tfvars).read()
                    value = {k: j for k, j in value.items() if j.get("postgres")} if mode else {}
                counted[f"{rtype}.{name}"] = len(value)
        for item in doc.get("module", []):
            for name, body in item.items():
                if name == "plan":
                    continue
                m = PLAN_OUTPUT.search(attr(body, "for_each"))
                value = outputs.get(m.group(1)) if m else None
                fe = attr(body, "for_each")
                if "== null" in fe or "== None" in fe:  # an optional single instance: `x == null ? {} : { k = x }`
                    instances = {"one": value} if value else {}
                else:
                    instances = value if isinstance(value, dict) else {}
                src = os.path.normpath(os.path.join(root, attr(body, "source")))
                for key, inputs in instances.items():
                    for addr in module_resources(src, inputs or {}):
                        counted[f"module.{name}.{addr}"] = counted.get(f"module.{name}.{addr}", 0) + 1
    rows = []
    for rtype, paths in sorted(expanded.items()):
        if rtype == "google_project":
            continue
        rows.append((rtype, len(paths)))
    for addr, n in sorted(counted.items()):
        if n:
            rows.append((addr, n))
    return rows, outputs


def main():
    args = sys.argv[1:]
    if args and args[0] == "--policies-only":
        problems = policies(args[1])
        for p in problems:
            print(p)
        print(f"policies: {len(problems)} problems in {args[1]}")
        sys.exit(1 if problems else 0)
    root, tfvars = args
    rows, outputs = inventory(root, tfvars)
    problems = policies(root, outputs)
    for p in problems:
        print(p)
    print(f"policies: {len(problems)} problems")
    total = sum(n for _, n in rows)
    print(f"a plan of {os.path.basename(tfvars)} would create {total} resources:")
    for addr, n in rows:
        print(f"  {n:4d}  {addr}")
    if total < 20:
        problems.append(f"only {total} resources evaluated; the offline evaluation lost its way")
        print(problems[-1])
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()

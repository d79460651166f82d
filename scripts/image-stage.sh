#!/usr/bin/env bash
# Lays out the image's files under STAGE, so the Dockerfile's runtime stage is one COPY:
#
#   scripts/image-stage.sh BIN_DIR STAGE
#
#   STAGE/usr/local/bin/{pg-copy,cdc-sync,log-ingest,mart-build,monitor}   stripped
#   STAGE/etc/sluice/{pipeline.yaml,schemas/,marts/}                 the pipeline definition
#   STAGE/etc/sluice/certs/                                           databases' CA certificates (sslrootcert)
#
# Used by the Dockerfile's builder stage (BIN_DIR=target/image) and by the offline image check
# (scripts/deploy-check.sh image, BIN_DIR=target/debug), so both images hold the same files.
set -euo pipefail
[ $# -eq 2 ] || { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin_dir=$1 stage=$2
WORKERS=(pg-copy cdc-sync log-ingest mart-build monitor)

rm -rf "$stage"
mkdir -p "$stage/usr/local/bin" "$stage/etc/sluice"
for w in "${WORKERS[@]}"; do
  [ -x "$bin_dir/$w" ] || { echo "image-stage: $bin_dir/$w is missing; build the workers first" >&2; exit 1; }
  install -m 0755 "$bin_dir/$w" "$stage/usr/local/bin/$w"
  # The image profile strips already; a debug build (the offline check) is stripped here.
  if command -v strip >/dev/null; then strip --strip-debug "$stage/usr/local/bin/$w"; fi
done
install -m 0644 "$ROOT/pipeline.yaml" "$stage/etc/sluice/pipeline.yaml"
cp -R "$ROOT/schemas" "$ROOT/marts" "$ROOT/certs" "$stage/etc/sluice/"
# Read-only for the runtime user: the image holds code and definitions, never state.
chmod -R a+rX,go-w "$stage"

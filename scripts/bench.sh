#!/usr/bin/env bash
# make bench: builds the benchmark in release mode and runs it against the local stack.
# Prints one `name: value` line per figure; the same figures go to .local/bench/results.json.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "==> building the benchmark (release)" >&2
cargo build --release -p sluice-tests --bin sluice-bench -p log-ingest --bin log-ingest
echo "==> running (three runs of each measurement; the first run generates the tables)" >&2
exec ./target/release/sluice-bench "$@"

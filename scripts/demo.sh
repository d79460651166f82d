#!/usr/bin/env bash
# make demo: starts the local stack, creates the sample shop database, copies it into the
# BigQuery emulator with pg-copy (full tables, and three days of the incremental ones), and
# prints what was loaded with the row counts checked against Postgres; then replicates the
# shop with cdc-sync (snapshot, then a stream of changes) and compares the replicas.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\n==> %s\n' "$*"; }

say "starting the local stack (first run builds Python 3.13 for the BigQuery emulator: ~5 min)"
scripts/local-stack.sh up
eval "$(scripts/local-stack.sh env)"

say "creating the sample shop database (users, products, orders, order_items, payments)"
# A database with a replication slot cannot be dropped: the slot of an earlier demo goes first.
psql "$SLUICE_PG_URL" -qX -v ON_ERROR_STOP=1 \
  -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = 'shop'" \
  -c "DROP DATABASE IF EXISTS shop WITH (FORCE)" -c "CREATE DATABASE shop" >/dev/null
export SHOP_DATABASE_URL="postgres://postgres@$SLUICE_PG_HOST:$SLUICE_PG_PORT/shop"
psql "$SHOP_DATABASE_URL" -qX -v ON_ERROR_STOP=1 -f scripts/sample-shop.sql
psql "$SHOP_DATABASE_URL" -X -c "SELECT relname AS table, n_live_tup AS rows FROM pg_stat_user_tables ORDER BY relname"

say "building pg-copy and cdc-sync"
cargo build -p pg-copy -p cdc-sync

from=$(date -u -d '3 days ago' +%F)
to=$(date -u -d 'yesterday' +%F)
say "pg-copy --target local --from $from --to $to --verify   (full tables once, incremental tables per day)"
./target/debug/pg-copy --target local --from "$from" --to "$to" --verify --log-format human

say "cdc-sync init   (checks wal_level and permissions, creates the publication and the slot)"
./target/debug/cdc-sync init --target local

say "cdc-sync run   (the first run snapshots every published table into dataset shop_replica)"
./target/debug/cdc-sync run --target local --log-format human

say "changing the shop: new orders, a price change, a deleted payment, a new column on users"
# Committed synchronously: logical decoding reads only WAL that is flushed to disk.
PGOPTIONS="-c synchronous_commit=on" psql "$SHOP_DATABASE_URL" -qX -v ON_ERROR_STOP=1 <<'SQL'
INSERT INTO orders (id, user_id, status, total, currency, created_at)
  SELECT (SELECT max(id) FROM orders) + id, id, 'pending', 42.50, 'EUR', now() FROM users WHERE id <= 25;
UPDATE products SET price = price * 1.10 WHERE id % 7 = 0;
DELETE FROM payments WHERE id IN (SELECT id FROM payments ORDER BY id LIMIT 10);
ALTER TABLE users ADD COLUMN referral_code text;
UPDATE users SET referral_code = 'R' || id WHERE id <= 100;
SQL

say "cdc-sync run   (streams the changes; users gains its new column on its own)"
./target/debug/cdc-sync run --target local --log-format human

say "cdc-sync status   (rows in Postgres against live rows in each replica)"
./target/debug/cdc-sync status --target local

say "done: copies in dataset shop_raw, replicas in shop_replica (orders_history keeps every change), the run ledger in ops.runs, Parquet under .local/lake/sluice-lake/"

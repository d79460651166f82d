#!/usr/bin/env bash
# make demo: starts the local stack, creates the sample shop database, copies it into the
# BigQuery emulator with pg-copy (full tables, and three days of the incremental ones), and
# prints what was loaded with the row counts checked against Postgres; then replicates the
# shop with cdc-sync (snapshot, then a stream of changes) and compares the replicas; posts a
# day of app events to log-ingest as Pub/Sub push would; builds the marts with mart-build; and
# watches it all with monitor: a tripped fail condition and a missed run posted to a local
# webhook receiver as Slack and Teams messages, the recovery, the digest and the status page;
# `monitor doctor` before (what is missing) and after (all there).
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

say "building the workers"
cargo build -p pg-copy -p cdc-sync -p log-ingest -p mart-build -p monitor
cargo build -p sluice-tests --bin webhook-sink

say "monitor doctor   (what the deployment still lacks: here the slot, which cdc-sync init makes below, and the webhook URLs, set for the monitor)"
./target/debug/monitor --target local --log-format json doctor 2>>.local/demo-monitor.log ||
  echo "    (doctor exits non-zero while any line is ✗; the end of the demo runs it again)"

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

say "cdc-sync status   (each replica compared with Postgres by content, as of one consistent point)"
./target/debug/cdc-sync status --target local

say "log-ingest serve   (the Pub/Sub push endpoint; the demo posts yesterday's app events as Pub/Sub would, 2% of them malformed)"
port=${SLUICE_DEMO_INGEST_PORT:-8097}
./target/debug/log-ingest serve --target local --port "$port" --log-format json >.local/demo-log-ingest.log 2>&1 &
ingest=$!
trap 'kill $ingest 2>/dev/null || true' EXIT
until curl -sf -o /dev/null "http://127.0.0.1:$port/healthz"; do
  kill -0 "$ingest" 2>/dev/null || { echo "log-ingest did not start:"; cat .local/demo-log-ingest.log; exit 1; }
  sleep 0.2
done
events=.local/demo-events
rm -rf "$events" && mkdir -p "$events"
day=$(date -u -d yesterday +%F)
for i in $(seq 1 600); do
  user=$(( 1 + (i * 7919) % 12000 ))
  at="${day}T$(printf '%02d:%02d:%02d' $(( i % 24 )) $(( i * 7 % 60 )) $(( i * 13 % 60 )))Z"
  case $(( i % 50 )) in
    0) event='{"type":"page_view","occurred_at":"not a time","path":"/"}' ;;
    [1-9]|1[0-9]) event="{\"type\":\"add_to_cart\",\"occurred_at\":\"$at\",\"user_id\":$user,\"product_id\":$(( 1 + i % 600 )),\"quantity\":$(( 1 + i % 3 ))}" ;;
    *) event="{\"type\":\"page_view\",\"occurred_at\":\"$at\",\"user_id\":$user,\"session_id\":\"s$(( i / 5 ))\",\"path\":\"/products/$(( i % 600 ))\"}" ;;
  esac
  printf '{"subscription":"projects/sluice-local/subscriptions/log-ingest-push","message":{"messageId":"demo-%s-%d","publishTime":"%sT23:59:59Z","data":"%s"}}' \
    "$day" "$i" "$day" "$(printf '%s' "$event" | base64 -w0)" >"$events/$i.json"
done
ls "$events" | xargs -P 8 -I{} curl -sf -o /dev/null -H 'content-type: application/json' \
  --data-binary "@$events/{}" "http://127.0.0.1:$port/"
kill -TERM "$ingest" && wait "$ingest" || true
trap - EXIT
bq_count() {
  curl -s -H 'content-type: application/json' "$SLUICE_BQ_ENDPOINT/bigquery/v2/projects/$SLUICE_BQ_PROJECT/queries" \
    -d "{\"query\": \"SELECT COUNT(*) FROM $1\", \"useLegacySql\": false}" | sed -n 's/.*"v": *"\([0-9]*\)".*/\1/p'
}
# The _dedup views keep one row per Pub/Sub message, so a rerun of the demo counts the same.
echo "600 events posted: $(bq_count events.page_views_dedup) page views and $(bq_count events.cart_adds_dedup) cart adds stored, $(bq_count ops.dead_letter_open) in ops.dead_letter_open with their reason"

say "mart-build plan   (the marts in marts/, in dependency order)"
./target/debug/mart-build plan | sed '/```mermaid/,$d'

say "mart-build test   (each mart's unit tests: fixture rows in, expected rows out, in the emulator)"
./target/debug/mart-build test --target local

say "mart-build run --ds $to   (waits for its inputs' runs in the ledger, builds through staging, checks, swaps)"
./target/debug/mart-build run --target local --ds "$to" --wait 5m --poll 5s

say "monitor: a local webhook receiver stands in for Slack (/slack) and Teams (/teams)"
hooks=.local/webhooks
rm -rf "$hooks"
sink_port=${SLUICE_DEMO_WEBHOOK_PORT:-8098}
./target/debug/webhook-sink --port "$sink_port" --dir "$hooks" >.local/demo-webhooks.log 2>.local/demo-webhooks.err &
sink=$!
trap 'kill $sink 2>/dev/null || true' EXIT
export SLACK_WEBHOOK_URL="http://127.0.0.1:$sink_port/slack" TEAMS_WEBHOOK_URL="http://127.0.0.1:$sink_port/teams"
until grep -q listening .local/demo-webhooks.err 2>/dev/null; do
  kill -0 "$sink" 2>/dev/null || { echo "webhook-sink did not start:"; cat .local/demo-webhooks.err; exit 1; }
  sleep 0.2
done
: >.local/demo-monitor.log
# Prints what the receiver took since the last call: status, path, title, the saved body.
shown=0
show_messages() {
  sleep 0.5
  local n
  n=$(wc -l <.local/demo-webhooks.log)
  if [ "$n" -gt "$shown" ]; then sed -n "$((shown + 1)),${n}p" .local/demo-webhooks.log | sed 's/^/    /'; else echo "    (no message)"; fi
  shown=$n
}
monitor() { ./target/debug/monitor --target local --log-format json "$@" 2>>.local/demo-monitor.log; }

# The demo starts from no incidents (an earlier demo's stay in ops.alerts otherwise).
curl -s -o /dev/null -H 'content-type: application/json' "$SLUICE_BQ_ENDPOINT/bigquery/v2/projects/$SLUICE_BQ_PROJECT/queries" \
  -d '{"query": "DELETE FROM ops.alerts WHERE TRUE", "useLegacySql": false}'
say "monitor check   (every 10 minutes in the cloud: failed and missed runs, freshness, checks, dead letters, CDC lag)"
monitor check --no-page
show_messages

uid=$(psql "$SHOP_DATABASE_URL" -tAX -c "SELECT user_id FROM orders WHERE created_at < current_date - 1 ORDER BY created_at, id LIMIT 1")
say "tripping a fail condition: user $uid now signed up after their first order (growth.first_orders checks first_order_after_signup)"
signed_up=$(psql "$SHOP_DATABASE_URL" -tAX -c "SELECT created_at FROM users WHERE id = $uid")
psql "$SHOP_DATABASE_URL" -qX -c "UPDATE users SET created_at = current_date - interval '1 hour' WHERE id = $uid"
./target/debug/pg-copy --target local --table users --log-format json >/dev/null 2>&1
./target/debug/mart-build run --target local --ds "$to" --select growth.first_orders --log-format json >/dev/null 2>&1 \
  && { echo "growth.first_orders should have failed its check"; exit 1; } || true
echo "    mart-build stopped growth.first_orders (and what reads it) at the check; the table is as it was"

say "monitor check   (the failure goes to Slack and Teams, naming the mart's owner)"
monitor check --no-page
show_messages
first=$(ls "$hooks" | grep slack | tail -n 1)
echo "    the Slack body ($hooks/$first):"
sed 's/^/      /' "$hooks/$first"

say "monitor check again   (the incident is open: nothing is posted twice)"
monitor check --no-page
show_messages

say "fixing it: the signup date restored, users copied again, the mart rebuilt"
psql "$SHOP_DATABASE_URL" -qX -c "UPDATE users SET created_at = '$signed_up' WHERE id = $uid"
./target/debug/pg-copy --target local --table users --log-format json >/dev/null 2>&1
./target/debug/mart-build run --target local --ds "$to" --select growth.first_orders --log-format json >/dev/null 2>&1

say "monitor check   (the recovery notice)"
monitor check --no-page
show_messages

say "monitor digest --day today   (daily at alerts.digest.at for yesterday: alive, runs, failures, the DQ report, freshness, dead letters, cost)"
monitor digest --day today
show_messages

say "monitor check --now +50 min   (as if the scheduler had stopped: cdc-sync's runs every 5 minutes did not come)"
monitor check --now "$(date -u -d '+50 min' +%FT%TZ)"
show_messages
kill "$sink" 2>/dev/null || true
trap - EXIT

say "monitor doctor   (everything the pipeline needs is there now: exits 0)"
./target/debug/monitor --target local --log-format json doctor 2>>.local/demo-monitor.log

page=.local/lake/sluice-lake/status/index.html
if command -v chromium >/dev/null; then
  chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1280,2400 \
    --screenshot=.local/status-page.png "file://$PWD/$page" >/dev/null 2>&1 || true
fi
echo "    status page: $page (in the cloud: gs://<lake bucket>/status/index.html)"
[ -f .local/status-page.png ] && echo "    its screenshot: .local/status-page.png"
echo "    every message the receiver took: $hooks/ (Slack Block Kit and Teams Adaptive Card bodies)"

say "done: copies in dataset shop_raw, replicas in shop_replica (orders_history keeps every change), events in events (rejects in ops.dead_letter), marts in finance, growth and product, check results in ops.dq_results, the run ledger in ops.runs, alerts in ops.alerts (views ops.catalog_tables, ops.freshness, ...), Parquet under .local/lake/sluice-lake/"

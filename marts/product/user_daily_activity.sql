/*
description: What each active user did on a day - page views and cart adds from the app's events, orders from the shop.
owner: "@product-analyst"
materialized: partition
partition_by: day
cluster_by: user_id
columns:
  day: The day (UTC).
  user_id: The user.
  page_views: Page views by the user that day (events.page_views_dedup, one row per Pub/Sub message).
  items_added: Items the user added to their cart (events.cart_adds_dedup).
  orders: Orders the user placed (shop_raw.orders).
  order_total: Sum of those orders' totals, across currencies.
fail_conditions:
  - not_null: user_id
  - unique: [day, user_id]
  - {name: some_activity, threshold: 1.0, expression: "COUNTIF(page_views + items_added + orders > 0)"}
dq_metrics:
  - {name: viewers_who_ordered, threshold: 0.0, expression: "COUNTIF(orders > 0 AND page_views > 0)"}
  - row_count_change: {max_ratio: 0.8}
*/
WITH views AS (
  SELECT user_id, COUNT(*) AS page_views
  FROM events.page_views_dedup
  WHERE occurred_at >= @ds_start AND occurred_at < @ds_end AND user_id IS NOT NULL
  GROUP BY user_id
),
carts AS (
  SELECT user_id, SUM(quantity) AS items_added
  FROM events.cart_adds_dedup
  WHERE occurred_at >= @ds_start AND occurred_at < @ds_end
  GROUP BY user_id
),
placed AS (
  SELECT user_id, COUNT(*) AS orders, SUM(total) AS order_total
  FROM shop_raw.orders
  WHERE created_at >= @ds_start AND created_at < @ds_end
  GROUP BY user_id
),
active AS (
  SELECT user_id FROM views
  UNION DISTINCT SELECT user_id FROM carts
  UNION DISTINCT SELECT user_id FROM placed
)
SELECT
  @ds AS day,
  a.user_id,
  COALESCE(v.page_views, 0) AS page_views,
  COALESCE(c.items_added, 0) AS items_added,
  COALESCE(p.orders, 0) AS orders,
  COALESCE(p.order_total, 0) AS order_total
FROM active AS a
LEFT JOIN views AS v ON v.user_id = a.user_id
LEFT JOIN carts AS c ON c.user_id = a.user_id
LEFT JOIN placed AS p ON p.user_id = a.user_id

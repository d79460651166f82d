/*
description: Every user with their signup and their first order (if any) up to the logical date.
owner: "@growth-analyst"
freshness: { warn_after: 26h }
materialized: table
cluster_by: user_id
columns:
  user_id: The user (shop_raw.users.id).
  signup_day: Day the user signed up (UTC).
  first_order_at: When the user placed their first order; NULL if they have not.
  first_order_total: Total of that first order.
  orders: Orders the user has placed.
fail_conditions:
  - not_null: user_id
  - unique: user_id
  - {name: first_order_after_signup, threshold: 1.0, expression: "COUNTIF(first_order_at IS NULL OR DATE(first_order_at) >= signup_day)"}
*/
WITH ranked AS (
  SELECT
    o.user_id,
    o.created_at,
    o.total,
    ROW_NUMBER() OVER (PARTITION BY o.user_id ORDER BY o.created_at, o.id) AS n,
    COUNT(*) OVER (PARTITION BY o.user_id) AS orders
  FROM shop_raw.orders AS o
  WHERE o.created_at < @ds_end
)
SELECT
  u.id AS user_id,
  DATE(u.created_at) AS signup_day,
  r.created_at AS first_order_at,
  r.total AS first_order_total,
  COALESCE(r.orders, 0) AS orders
FROM shop_raw.users AS u
LEFT JOIN ranked AS r ON r.user_id = u.id AND r.n = 1
WHERE u.created_at < @ds_end

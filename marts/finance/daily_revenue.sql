/*
description: Revenue per day and currency from the shop's orders, one partition per day.
owner: "@finance-analyst"
freshness: { warn_after: 26h, error_after: 2d }
materialized: partition
partition_by: day
cluster_by: currency
columns:
  day: Day the orders were placed (UTC).
  currency: ISO 4217 code of the orders' currency.
  orders: Orders placed that day that count as revenue (paid or shipped).
  revenue: Sum of the totals of those orders, in the currency.
  refunded: Sum of the totals of orders placed that day and since refunded.
fail_conditions:
  - not_null: day
  - unique: [day, currency]
  - {name: revenue_not_negative, threshold: 1.0, expression: "COUNTIF(revenue >= 0)"}
  - accepted_values: {column: currency, values: [USD, EUR, JPY]}
dq_metrics:
  - not_empty: true
  - row_count_change: {max_ratio: 0.5}
*/
SELECT
  DATE(o.created_at) AS day,
  o.currency,
  COUNTIF(o.status IN ('paid', 'shipped')) AS orders,
  SUM(IF(o.status IN ('paid', 'shipped'), o.total, 0)) AS revenue,
  SUM(IF(o.status = 'refunded', o.total, 0)) AS refunded
FROM shop_raw.orders AS o
WHERE o.created_at >= @ds_start AND o.created_at < @ds_end
GROUP BY day, o.currency

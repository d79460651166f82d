/*
description: Signup to first order conversion, per signup day.
owner: "@growth-analyst"
materialized: table
columns:
  signup_day: Day the users signed up (UTC).
  signups: Users who signed up that day.
  ordered_within_7d: Of those, users whose first order came within 7 days of signing up.
  ordered_ever: Of those, users who have ordered at all.
  conversion_7d: ordered_within_7d / signups.
fail_conditions:
  - not_null: signup_day
  - unique: signup_day
  - {name: funnel_narrows, threshold: 1.0, expression: "COUNTIF(signups >= ordered_ever AND ordered_ever >= ordered_within_7d)"}
dq_metrics:
  - {name: some_conversion, threshold: 0.5, expression: "COUNTIF(conversion_7d > 0)"}
*/
SELECT
  f.signup_day,
  COUNT(*) AS signups,
  COUNTIF(f.first_order_at IS NOT NULL
          AND DATE(f.first_order_at) <= DATE_ADD(f.signup_day, INTERVAL 7 DAY)) AS ordered_within_7d,
  COUNTIF(f.first_order_at IS NOT NULL) AS ordered_ever,
  SAFE_DIVIDE(
    COUNTIF(f.first_order_at IS NOT NULL
            AND DATE(f.first_order_at) <= DATE_ADD(f.signup_day, INTERVAL 7 DAY)),
    COUNT(*)) AS conversion_7d
FROM growth.first_orders AS f
GROUP BY f.signup_day

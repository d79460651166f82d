/*
description: Weekly signup cohorts and the share of each cohort that ordered in each later week.
owner: "@growth-analyst"
materialized: table
columns:
  cohort_week: Monday of the week the users signed up.
  week: Weeks since the cohort week (0 is the signup week).
  cohort_size: Users who signed up in the cohort week.
  active_users: Users of the cohort who ordered in that week.
  retention: active_users / cohort_size.
fail_conditions:
  - not_null: cohort_week
  - unique: [cohort_week, week]
  - {name: retention_is_a_share, threshold: 1.0, expression: "COUNTIF(retention BETWEEN 0 AND 1)"}
  - {name: no_week_before_signup, threshold: 1.0, expression: "COUNTIF(week >= 0)"}
*/
WITH cohorts AS (
  SELECT u.id AS user_id, DATE_TRUNC(DATE(u.created_at), WEEK(MONDAY)) AS cohort_week
  FROM shop_raw.users AS u
  WHERE u.created_at < @ds_end
),
sizes AS (
  SELECT cohort_week, COUNT(*) AS cohort_size FROM cohorts GROUP BY cohort_week
),
activity AS (
  SELECT DISTINCT o.user_id, DATE_TRUNC(DATE(o.created_at), WEEK(MONDAY)) AS order_week
  FROM shop_raw.orders AS o
  WHERE o.created_at < @ds_end
)
SELECT
  c.cohort_week,
  DIV(DATE_DIFF(a.order_week, c.cohort_week, DAY), 7) AS week,
  s.cohort_size,
  COUNT(DISTINCT c.user_id) AS active_users,
  COUNT(DISTINCT c.user_id) / s.cohort_size AS retention
FROM cohorts AS c
JOIN activity AS a ON a.user_id = c.user_id AND a.order_week >= c.cohort_week
JOIN sizes AS s ON s.cohort_week = c.cohort_week
GROUP BY c.cohort_week, week, s.cohort_size

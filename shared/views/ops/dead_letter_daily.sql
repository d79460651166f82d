/*
description: Dead letters per day, event type and reason, counted once per message.
materialized: view
*/
SELECT
  DATE(received_at) AS day,
  event_type,
  reason_code,
  COUNT(DISTINCT message_id) AS messages,
  SUM(payload_size) AS payload_bytes
FROM ops.dead_letter
GROUP BY day, event_type, reason_code

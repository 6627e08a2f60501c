// The floor of the contract's records (docs/benchmarks.md): one statement, committed on its
// own, that writes what DESIGN §4 keeps of a delivered message on our schema (the line's head
// moved on, the delivery marked delivered with its successful attempt) and reads the next head's
// payload, as a worker must. No claim, lease or fence. $1 webhook id, $2 partition key,
// $3 the delivered sequence, $4 attempt, $5 started at, $6 duration in ms.
export const RECORD_DELIVERED = `
WITH line AS (
  UPDATE delivery_lines
  SET head_sequence = $3 + 1,
      next_attempt_at = CASE WHEN $3 < tail_sequence THEN clock_timestamp() + interval '30 s' END,
      head_created_at = CASE WHEN $3 < tail_sequence THEN now() END
  WHERE webhook_id = $1 AND partition_key = $2
  RETURNING webhook_id
), delivery AS (
  UPDATE deliveries
  SET status = 'delivered', attempts = $4, last_status_code = 200, delivered_at = now(),
      next_attempt_at = NULL, delivered_attempt_id = nextval('logged_attempts_id_seq'),
      delivered_started_at = $5, delivered_duration_ms = $6
  WHERE webhook_id = $1 AND partition_key = $2 AND sequence = $3
)
SELECT m.payload::text AS body
FROM deliveries d JOIN messages m ON m.id = d.message_id
WHERE d.webhook_id = $1 AND d.partition_key = $2 AND d.sequence = $3 + 1`;

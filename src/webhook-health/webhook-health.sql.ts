import { webhookStats } from '../metrics/queue-stats.sql.js';

/**
 * A page of webhooks' health, of the topics $1 (or every topic when NULL), after webhook id $2,
 * up to $3: the queue gauges' figures (webhookStats: one pass over each webhook's lines, index
 * probes, no count over deliveries) and the last error. The last error is the most-behind line's
 * head's (delivery_lines_lag_idx, then the head by the line's unique key) while it has one, else
 * the newest dead delivery's (deliveries_webhook_dead_letter_idx, dead_at IS NOT NULL: set
 * exactly when dead; the range on webhook_id keeps it in the ORDER BY, so no plan walks
 * deliveries_dead_letter_idx through other webhooks' dead): what holds the webhook up now, or
 * what it last lost.
 */
export const WEBHOOK_HEALTH = `
SELECT s.*, w.topic_id, w.url, w.disabled_reason, w.on_exhausted,
       e.id AS last_error_delivery_id, e.last_error, e.last_status_code
FROM (${webhookStats(
  '($1::int[] IS NULL OR w.topic_id = ANY($1::int[])) AND w.id > $2',
  'per_webhook',
)}) AS s
JOIN webhooks w ON w.id = s.webhook_id
LEFT JOIN LATERAL (
  SELECT * FROM (
    SELECT 1 AS rank, head.* FROM (
      SELECT d.id, d.last_error, d.last_status_code
      FROM delivery_lines l
      JOIN deliveries d
        ON d.webhook_id = l.webhook_id AND d.partition_key = l.partition_key
       AND d.sequence = l.head_sequence
      WHERE l.webhook_id = s.webhook_id AND l.head_created_at IS NOT NULL
      ORDER BY l.head_created_at
      LIMIT 1
    ) AS head
    WHERE head.last_error IS NOT NULL
    UNION ALL
    SELECT 2, dead.* FROM (
      SELECT d.id, d.last_error, d.last_status_code FROM deliveries d
      WHERE d.webhook_id BETWEEN s.webhook_id AND s.webhook_id AND d.dead_at IS NOT NULL
      ORDER BY d.webhook_id DESC, d.id DESC
      LIMIT 1
    ) AS dead
  ) AS candidates
  ORDER BY rank
  LIMIT 1
) AS e ON true
ORDER BY s.webhook_id
LIMIT $3
`;

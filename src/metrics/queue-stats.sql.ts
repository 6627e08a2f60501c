/**
 * The statements behind the per-webhook queue gauges. None counts over deliveries: a scrape reads
 * each delivery_lines row once, one index entry per webhook and the few dead_delivery_counts rows.
 */

/**
 * Per webhook: pending deliveries, dead deliveries, the oldest pending delivery's age, blocked
 * lines.
 *
 * - Pending: a line's pending deliveries are head_sequence..tail_sequence (only a line's head
 *   is ever attempted, and it moves on only when the head is delivered or dead), from the
 *   rewound head when a rewind waits for the line's lease, less a blocked line's dead head; an
 *   idle line has its head past its tail. (After a sparse redrive or replay some sequences in
 *   that range are already delivered: the line walks past them.)
 * - Oldest pending: the first entry of the webhook's range in deliveries_pending_age_idx (an
 *   index-only probe per webhook); 0 when nothing is pending.
 * - Dead: the sum of the webhook's dead_delivery_counts rows, kept by triggers.
 * - Blocked lines: lines stopped at a dead head (on_exhausted = block, DESIGN §7).
 */
export const QUEUE_STATS = `
SELECT w.id AS webhook_id,
       t.name AS topic,
       coalesce(lines.pending, 0)::float8 AS pending,
       coalesce(lines.blocked, 0)::float8 AS blocked_lines,
       coalesce((SELECT sum(c.dead) FROM dead_delivery_counts c WHERE c.webhook_id = w.id), 0)::float8
         AS dead,
       coalesce(extract(epoch FROM now() - (
         SELECT min(d.created_at) FROM deliveries d
         WHERE d.webhook_id = w.id AND d.status = 'pending'
       )), 0)::float8 AS oldest_pending_age_seconds
FROM webhooks w
JOIN topics t ON t.id = w.topic_id
LEFT JOIN (
  SELECT webhook_id,
         sum(tail_sequence - least(head_sequence, coalesce(rewind_to, head_sequence)) + 1
             - blocked::int)
           FILTER (WHERE least(head_sequence, coalesce(rewind_to, head_sequence)) <= tail_sequence)
           AS pending,
         count(*) FILTER (WHERE blocked) AS blocked
  FROM delivery_lines
  GROUP BY webhook_id
) AS lines ON lines.webhook_id = w.id
ORDER BY w.id
`;

/**
 * Folds each webhook's dead_delivery_counts rows into one, so the table stays about one row per
 * webhook, and drops the rows of deleted webhooks. Safe beside the triggers and another fold:
 * rows appended meanwhile are not in this statement's snapshot and stay for the next fold; a row
 * another fold deleted first is skipped.
 */
export const FOLD_DEAD_COUNTS = `
WITH folded AS (
  DELETE FROM dead_delivery_counts
  WHERE webhook_id IN (
    SELECT webhook_id FROM dead_delivery_counts GROUP BY webhook_id HAVING count(*) > 1
  )
  OR webhook_id NOT IN (SELECT id FROM webhooks)
  RETURNING webhook_id, dead
)
INSERT INTO dead_delivery_counts (webhook_id, dead)
SELECT webhook_id, sum(dead) FROM folded
WHERE webhook_id IN (SELECT id FROM webhooks)
GROUP BY webhook_id
`;

export interface QueueStatsRow {
  webhook_id: number;
  topic: string;
  pending: number;
  blocked_lines: number;
  dead: number;
  oldest_pending_age_seconds: number;
}

import type { WebhookStatus } from '../database/entities/webhook.entity.js';

/**
 * The statements behind the per-webhook queue gauges. None counts over deliveries: a scrape reads
 * each delivery_lines row once, one index probe per blocked line and the few dead_delivery_counts
 * rows.
 */

/**
 * Per webhook of delivery_lines l: its pending deliveries, blocked lines, the oldest head of its
 * other lines with something to send, and its blocked lines' keys and heads (see webhookStats).
 * `head` is the line's next to send: a rewind still waiting for the line's lease counts.
 */
const LINE_FIGURES = `
SELECT l.webhook_id,
       sum(l.tail_sequence - h.head + 1 - l.blocked::int) FILTER (WHERE h.head <= l.tail_sequence)
         AS pending,
       count(*) FILTER (WHERE l.blocked) AS blocked,
       min(l.head_created_at) FILTER (WHERE h.head <= l.tail_sequence AND NOT l.blocked)
         AS oldest_head_at,
       array_agg(l.partition_key) FILTER (WHERE l.blocked) AS blocked_keys,
       array_agg(l.head_sequence) FILTER (WHERE l.blocked) AS blocked_heads
FROM delivery_lines l
CROSS JOIN LATERAL (
  SELECT least(l.head_sequence, coalesce(l.rewind_to, l.head_sequence)) AS head
) AS h`;

/**
 * The publication time of the first pending delivery after each blocked line's dead head, one
 * probe of the line's unique key each; apart from LINE_FIGURES, so that the planner counts a
 * probe per blocked line rather than one per line (which made the statement look costly enough
 * to compile with JIT).
 */
const BLOCKED_OLDEST = `(
  SELECT min(n.created_at)
  FROM unnest(lines.blocked_keys, lines.blocked_heads) AS b (partition_key, head)
  CROSS JOIN LATERAL (
    SELECT d.created_at FROM deliveries d
    WHERE d.webhook_id = w.id AND d.partition_key = b.partition_key AND d.sequence > b.head
      AND d.status = 'pending'
    ORDER BY d.sequence
    LIMIT 1
  ) AS n
)`;

/**
 * Per webhook: its status, pending deliveries, dead deliveries, the oldest pending delivery's
 * age, blocked lines; of the webhooks that `where` (a condition on w, the webhooks row) keeps.
 * `grouped` (every webhook) reads delivery_lines in one pass; `per_webhook` (a few of them) reads
 * each one's range of delivery_lines_pkey.
 *
 * - Pending: a line's pending deliveries are head_sequence..tail_sequence (only a line's head
 *   is ever attempted, and it moves on only when the head is delivered or dead), from the
 *   rewound head when a rewind waits for the line's lease, less a blocked line's dead head; an
 *   idle line has its head past its tail. (After a sparse redrive or replay some sequences in
 *   that range are already delivered: the line walks past them.)
 * - Oldest pending: the oldest of the lines' oldest pending deliveries: a line's head, whose
 *   publication time the line keeps (head_created_at, the lines API's oldest_pending_at), or for
 *   a blocked line the first pending delivery after its dead head, one probe of the line's
 *   unique key. 0 when nothing is pending. (No index of deliveries tells pending rows from
 *   delivered ones: marking a delivery delivered stays a heap-only update, migration
 *   HotRecords1795633464900.)
 * - Dead: the sum of the webhook's dead_delivery_counts rows, kept by triggers.
 * - Blocked lines: lines stopped at a dead head (on_exhausted = block, DESIGN §7).
 */
export function webhookStats(where: string, lines: 'grouped' | 'per_webhook'): string {
  return `
SELECT w.id AS webhook_id,
       t.name AS topic,
       w.status,
       coalesce(lines.pending, 0)::float8 AS pending,
       coalesce(lines.blocked, 0)::float8 AS blocked_lines,
       coalesce((SELECT sum(c.dead) FROM dead_delivery_counts c WHERE c.webhook_id = w.id), 0)::float8
         AS dead,
       coalesce(extract(epoch FROM now() - least(lines.oldest_head_at, ${BLOCKED_OLDEST})), 0)::float8
         AS oldest_pending_age_seconds
FROM webhooks w
JOIN topics t ON t.id = w.topic_id
LEFT JOIN ${
    lines === 'grouped'
      ? `(${LINE_FIGURES} GROUP BY l.webhook_id) AS lines ON lines.webhook_id = w.id`
      : `LATERAL (${LINE_FIGURES} WHERE l.webhook_id = w.id GROUP BY l.webhook_id) AS lines ON true`
  }
WHERE w.deleted_at IS NULL AND (${where})
ORDER BY w.id
`;
}

/** Every webhook's figures, for the API's gauges. */
export const QUEUE_STATS = webhookStats('true', 'grouped');

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
  status: WebhookStatus;
  pending: number;
  blocked_lines: number;
  dead: number;
  oldest_pending_age_seconds: number;
}

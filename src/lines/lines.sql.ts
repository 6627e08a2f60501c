/** The lines API's read model (DESIGN §7): a webhook's lines and their state. */

export const LINE_STATES = ['idle', 'due', 'in_flight', 'retrying', 'blocked', 'paused'] as const;
export type LineState = (typeof LINE_STATES)[number];

/**
 * A webhook's lines with their state, one page. The head shown is the one the line will send
 * next: a rewind still waiting for the line's lease (rewind_to) counts. `pending` is the number
 * of sequences from that head to the tail (after a sparse redrive some of them are already
 * delivered and will be passed over).
 *
 * State, first match: blocked; idle (nothing to send); in_flight (leased, lease running);
 * paused (the webhook is paused or disabled); retrying (waiting for a due time: a backoff, or a
 * destination's open circuit); due (a worker may claim it now, or its lease lapsed).
 *
 * By lag: the ORDER BY is delivery_lines_lag_idx (webhook_id, head_created_at, partition_key),
 * so the plan walks the index from the oldest head and stops at the limit: a page costs its own
 * rows whatever the number of lines (idle lines, head_created_at NULL, come last). By
 * partition_key: the primary key from $3 (exclusive); 'one': the line of partition key $3.
 * $2 a state or NULL, $4 the limit.
 */
export function listLines(order: 'lag' | 'partition_key' | 'one'): string {
  return `
SELECT partition_key, head_sequence, tail_sequence, pending, oldest_pending_at,
       next_attempt_at, state
FROM (
  SELECT l.partition_key,
         h.head AS head_sequence,
         l.tail_sequence,
         greatest(l.tail_sequence - h.head + 1, 0)::bigint AS pending,
         l.head_created_at AS oldest_pending_at,
         l.next_attempt_at,
         CASE
           WHEN l.blocked THEN 'blocked'
           WHEN h.head > l.tail_sequence THEN 'idle'
           WHEN l.lease_token IS NOT NULL AND l.next_attempt_at > now() THEN 'in_flight'
           WHEN w.status <> 'active' THEN 'paused'
           WHEN l.next_attempt_at > now() THEN 'retrying'
           ELSE 'due'
         END AS state
  FROM delivery_lines l
  JOIN webhooks w ON w.id = l.webhook_id
  CROSS JOIN LATERAL (
    SELECT least(l.head_sequence, coalesce(l.rewind_to, l.head_sequence)) AS head
  ) AS h
  WHERE l.webhook_id = $1 AND l.partition_key ${order === 'one' ? '=' : '>'} $3::text
  ORDER BY ${order === 'lag' ? 'l.head_created_at, l.partition_key' : 'l.partition_key'}
) AS lines
WHERE $2::text IS NULL OR state = $2::text
LIMIT $4
`;
}

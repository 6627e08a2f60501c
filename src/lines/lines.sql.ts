import { MOVE_HEAD_TO_NEXT, NEXT_HEAD, NOTIFY_CHANNEL } from '../delivery/delivery.sql.js';

/**
 * The lines API and the rewinds (DESIGN §7). These statements run in the API, beside the
 * workers' (delivery.sql.ts), on the same delivery_lines rows; each says why it cannot break a
 * worker's fence or the order of a line.
 */

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

/**
 * Skip a blocked line's dead head: it stays dead and the line moves on to its next pending
 * delivery (NEXT_HEAD, with $4 the head), due now if there is one. Only a blocked line at head
 * $4 matches, and a blocked line has no lease ($3 is NULL: no worker's fence is involved); a
 * second run finds it no longer blocked and changes nothing.
 */
export const SKIP_BLOCKED_HEAD = `
WITH n AS (${NEXT_HEAD})
UPDATE delivery_lines AS l
SET ${MOVE_HEAD_TO_NEXT},
    blocked = false
FROM n
WHERE l.webhook_id = $1 AND l.partition_key = $2 AND l.blocked AND l.head_sequence = $4
  AND l.lease_token IS NOT DISTINCT FROM $3::uuid
RETURNING 1
`;

/** The blocked head of a line, for SKIP_BLOCKED_HEAD's fence. */
export const BLOCKED_HEAD = `
SELECT head_sequence::text AS head FROM delivery_lines
WHERE webhook_id = $1 AND partition_key = $2 AND blocked
`;

/**
 * Rewind a batch of whole lines (redrive or replay): make chosen deliveries pending again with a
 * fresh retry budget and send each line back to the first of them, in one transaction per batch.
 *
 * - $1/$2/$3: the lines (webhook ids, partition keys) and, for a replay, each line's first
 *   sequence to send again. $4 'redrive' or 'replay'. For a redrive: $5 delivery ids, $6/$7 the
 *   dead_at range (each NULL = no filter).
 * - Run after LOCK_WEBHOOKS (rewind.service.ts) in the same transaction: the webhooks' rows
 *   first, then the lines in primary-key order (the order the fan-out's upsert and PATCH take
 *   them, so none of them deadlock with this), then their deliveries, as a worker's
 *   RECORD_ATTEMPTS does (lines, then deliveries). A worker's head is
 *   pending, and only dead (redrive) or delivered and dead (replay) deliveries change here, so
 *   this never rewrites the delivery a worker is sending.
 * - Redrive: the dead deliveries that match, and a blocked line's head with them (a blocked line
 *   never passes its dead head silently). Replay: every delivered or dead delivery of the line
 *   from its first sequence on. Attempts start again from 0; the attempt log keeps the old ones.
 * - A line with no lease gets its head moved back at once (least of the head, any pending rewind
 *   and the first rewound sequence) and is due now (parked if the webhook is paused). A leased
 *   line keeps its head, so the worker's fenced record still matches, and gets rewind_to: the
 *   record releases the line at once and the next claim moves the head back (CLAIM_LINES). Either
 *   way nothing after the rewound messages is sent before them, and several in one line go in
 *   sequence order: they are all in this batch (a line is never split between two).
 * - A blocked line stays blocked only if nothing at or before its head was rewound.
 * - One NOTIFY per batch wakes the workers.
 */
export const REWIND_LINES = `
WITH targets AS (
  SELECT l.webhook_id, l.partition_key, l.head_sequence, l.blocked, t.from_sequence
  FROM unnest($1::int[], $2::text[], $3::bigint[]) AS t (webhook_id, partition_key, from_sequence)
  JOIN delivery_lines l ON l.webhook_id = t.webhook_id AND l.partition_key = t.partition_key
  ORDER BY l.webhook_id, l.partition_key
  FOR NO KEY UPDATE OF l
), again AS (
  UPDATE deliveries AS d
  SET status = 'pending', attempts = 0, next_attempt_at = now(), dead_at = NULL,
      delivered_at = NULL
  FROM targets t
  WHERE d.webhook_id = t.webhook_id AND d.partition_key = t.partition_key
    AND CASE
      WHEN $4::text = 'replay' THEN d.sequence >= t.from_sequence AND d.status <> 'pending'
      ELSE d.status = 'dead' AND (
        (t.blocked AND d.sequence = t.head_sequence)
        OR (($5::bigint[] IS NULL OR d.id = ANY ($5::bigint[]))
            AND ($6::timestamptz IS NULL OR d.dead_at >= $6::timestamptz)
            AND ($7::timestamptz IS NULL OR d.dead_at < $7::timestamptz)))
    END
  RETURNING d.webhook_id, d.partition_key, d.sequence, d.created_at
), firsts AS (
  SELECT DISTINCT ON (webhook_id, partition_key) webhook_id, partition_key, sequence, created_at
  FROM again
  ORDER BY webhook_id, partition_key, sequence
), rewound AS (
  UPDATE delivery_lines AS l
  SET head_sequence = CASE
        WHEN l.lease_token IS NULL
          THEN least(l.head_sequence, f.sequence, coalesce(l.rewind_to, f.sequence))
        ELSE l.head_sequence
      END,
      rewind_to = CASE
        WHEN l.lease_token IS NOT NULL THEN least(coalesce(l.rewind_to, f.sequence), f.sequence)
      END,
      blocked = l.blocked AND f.sequence > l.head_sequence,
      next_attempt_at = CASE
        WHEN l.lease_token IS NOT NULL THEN l.next_attempt_at
        WHEN l.blocked AND f.sequence > l.head_sequence THEN NULL
        WHEN w.status = 'active' THEN now()
      END,
      head_created_at = least(l.head_created_at, f.created_at)
  FROM firsts f, webhooks w
  WHERE l.webhook_id = f.webhook_id AND l.partition_key = f.partition_key
    AND w.id = l.webhook_id
  RETURNING 1
)
SELECT (SELECT count(*) FROM again)::int AS rewound,
       (SELECT count(*) FROM rewound)::int AS lines,
       pg_notify('${NOTIFY_CHANNEL}', '')
`;

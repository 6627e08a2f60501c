/**
 * The queue's shared state changes: the statements that move a line's head, rewind it or skip
 * it, outside a worker's claim (DESIGN §7), and the channel that wakes the workers. The API and
 * the worker both use them; this folder imports neither. These statements run beside the
 * workers' (src/delivery/delivery.sql.ts), on the same delivery_lines rows; each says why it
 * cannot break a worker's fence or the order of a line.
 */

/** The channel the fan-out trigger notifies once per producing transaction. */
export const NOTIFY_CHANNEL = 'pgwq_deliveries';

/**
 * Where a line goes when its head $4 is finished or gone: the next pending delivery after it, in
 * one index range scan over (webhook_id, partition_key, sequence), so a line whose range holds
 * many delivered or dead rows (after a redrive or replay rewound it) passes them in one step.
 * Only rows visible to this statement's snapshot are jumped over: a delivery committed later (a
 * producer's) has a higher sequence than every visible one, so the jump stops at the highest
 * visible sequence + 1 and never passes it. `next_created_at` is the next head's publication
 * time (NULL when it is not visible yet). Parameters: $1 webhook, $2 partition key, $4 the head.
 */
export const NEXT_HEAD = `
SELECT coalesce(
         p.sequence,
         greatest((SELECT max(d.sequence) FROM deliveries d
                   WHERE d.webhook_id = $1 AND d.partition_key = $2) + 1, $4::bigint + 1),
         $4::bigint + 1
       ) AS sequence,
       p.created_at AS next_created_at
FROM (SELECT 1) AS one
LEFT JOIN LATERAL (
  SELECT d.sequence, d.created_at FROM deliveries d
  WHERE d.webhook_id = $1 AND d.partition_key = $2 AND d.sequence > $4::bigint
    AND d.status = 'pending'
  ORDER BY d.sequence
  LIMIT 1
) AS p ON true
`;

/**
 * The line's columns after its head moved to `next` (a NEXT_HEAD row): due now when there is more
 * (or a rewind to apply), idle otherwise; lease released. (Due even when the webhook is paused,
 * for the reason RECORD_ATTEMPTS gives: the claim's filter passes over it.)
 */
export const MOVE_HEAD_TO_NEXT = `
    head_sequence = least(n.sequence, l.tail_sequence + 1),
    next_attempt_at = CASE
      WHEN n.sequence <= l.tail_sequence OR l.rewind_to IS NOT NULL THEN now()
    END,
    head_created_at = CASE
      WHEN l.rewind_to IS NOT NULL THEN l.head_created_at
      WHEN n.sequence <= l.tail_sequence THEN coalesce(n.next_created_at, now())
    END,
    lease_token = NULL
`;

/**
 * Skip a blocked line's dead head: it stays dead and the line moves on to its next pending
 * delivery (NEXT_HEAD, with $4 the head), due now if there is one. Run after LOCK_LINE in the same
 * transaction, with $4 read after it (BLOCKED_HEAD), so the next head is chosen in a snapshot
 * taken after the line's lock: a replay or redrive that committed while the skip waited is seen,
 * and its pending deliveries are not passed over. Only a blocked line at head $4 matches, and a
 * blocked line has no lease ($3 is NULL: no worker's fence is involved); a second run finds it no
 * longer blocked and changes nothing.
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

/** One line ($1 webhook, $2 partition key), waiting for its lock: it holds no other line's. */
export const LOCK_LINE = `
SELECT 1 FROM delivery_lines WHERE webhook_id = $1 AND partition_key = $2 FOR NO KEY UPDATE
`;

/**
 * Lock the lines ($1 webhook ids, $2 partition keys) that nobody else holds, and return them.
 * SKIP LOCKED: a transaction that locks several lines never waits for one while holding others,
 * so it cannot deadlock with a producer that locks the same partitions in any order; the lines
 * passed over are rewound alone, each waiting for its own lock. Each line is one primary-key probe
 * (LATERAL), whatever the planner estimates.
 */
export const LOCK_FREE_LINES = `
SELECT l.webhook_id, l.partition_key
FROM unnest($1::int[], $2::text[]) AS t (webhook_id, partition_key)
CROSS JOIN LATERAL (
  SELECT webhook_id, partition_key FROM delivery_lines
  WHERE webhook_id = t.webhook_id AND partition_key = t.partition_key
  FOR NO KEY UPDATE SKIP LOCKED
) AS l
`;

/**
 * Rewind lines (redrive or replay): make chosen deliveries pending again with a fresh retry
 * budget and send each line back to the first of them. Run after its lines were locked
 * (LOCK_FREE_LINES or LOCK_LINE) in the same transaction, so everything it decides from (the
 * lines' heads, leases and blocks, the deliveries' statuses, the webhook's status) is read in a
 * snapshot taken after the locks (DESIGN §3's snapshot trap): a head that a worker's record
 * moved, or a rewind or skip that another operator committed while this waited, is seen.
 *
 * - $1/$2/$3: the lines (webhook ids, partition keys) and, for a replay, each line's first
 *   sequence to send again. $4 'redrive' or 'replay'. For a redrive: $5 delivery ids, $6/$7 the
 *   dead_at range (each NULL = no filter).
 * - A big line is rewound in slices (DESIGN §7: batches within a line too), each its own
 *   transaction, from its highest sequences down: $8 each line's exclusive upper bound (NULL:
 *   none), $9 at most this many deliveries (NULL: all), $10 whether this statement moves the
 *   line's head (false for every slice but the last, the lowest), $11 the lowest sequence the
 *   earlier slices rewound. A slice that does not move the head changes only deliveries at or
 *   beyond its upper slices' lowest, and the line's head stays where it is: the worker goes on
 *   forward and never reaches back below its head, so nothing is sent out of order while the
 *   slices run. The last one moves the head back to the lowest rewound of them all. (Those
 *   slices run without the line's lock, RewindService says why; the last one takes it.)
 * - Redrive: the dead deliveries that match, and a blocked line's head with them (a blocked line
 *   never passes its dead head silently). Replay: every delivered or dead delivery of the line
 *   from its first sequence on; the last statement also takes those below the line's head now,
 *   the ones a worker sent while the slices ran, so everything from the first sequence on is
 *   sent again after the rewind. Attempts start again from 0; the attempt log keeps the old ones.
 *   A worker's head is pending, and only dead (redrive) or delivered and dead (replay) deliveries
 *   change here, so this never rewrites the delivery a worker is sending. Chosen by key (= ANY of
 *   their ids, from one index range scan per line): no plan can make this quadratic.
 * - A line with no lease gets its head moved back at once (least of the head, any pending rewind
 *   and the first rewound sequence) and is due now (parked if the webhook is not active, as read
 *   here: a resume that commits later settles this line after this commits, see
 *   webhook-state.ts). A leased line keeps its head, so the worker's fenced record still matches,
 *   and gets rewind_to: the record releases the line at once and the next claim moves the head
 *   back (pgwq_claim_lines). Either way nothing after the rewound messages is sent before them,
 *   and several in one line go in sequence order.
 * - A blocked line stays blocked only if nothing at or before its head was rewound.
 * - One NOTIFY per statement wakes the workers.
 */
export const REWIND_LINES = `
WITH targets AS (
  SELECT l.webhook_id, l.partition_key, l.head_sequence, l.blocked, t.from_sequence, t.below,
         t.first_before
  FROM unnest($1::int[], $2::text[], $3::bigint[], $8::bigint[], $11::bigint[])
    AS t (webhook_id, partition_key, from_sequence, below, first_before)
  JOIN delivery_lines l ON l.webhook_id = t.webhook_id AND l.partition_key = t.partition_key
), chosen AS (
  SELECT c.id
  FROM targets t
  CROSS JOIN LATERAL (
    SELECT d.id FROM deliveries d
    WHERE d.webhook_id = t.webhook_id AND d.partition_key = t.partition_key
      AND (t.below IS NULL OR d.sequence < greatest(
        t.below, CASE WHEN $10 AND $4::text = 'replay' THEN t.head_sequence END))
      AND CASE
        WHEN $4::text = 'replay' THEN d.sequence >= t.from_sequence AND d.status <> 'pending'
        ELSE d.status = 'dead' AND (
          (t.blocked AND d.sequence = t.head_sequence)
          OR (($5::bigint[] IS NULL OR d.id = ANY ($5::bigint[]))
              AND ($6::timestamptz IS NULL OR d.dead_at >= $6::timestamptz)
              AND ($7::timestamptz IS NULL OR d.dead_at < $7::timestamptz)))
      END
    ORDER BY d.sequence DESC
    LIMIT $9
  ) AS c
), again AS (
  UPDATE deliveries AS d
  SET status = 'pending', attempts = 0, next_attempt_at = now(), dead_at = NULL,
      delivered_at = NULL, throttled_attempts = 0, throttled_since = NULL
  WHERE d.id = ANY (ARRAY(SELECT id FROM chosen))
  RETURNING d.webhook_id, d.partition_key, d.sequence, d.created_at
), firsts AS (
  SELECT DISTINCT ON (webhook_id, partition_key) webhook_id, partition_key, sequence, created_at
  FROM (
    SELECT webhook_id, partition_key, sequence, created_at FROM again
    UNION ALL
    SELECT d.webhook_id, d.partition_key, d.sequence, d.created_at
    FROM targets t
    JOIN deliveries d ON d.webhook_id = t.webhook_id AND d.partition_key = t.partition_key
      AND d.sequence = t.first_before
  ) AS rewound
  WHERE $10
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
       (SELECT min(sequence) FROM again)::text AS lowest,
       (SELECT count(*) FROM rewound)::int AS lines,
       pg_notify('${NOTIFY_CHANNEL}', '')
`;

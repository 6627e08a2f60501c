import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The delivery path's hot statements as PL/pgSQL functions: claim (pgwq_claim_lines), record
 * (pgwq_record_attempt) and renew (pgwq_renew_lease). The worker calls them with one short
 * unnamed statement (src/delivery/delivery.sql.ts).
 *
 * Why functions: PL/pgSQL caches each statement's plan in the server session, across
 * transactions, so the big statements are parsed and planned once per server connection even
 * when the client sends no named prepared statement. A transaction-mode pooler (PgBouncer before
 * 1.21, Supavisor, RDS Proxy without pinning) carries no named statements but does keep server
 * sessions, so through it a call costs what a named statement costs direct; sent unnamed, the
 * statements themselves were parsed and planned on every call (3–4× the time of the record).
 *
 * Each function body is one statement (RETURN QUERY), with the function's parameters as $n,
 * exactly as the worker used to send it: same snapshot rules (a VOLATILE function takes a fresh
 * snapshot for its statement, as a statement of its own would), same locks, same fences.
 * `#variable_conflict use_column`: the result columns' names (webhook_id, …) are PL/pgSQL
 * variables too; in the statement a name always means the table's column.
 *
 * Every fenced write matches the lease token AND the head sequence it expects, so it is
 * idempotent: a call whose commit succeeded but whose reply was lost (a reset, a failover) is
 * made again by the worker, and the second run finds the head already moved and changes nothing
 * (DESIGN §3). A token alone is not enough: a kept line keeps its token across heads.
 *
 * Lease expiries come from clock_timestamp(), the time of the write. now() is the transaction's
 * start (the call's), and a statement that waited on the line's row lock (a producer holds it
 * until its commit) would hand out a lease that is already partly or wholly spent. Due times may
 * use now(): a due time that is a little early only makes a retry a little early.
 *
 * Reminder of the model (see delivery-line.entity.ts): a delivery_lines row is one (webhook,
 * partition). Its next_attempt_at is "due at" while waiting and "lease expiry" while leased, so
 * `next_attempt_at <= now()` alone means claimable, and a crashed worker's lease simply lapses.
 */
export class DeliveryFunctions1795633463950 implements MigrationInterface {
  name = 'DeliveryFunctions1795633463950';

  public async up(queryRunner: QueryRunner): Promise<void> {
    // Pinned, as every function of ours is (TriggerIntegrity): our schema, then pg_temp.
    const [{ schema }] = await queryRunner.query(`SELECT quote_ident(current_schema()) AS schema`);
    for (const create of [CLAIM_LINES, RECORD_ATTEMPT, RENEW_LEASE]) {
      await queryRunner.query(
        create.replace('LANGUAGE plpgsql', `${pinned(schema)} LANGUAGE plpgsql`),
      );
    }
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP FUNCTION pgwq_renew_lease`);
    await queryRunner.query(`DROP FUNCTION pgwq_record_attempt`);
    await queryRunner.query(`DROP FUNCTION pgwq_claim_lines`);
  }
}

export const pinned = (schema: string) => `SET search_path = ${schema}, pg_temp`;

/** The columns of a claimed line (ClaimedLine in delivery.sql.ts). bigints as text. */
export const CLAIMED_LINE_COLUMNS = `
  webhook_id integer,
  partition_key text,
  sequence text,
  lease_token uuid,
  delivery_id text,
  message_id text,
  attempts integer,
  body text,
  url text,
  secret text,
  previous_secret text,
  topic text,
  failing boolean`;

/**
 * The head delivery of each line in `lines` (a CTE of leased delivery_lines rows) with everything
 * needed to POST it.
 *
 * - The head delivery is a unique-index lookup on (webhook_id, partition_key, sequence). It is
 *   LEFT joined: when it is missing (its message was deleted, or it committed after this
 *   statement's snapshot) the caller handles the line with SKIP_MISSING_HEAD.
 * - payload::text is the stored JSON exactly as PostgreSQL prints it: the signed body.
 * - previous_secret only while its grace period lasts.
 * - Nothing for a deleted webhook (DELETE /webhooks/{id}); its lines wait for the purge.
 * - failing: the webhook has a run of failed attempts (failing_since), which a success ends.
 */
export const headOfLines = (lines: string) => `
SELECT c.webhook_id,
       c.partition_key,
       c.head_sequence::text AS sequence,
       c.lease_token,
       d.id::text AS delivery_id,
       d.message_id::text AS message_id,
       d.attempts,
       m.payload::text AS body,
       w.url,
       w.secret,
       CASE WHEN w.previous_secret_expires_at > now() THEN w.previous_secret END AS previous_secret,
       t.name AS topic,
       w.failing_since IS NOT NULL AS failing
FROM ${lines} c
JOIN webhooks w ON w.id = c.webhook_id AND w.deleted_at IS NULL
JOIN topics t ON t.id = c.topic_id
LEFT JOIN deliveries d
  ON d.webhook_id = c.webhook_id
 AND d.partition_key = c.partition_key
 AND d.sequence = c.head_sequence
 AND d.status = 'pending'
LEFT JOIN messages m ON m.id = d.message_id
`;

/**
 * pgwq_claim_lines($1 lines, $2 lease ms, $3 webhooks left out, $4/$5 room per webhook
 * (ids, lines), $6 lines per webhook otherwise).
 *
 * Claim up to $1 due lines for a lease of $2 milliseconds, and return each line's head delivery
 * with everything needed to POST it. At most $6 lines per webhook, or the room given for it in
 * $4/$5 (webhook ids, lines), and none of the webhooks in $3 (at this worker's cap, or their
 * destination's circuit breaker is open): one webhook cannot take all of a worker's slots.
 *
 * - The `due` SELECT walks the partial index on next_attempt_at and locks with SKIP LOCKED, so
 *   concurrent workers take disjoint lines without waiting on each other. Left-out webhooks
 *   are skipped in the walk, so the lines behind theirs are reached.
 * - The due condition sits on the locked row itself (DESIGN §3, trap 2): if another worker
 *   claimed the line and committed between our scan and our lock, READ COMMITTED re-checks
 *   `next_attempt_at <= now()` on the new row version (now the other lease's expiry) and drops
 *   it. The UPDATE repeats it for the same reason. The head is head_sequence on that same row,
 *   so no subquery over deliveries can pick a stale head.
 * - Lines of a deleted webhook are left alone (the purge removes them), and so are those of a
 *   paused or disabled one (DESIGN §7). Pausing parks its lines (next_attempt_at NULL) and the
 *   fan-out does not wake them, so this filter only meets the few that a race left due (a lease
 *   that lapsed, a release, a producer that read the webhook as active just before the pause).
 *   The check is a scalar subquery, a filter on each line the index scan reaches: written as
 *   NOT EXISTS, the planner makes it an anti-join that reads and sorts every due line.
 * - A rewind (rewind_to: a redrive or replay that found the line leased) is applied here, by the
 *   claim that ends the old lease: the head goes back, so the rewound messages go first.
 * - `within_cap` keeps each webhook's oldest due lines up to its room; the rest stay locked
 *   only until this statement ends and are claimed by a later one.
 * - A fresh lease_token per line is the fence every later write must match; the lease runs
 *   from clock_timestamp(), the time of the write.
 * - Then the head of each claimed line (headOfLines).
 */
export const CLAIM_LINES = `
CREATE FUNCTION pgwq_claim_lines(integer, double precision, integer[], integer[], integer[], integer)
RETURNS TABLE (${CLAIMED_LINE_COLUMNS})
LANGUAGE plpgsql AS $fn$
#variable_conflict use_column
BEGIN
RETURN QUERY
WITH due AS (
  SELECT webhook_id, partition_key, next_attempt_at
  FROM delivery_lines
  WHERE next_attempt_at <= now()
    AND webhook_id <> ALL($3)
    AND (
      SELECT w.deleted_at IS NULL AND w.status = 'active'
      FROM webhooks w WHERE w.id = delivery_lines.webhook_id
    )
  ORDER BY next_attempt_at
  LIMIT $1
  FOR UPDATE SKIP LOCKED
), within_cap AS (
  SELECT ranked.webhook_id, ranked.partition_key
  FROM (
    SELECT webhook_id, partition_key,
           row_number() OVER (PARTITION BY webhook_id ORDER BY next_attempt_at) AS nth
    FROM due
  ) AS ranked
  LEFT JOIN unnest($4, $5) AS room (webhook_id, lines)
    ON room.webhook_id = ranked.webhook_id
  WHERE ranked.nth <= coalesce(room.lines, $6)
), claimed AS (
  UPDATE delivery_lines AS l
  SET lease_token = gen_random_uuid(),
      next_attempt_at = clock_timestamp() + make_interval(secs => $2 / 1000),
      head_sequence = least(l.head_sequence, coalesce(l.rewind_to, l.head_sequence)),
      rewind_to = NULL
  FROM within_cap AS c
  WHERE l.webhook_id = c.webhook_id
    AND l.partition_key = c.partition_key
    AND l.next_attempt_at <= now()
  RETURNING l.webhook_id, l.partition_key, l.topic_id, l.head_sequence, l.lease_token
)
${headOfLines('claimed')};
END
$fn$`;

/**
 * pgwq_renew_lease($1 webhook, $2 partition key, $3 lease token, $4 head, $5 lease ms).
 *
 * Extend a lease we still hold on head $4 to $5 ms from the time of the write. Not renewed =
 * the token is gone or the head moved: another worker took the line over, and the caller must
 * stop; line_exists false says why (the line went with its webhook). Running it twice is
 * harmless.
 */
const RENEW_LEASE = `
CREATE FUNCTION pgwq_renew_lease(integer, text, uuid, bigint, double precision)
RETURNS TABLE (renewed boolean, line_exists boolean)
LANGUAGE plpgsql AS $fn$
#variable_conflict use_column
BEGIN
RETURN QUERY
WITH renewed AS (
  UPDATE delivery_lines
  SET next_attempt_at = clock_timestamp() + make_interval(secs => $5 / 1000)
  WHERE webhook_id = $1 AND partition_key = $2 AND lease_token = $3 AND head_sequence = $4
  RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM renewed) AS renewed,
       EXISTS (
         SELECT 1 FROM delivery_lines WHERE webhook_id = $1 AND partition_key = $2
       ) AS line_exists;
END
$fn$`;

/**
 * pgwq_record_attempt($1 webhook, $2 partition key, $3 lease token, $4 status, $5 retry delay s,
 * $6 delivery id, $7 attempt, $8 HTTP status, $9 error, $10 started at, $11 duration ms,
 * $12 response body, $13 keep the line, $14 lease ms, $15 head).
 *
 * Record one attempt's outcome in one statement, fenced by the lease token and the head it
 * was for ($15), and, when asked, keep the line and return its next head in the same round trip.
 *
 * $4 is the delivery's new status: 'delivered' or 'dead' finish the head and move the line to
 * head + 1; 'pending' keeps the head and makes the line due again in $5 seconds (the backoff).
 *
 * "Is there more?" comes from the line row's own tail_sequence, never from a query over
 * deliveries: a producer's trigger holds this row's lock until it commits, so this UPDATE waits
 * for it and then re-reads the row with the new tail. A subquery would have been planned on the
 * older snapshot and could park the line while a new message waits (a lost wakeup). Because it
 * may have waited, a kept lease runs from clock_timestamp().
 *
 * $13 = true (the worker has run fewer than its limit of heads in a row on this line) and a
 * finished head with more behind it: the line stays leased to the same token for a fresh $14 ms
 * and the next head comes back in the claim's columns, so a busy line costs one statement per
 * message instead of a record plus a claim. The head is still the line row's own
 * head_sequence. As with a claim, the row may be a version committed after this statement's
 * snapshot, so the next head's delivery can be missing from the join: the caller then goes the
 * SKIP_MISSING_HEAD way, which re-checks in a fresh snapshot and releases the line if it exists.
 * Otherwise the line is released as before (due now if there is more, idle if not).
 *
 * The delivery update and the attempt insert happen only when the line update matched (they
 * join its one row, through `recorded`), so a worker that lost its lease changes nothing. And a
 * second run of a call that already committed changes nothing either: the head is no longer
 * $15, or the token is gone. The first columns, read in the statement's snapshot (before its own
 * writes), tell the caller why nothing matched:
 * - still_held: our token still holds the line, yet not at head $15, so only our own earlier
 *   run of this call can have moved it (it kept the line and its reply was lost), or that
 *   run was committing while this one started. The caller releases the line, fenced on head
 *   $15 + 1, so the next head is claimed again; if the earlier run released it, that matches
 *   nothing.
 * - recorded_before: this very attempt (same delivery, number and start time) is already
 *   recorded: an earlier run committed and released the line.
 * - line_exists: false when the line went with its webhook.
 * Otherwise another worker took the line over.
 *
 * The webhook's state (DESIGN §7) shapes the line, read from the webhook row in this statement's
 * snapshot (a pause committed a moment later is caught by the claim's filter instead):
 * - on_exhausted = block and the head is dead: the head stays, the line is `blocked` and not due
 *   (next_attempt_at NULL) until a redrive or a skip;
 * - paused or disabled: the attempt is recorded and the line released, not kept. It is not
 *   parked: the status read here may be older than a resume committed meanwhile, and a line
 *   parked on that stale read would never wake. Released lines of a paused webhook are only
 *   those in flight at the pause, which the claim's filter passes over;
 * - a pending rewind (rewind_to: a redrive or replay came while this attempt was in flight):
 *   the line is released due now, not kept, and the next claim applies the rewind. A rewind to
 *   this head or before it leaves this delivery pending (its attempt is recorded all the same),
 *   so the rewound line sends it again in its turn: nothing from the rewind point on is missed.
 * head_created_at follows the head: the next head's publication time, read by its unique key (a
 * next head committed after this statement's snapshot was published just now: now()).
 */
export const RECORD_ATTEMPT = `
CREATE FUNCTION pgwq_record_attempt(
  integer, text, uuid, text, double precision, bigint, integer, integer, text, timestamptz,
  integer, text, boolean, double precision, bigint)
RETURNS TABLE (
  fenced boolean,
  recorded integer,
  still_held boolean,
  recorded_before boolean,
  line_exists boolean,${CLAIMED_LINE_COLUMNS})
LANGUAGE plpgsql AS $fn$
#variable_conflict use_column
BEGIN
RETURN QUERY
WITH hook AS (
  SELECT status = 'active' AS active, on_exhausted = 'block' AS blocks
  FROM webhooks WHERE id = $1
), line AS (
  UPDATE delivery_lines AS l
  SET head_sequence = CASE
        WHEN $4 = 'pending' OR ($4 = 'dead' AND h.blocks)
          OR l.rewind_to <= l.head_sequence THEN l.head_sequence
        ELSE l.head_sequence + 1
      END,
      blocked = $4 = 'dead' AND h.blocks AND coalesce(l.rewind_to > l.head_sequence, true),
      next_attempt_at = CASE
        WHEN $4 = 'dead' AND h.blocks AND coalesce(l.rewind_to > l.head_sequence, true)
          THEN NULL
        WHEN l.rewind_to IS NOT NULL THEN now()
        WHEN $4 = 'pending' THEN now() + make_interval(secs => $5)
        WHEN l.head_sequence + 1 <= l.tail_sequence AND $13
          THEN clock_timestamp() + make_interval(secs => $14 / 1000)
        WHEN l.head_sequence + 1 <= l.tail_sequence THEN now()
        ELSE NULL
      END,
      lease_token = CASE
        WHEN $4 = 'delivered' OR ($4 = 'dead' AND NOT h.blocks) THEN
          CASE
            WHEN l.head_sequence + 1 <= l.tail_sequence AND $13 AND h.active
              AND l.rewind_to IS NULL THEN l.lease_token
          END
      END,
      head_created_at = CASE
        WHEN $4 = 'pending' OR ($4 = 'dead' AND h.blocks) OR l.rewind_to IS NOT NULL
          THEN l.head_created_at
        WHEN l.head_sequence + 1 <= l.tail_sequence THEN coalesce(
          (SELECT d.created_at FROM deliveries d
           WHERE d.webhook_id = $1 AND d.partition_key = $2 AND d.sequence = l.head_sequence + 1),
          now())
      END
  FROM hook AS h
  WHERE l.webhook_id = $1 AND l.partition_key = $2 AND l.lease_token = $3
    AND l.head_sequence = $15
  RETURNING l.webhook_id, l.partition_key, l.topic_id, l.head_sequence, l.lease_token,
            coalesce(l.rewind_to <= $15, false) AS rewound
), recorded AS (
  SELECT CASE WHEN rewound THEN 'pending' ELSE $4 END AS status, rewound FROM line
), delivery AS (
  UPDATE deliveries
  SET status = r.status,
      attempts = $7,
      next_attempt_at = CASE
        WHEN r.rewound THEN now()
        WHEN $4 = 'pending' THEN now() + make_interval(secs => $5)
      END,
      last_status_code = $8,
      last_error = $9,
      delivered_at = CASE WHEN r.status = 'delivered' THEN now() END,
      dead_at = CASE WHEN r.status = 'dead' THEN now() END
  FROM recorded AS r
  WHERE id = $6
  RETURNING id
), attempt AS (
  INSERT INTO delivery_attempts
    (delivery_id, attempt, started_at, duration_ms, status_code, error, response_body)
  SELECT id, $7, $10, $11, $8, $9, $12 FROM delivery
  RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM line) AS fenced,
       (SELECT count(*) FROM attempt)::int AS recorded,
       EXISTS (
         SELECT 1 FROM delivery_lines
         WHERE webhook_id = $1 AND partition_key = $2 AND lease_token = $3
       ) AS still_held,
       EXISTS (
         SELECT 1 FROM delivery_attempts
         WHERE delivery_id = $6 AND attempt = $7 AND started_at = $10
       ) AS recorded_before,
       EXISTS (
         SELECT 1 FROM delivery_lines WHERE webhook_id = $1 AND partition_key = $2
       ) AS line_exists,
       n.*
FROM (SELECT 1) AS one
LEFT JOIN LATERAL (
  ${headOfLines('line')}
  WHERE c.lease_token IS NOT NULL
) AS n ON true;
END
$fn$`;

import { MigrationInterface, QueryRunner } from 'typeorm';
import {
  CLAIMED_LINE_COLUMNS,
  headOfLines,
  pinned,
  RECORD_ATTEMPT,
} from './1795633463950-DeliveryFunctions.js';

/**
 * Group commit of delivery results: pgwq_record_attempts records any number of attempts, of
 * different lines, in one statement and so in one transaction and one WAL flush. It replaces
 * pgwq_record_attempt (one attempt per call), whose rules it keeps row by row.
 *
 * Why: a worker with ten requests in flight finished them one by one and paid, for each, a round
 * trip, a statement and a commit that waits for the disk. The results that come in while one
 * record is on its way are now recorded together by the next (src/delivery/result-recorder.ts),
 * so a busy worker pays those once per batch. No result waits for another: each attempt is
 * recorded as soon as the connection is free, and the line's next head is POSTed only after the
 * commit that recorded this one (DESIGN §3).
 */
export class GroupRecord1795633464000 implements MigrationInterface {
  name = 'GroupRecord1795633464000';

  public async up(queryRunner: QueryRunner): Promise<void> {
    const [{ schema }] = await queryRunner.query(`SELECT quote_ident(current_schema()) AS schema`);
    await queryRunner.query(`DROP FUNCTION pgwq_record_attempt`);
    await queryRunner.query(
      RECORD_ATTEMPTS.replace('LANGUAGE plpgsql', `${pinned(schema)} LANGUAGE plpgsql`),
    );
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    const [{ schema }] = await queryRunner.query(`SELECT quote_ident(current_schema()) AS schema`);
    await queryRunner.query(`DROP FUNCTION pgwq_record_attempts`);
    await queryRunner.query(
      RECORD_ATTEMPT.replace('LANGUAGE plpgsql', `${pinned(schema)} LANGUAGE plpgsql`),
    );
  }
}

/**
 * pgwq_record_attempts($1 webhooks, $2 partition keys, $3 lease tokens, $4 heads, $5 statuses,
 * $6 retry delays s, $7 delivery ids, $8 attempt numbers, $9 HTTP statuses, $10 errors,
 * $11 started at, $12 durations ms, $13 response bodies, $14 keep the line, $15 lease ms).
 *
 * Arrays of one length, an element per attempt, each attempt of a different line; one row comes
 * back per attempt, in their order. Each attempt is recorded exactly as pgwq_record_attempt did
 * (DeliveryFunctions: its comment says why each rule is safe), with its own fence:
 *
 * - The line update matches only a line still leased to the attempt's token at the attempt's
 *   head, so a worker that lost a lease changes nothing on that line, and a second run of a call
 *   that already committed (its reply lost) changes nothing at all. The delivery update and the
 *   attempt row join the line update's rows, so they follow the same fence.
 * - $5 is the delivery's new status: 'delivered' or 'dead' move the line to head + 1, 'pending'
 *   keeps the head, due again in $6 seconds; a blocking webhook keeps a dead head and blocks the
 *   line; a paused or disabled webhook, or a pending rewind, gets the line released, not kept.
 * - "Is there more?" is the line row's own tail_sequence: a producer holds the row's lock until
 *   it commits, the update waits for it and re-reads the row (no lost wakeup). A kept lease runs
 *   from clock_timestamp() for that reason.
 * - $14 and more behind the head: the line stays leased to the same token and its next head
 *   comes back in the claim's columns (null where the next head is not visible yet: the caller
 *   then goes the SKIP_MISSING_HEAD way).
 *
 * New here: the lines are locked first, in (webhook_id, partition_key) order, which is the order
 * in which the fan-out trigger's upsert locks them. A batch holds several line locks at once
 * (one record held one), and a producer whose statement touches several of the same lines would
 * otherwise be able to deadlock with it. (PostgreSQL would end one of the two after
 * deadlock_timeout; the worker would retry, but a second spent.) The update then re-reads each
 * locked row as committed, as before.
 *
 * plan_cache_mode = force_generic_plan: PL/pgSQL plans the statement once per session, unless a
 * plan made for the actual arrays (whose length it knows) looks cheaper than the generic one
 * (which assumes 10 elements): then it plans again on every call. That is what it did here, and
 * planning this statement costs more than running it: a worker's batches took 2.5 times as long
 * (5 ms against 2 ms for 2–3 results, PostgreSQL 15). The generic plan finds every row by its
 * key (primary keys and deliveries_line_sequence_key) once the tables hold more than a few
 * hundred rows, and scans a table smaller than that.
 *
 * still_held, recorded_before and line_exists, read in the statement's snapshot, say why an
 * attempt's fence failed (see pgwq_record_attempt); they are computed only for such an attempt.
 */
const RECORD_ATTEMPTS = `
CREATE FUNCTION pgwq_record_attempts(
  integer[], text[], uuid[], bigint[], text[], double precision[], bigint[], integer[],
  integer[], text[], timestamptz[], integer[], text[], boolean[], double precision)
RETURNS TABLE (
  fenced boolean,
  still_held boolean,
  recorded_before boolean,
  line_exists boolean,${CLAIMED_LINE_COLUMNS})
SET plan_cache_mode = force_generic_plan
LANGUAGE plpgsql AS $fn$
#variable_conflict use_column
BEGIN
RETURN QUERY
WITH input AS (
  SELECT *
  FROM unnest($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) WITH ORDINALITY
    AS i (webhook_id, partition_key, lease_token, head, outcome, delay, delivery_id, attempt,
          status_code, error, started_at, duration_ms, response_body, keep, nth)
), locked AS (
  SELECT l.webhook_id, l.partition_key
  FROM delivery_lines AS l
  JOIN input AS i
    ON l.webhook_id = i.webhook_id AND l.partition_key = i.partition_key
   AND l.lease_token = i.lease_token AND l.head_sequence = i.head
  ORDER BY l.webhook_id, l.partition_key
  FOR NO KEY UPDATE OF l
), line AS (
  UPDATE delivery_lines AS l
  SET head_sequence = CASE
        WHEN i.outcome = 'pending' OR (i.outcome = 'dead' AND h.on_exhausted = 'block')
          OR l.rewind_to <= l.head_sequence THEN l.head_sequence
        ELSE l.head_sequence + 1
      END,
      blocked = i.outcome = 'dead' AND h.on_exhausted = 'block'
        AND coalesce(l.rewind_to > l.head_sequence, true),
      next_attempt_at = CASE
        WHEN i.outcome = 'dead' AND h.on_exhausted = 'block'
          AND coalesce(l.rewind_to > l.head_sequence, true) THEN NULL
        WHEN l.rewind_to IS NOT NULL THEN now()
        WHEN i.outcome = 'pending' THEN now() + make_interval(secs => i.delay)
        WHEN l.head_sequence + 1 <= l.tail_sequence AND i.keep
          THEN clock_timestamp() + make_interval(secs => $15 / 1000)
        WHEN l.head_sequence + 1 <= l.tail_sequence THEN now()
        ELSE NULL
      END,
      lease_token = CASE
        WHEN i.outcome = 'delivered' OR (i.outcome = 'dead' AND h.on_exhausted <> 'block') THEN
          CASE
            WHEN l.head_sequence + 1 <= l.tail_sequence AND i.keep AND h.status = 'active'
              AND l.rewind_to IS NULL THEN l.lease_token
          END
      END,
      head_created_at = CASE
        WHEN i.outcome = 'pending' OR (i.outcome = 'dead' AND h.on_exhausted = 'block')
          OR l.rewind_to IS NOT NULL THEN l.head_created_at
        WHEN l.head_sequence + 1 <= l.tail_sequence THEN coalesce(
          (SELECT d.created_at FROM deliveries d
           WHERE d.webhook_id = l.webhook_id AND d.partition_key = l.partition_key
             AND d.sequence = l.head_sequence + 1),
          now())
      END
  FROM locked AS k
  JOIN input AS i ON i.webhook_id = k.webhook_id AND i.partition_key = k.partition_key
  JOIN webhooks AS h ON h.id = i.webhook_id
  WHERE l.webhook_id = k.webhook_id AND l.partition_key = k.partition_key
    AND l.lease_token = i.lease_token AND l.head_sequence = i.head
  RETURNING i.nth, l.webhook_id, l.partition_key, l.topic_id, l.head_sequence, l.lease_token,
            coalesce(l.rewind_to <= i.head, false) AS rewound
), recorded AS (
  SELECT i.*, CASE WHEN line.rewound THEN 'pending' ELSE i.outcome END AS status, line.rewound
  FROM line JOIN input AS i ON i.nth = line.nth
), delivery AS (
  UPDATE deliveries AS d
  SET status = r.status,
      attempts = r.attempt,
      next_attempt_at = CASE
        WHEN r.rewound THEN now()
        WHEN r.outcome = 'pending' THEN now() + make_interval(secs => r.delay)
      END,
      last_status_code = r.status_code,
      last_error = r.error,
      delivered_at = CASE WHEN r.status = 'delivered' THEN now() END,
      dead_at = CASE WHEN r.status = 'dead' THEN now() END
  FROM recorded AS r
  WHERE d.id = r.delivery_id
  RETURNING d.id
), attempt AS (
  INSERT INTO delivery_attempts
    (delivery_id, attempt, started_at, duration_ms, status_code, error, response_body)
  SELECT r.delivery_id, r.attempt, r.started_at, r.duration_ms, r.status_code, r.error,
         r.response_body
  FROM recorded AS r JOIN delivery AS d ON d.id = r.delivery_id
)
SELECT line.nth IS NOT NULL AS fenced,
       CASE WHEN line.nth IS NULL THEN EXISTS (
         SELECT 1 FROM delivery_lines x
         WHERE x.webhook_id = i.webhook_id AND x.partition_key = i.partition_key
           AND x.lease_token = i.lease_token
       ) END AS still_held,
       CASE WHEN line.nth IS NULL THEN EXISTS (
         SELECT 1 FROM delivery_attempts a
         WHERE a.delivery_id = i.delivery_id AND a.attempt = i.attempt
           AND a.started_at = i.started_at
       ) END AS recorded_before,
       CASE WHEN line.nth IS NULL THEN EXISTS (
         SELECT 1 FROM delivery_lines x
         WHERE x.webhook_id = i.webhook_id AND x.partition_key = i.partition_key
       ) END AS line_exists,
       n.*
FROM input AS i
LEFT JOIN line ON line.nth = i.nth
LEFT JOIN LATERAL (
  ${headOfLines('line')}
  WHERE c.lease_token IS NOT NULL AND c.nth = i.nth
) AS n ON true
ORDER BY i.nth;
END
$fn$`;

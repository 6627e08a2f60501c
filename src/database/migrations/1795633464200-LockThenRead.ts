import { MigrationInterface, QueryRunner } from 'typeorm';
import { CLAIMED_LINE_COLUMNS, headOfLines, pinned } from './1795633463950-DeliveryFunctions.js';
import { RECORD_ATTEMPTS as GROUP_RECORD_ATTEMPTS } from './1795633464000-GroupRecord.js';

/**
 * The record locks each line first and only then reads what it decides from (DESIGN §3's
 * snapshot trap, §7 "Operator actions race with everything else"), and a record of several lines
 * never waits on one of them.
 *
 * pgwq_record_attempts gets a 16th parameter, `wait`, and two result columns, `busy` and
 * `webhook_failing`; its arguments and rows are otherwise those of GroupRecord's version.
 *
 * Before, one statement per attempt took its snapshot, then waited for the line's row lock (a
 * producer's open transaction holds it until commit). What it read from other rows (the webhook's
 * status, whether a rewind came) was as old as that wait was long: a pause committed during the
 * wait did not stop the line being kept and its next head POSTed. And a call recording several
 * lines waited on each in turn while holding the others: one producer's open transaction held up
 * every line of the worker's batch (and the batch after it), and a producer that locked two of
 * those lines in the opposite order deadlocked with it.
 */
export class LockThenRead1795633464200 implements MigrationInterface {
  name = 'LockThenRead1795633464200';

  public async up(queryRunner: QueryRunner): Promise<void> {
    const [{ schema }] = await queryRunner.query(`SELECT quote_ident(current_schema()) AS schema`);
    await queryRunner.query(`DROP FUNCTION pgwq_record_attempts`);
    await queryRunner.query(
      RECORD_ATTEMPTS.replace('LANGUAGE plpgsql', `${pinned(schema)} LANGUAGE plpgsql`),
    );
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    const [{ schema }] = await queryRunner.query(`SELECT quote_ident(current_schema()) AS schema`);
    await queryRunner.query(`DROP FUNCTION pgwq_record_attempts`);
    await queryRunner.query(
      GROUP_RECORD_ATTEMPTS.replace('LANGUAGE plpgsql', `${pinned(schema)} LANGUAGE plpgsql`),
    );
  }
}

/** A busy attempt's row: its place, busy, and nothing else. */
const BUSY_ROW = `req.nth::integer, true, NULL::boolean, NULL::integer, NULL::boolean,
    NULL::boolean, NULL::boolean, NULL::boolean, NULL::integer, NULL::text, NULL::text,
    NULL::uuid, NULL::text, NULL::text, NULL::integer, NULL::text, NULL::text, NULL::text,
    NULL::text, NULL::text, NULL::boolean`;

/**
 * pgwq_record_attempts($1 webhooks, $2 partition keys, $3 lease tokens, $4 heads, $5 statuses,
 * $6 retry delays s, $7 delivery ids, $8 attempt numbers, $9 HTTP statuses, $10 errors,
 * $11 started at, $12 durations ms, $13 response bodies, $14 keep the line, $15 lease ms,
 * $16 wait for a busy line).
 *
 * Arrays of one length, an element per attempt, each of a different line, taken in (webhook_id,
 * partition_key) order. For each attempt, two statements:
 *
 * 1. Lock the line row. With several attempts, or $16 false, SKIP LOCKED: a line whose row lock
 *    is held (a producer's open transaction, an operator's batch) is not waited for. Its attempt
 *    comes back `busy` with nothing written, and the caller records it again on its own with $16
 *    true. So the call never waits for a lock while holding another line's: it cannot deadlock
 *    with a producer that locks the same lines in any order, and one producer's transaction holds
 *    up only its own line, never the other lines of the batch. With one attempt and $16 true it
 *    waits: it holds no other line, so it cannot be part of a deadlock either.
 * 2. The attempt's statement (below), in a snapshot taken after the lock (a VOLATILE function
 *    takes one per statement). Everything it decides from is read now: the line's tail and
 *    rewind, the webhook's status and on_exhausted, the next head's delivery. A pause committed
 *    while the lock was awaited is seen, and the line is not kept.
 *
 * `webhook_failing` (fenced attempts only): the webhook has a run of failures, as this statement
 * reads it. The worker ends the run on a success when it is set, whatever its claim read: the
 * claim may have been taken before another line's failure started the run.
 *
 * The rest is the attempt's statement of pgwq_record_attempt (DeliveryFunctions, whose comment
 * says why each rule is safe and why a second run of a committed call changes nothing), with
 * three changes:
 * - a line kept by an earlier head on a webhook no longer active is released due now, not one
 *   lease ahead: the claim's filter passes over it while paused, and a resume is not made to wait
 *   for the lease it no longer has;
 * - a rewound head (a replay or redrive that came while it was in flight) starts again with a
 *   fresh retry budget (attempts 0), as every other rewound delivery does;
 * - a failed head whose line has a rewind to a later sequence waits out its backoff: that rewind
 *   does not send the line back past this head, so nothing is due sooner.
 */
const RECORD_ATTEMPTS = `
CREATE FUNCTION pgwq_record_attempts(
  integer[], text[], uuid[], bigint[], text[], double precision[], bigint[], integer[],
  integer[], text[], timestamptz[], integer[], text[], boolean[], double precision, boolean)
RETURNS TABLE (
  nth integer,
  busy boolean,
  fenced boolean,
  recorded integer,
  still_held boolean,
  recorded_before boolean,
  line_exists boolean,
  webhook_failing boolean,${CLAIMED_LINE_COLUMNS})
LANGUAGE plpgsql AS $fn$
#variable_conflict use_column
DECLARE
  req record;
BEGIN
FOR req IN
  SELECT *
  FROM unnest($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) WITH ORDINALITY
    AS i (webhook_id, partition_key, lease_token, head, outcome, delay, delivery_id, attempt,
          status_code, error, started_at, duration_ms, response_body, keep, nth)
  ORDER BY i.webhook_id, i.partition_key
LOOP
  IF $16 AND cardinality($1) = 1 THEN
    PERFORM 1 FROM delivery_lines
    WHERE webhook_id = req.webhook_id AND partition_key = req.partition_key
    FOR NO KEY UPDATE;
  ELSE
    PERFORM 1 FROM delivery_lines
    WHERE webhook_id = req.webhook_id AND partition_key = req.partition_key
    FOR NO KEY UPDATE SKIP LOCKED;
    -- Not locked and yet there: someone holds it. (Not there: the statement says line_exists.)
    IF NOT FOUND AND EXISTS (
      SELECT 1 FROM delivery_lines
      WHERE webhook_id = req.webhook_id AND partition_key = req.partition_key
    ) THEN
      RETURN QUERY SELECT ${BUSY_ROW};
      CONTINUE;
    END IF;
  END IF;
  RETURN QUERY
  WITH hook AS (
    SELECT status = 'active' AS active, on_exhausted = 'block' AS blocks,
           failing_since IS NOT NULL AS failing
    FROM webhooks WHERE id = req.webhook_id
  ), line AS (
    UPDATE delivery_lines AS l
    SET head_sequence = CASE
          WHEN req.outcome = 'pending' OR (req.outcome = 'dead' AND h.blocks)
            OR l.rewind_to <= l.head_sequence THEN l.head_sequence
          ELSE l.head_sequence + 1
        END,
        blocked = req.outcome = 'dead' AND h.blocks
          AND coalesce(l.rewind_to > l.head_sequence, true),
        next_attempt_at = CASE
          WHEN req.outcome = 'dead' AND h.blocks AND coalesce(l.rewind_to > l.head_sequence, true)
            THEN NULL
          WHEN l.rewind_to <= l.head_sequence THEN now()
          WHEN req.outcome = 'pending' THEN now() + make_interval(secs => req.delay)
          WHEN l.rewind_to IS NOT NULL THEN now()
          WHEN l.head_sequence + 1 <= l.tail_sequence AND req.keep AND h.active
            THEN clock_timestamp() + make_interval(secs => $15 / 1000)
          WHEN l.head_sequence + 1 <= l.tail_sequence THEN now()
          ELSE NULL
        END,
        lease_token = CASE
          WHEN req.outcome = 'delivered' OR (req.outcome = 'dead' AND NOT h.blocks) THEN
            CASE
              WHEN l.head_sequence + 1 <= l.tail_sequence AND req.keep AND h.active
                AND l.rewind_to IS NULL THEN l.lease_token
            END
        END,
        head_created_at = CASE
          WHEN req.outcome = 'pending' OR (req.outcome = 'dead' AND h.blocks)
            OR l.rewind_to IS NOT NULL
            THEN l.head_created_at
          WHEN l.head_sequence + 1 <= l.tail_sequence THEN coalesce(
            (SELECT d.created_at FROM deliveries d
             WHERE d.webhook_id = req.webhook_id AND d.partition_key = req.partition_key
               AND d.sequence = l.head_sequence + 1),
            now())
        END
    FROM hook AS h
    WHERE l.webhook_id = req.webhook_id AND l.partition_key = req.partition_key
      AND l.lease_token = req.lease_token AND l.head_sequence = req.head
    RETURNING l.webhook_id, l.partition_key, l.topic_id, l.head_sequence, l.lease_token,
              coalesce(l.rewind_to <= req.head, false) AS rewound
  ), recorded AS (
    SELECT CASE WHEN rewound THEN 'pending' ELSE req.outcome END AS status, rewound FROM line
  ), delivery AS (
    UPDATE deliveries
    SET status = r.status,
        attempts = CASE WHEN r.rewound THEN 0 ELSE req.attempt END,
        next_attempt_at = CASE
          WHEN r.rewound THEN now()
          WHEN req.outcome = 'pending' THEN now() + make_interval(secs => req.delay)
        END,
        last_status_code = req.status_code,
        last_error = req.error,
        delivered_at = CASE WHEN r.status = 'delivered' THEN now() END,
        dead_at = CASE WHEN r.status = 'dead' THEN now() END
    FROM recorded AS r
    WHERE id = req.delivery_id
    RETURNING id
  ), attempt AS (
    INSERT INTO delivery_attempts
      (delivery_id, attempt, started_at, duration_ms, status_code, error, response_body)
    SELECT id, req.attempt, req.started_at, req.duration_ms, req.status_code, req.error,
           req.response_body
    FROM delivery
    RETURNING 1
  )
  SELECT req.nth::integer,
         false,
         EXISTS (SELECT 1 FROM line) AS fenced,
         (SELECT count(*) FROM attempt)::int AS recorded,
         CASE WHEN NOT EXISTS (SELECT 1 FROM line) THEN EXISTS (
           SELECT 1 FROM delivery_lines
           WHERE webhook_id = req.webhook_id AND partition_key = req.partition_key
             AND lease_token = req.lease_token
         ) END AS still_held,
         CASE WHEN NOT EXISTS (SELECT 1 FROM line) THEN EXISTS (
           SELECT 1 FROM delivery_attempts
           WHERE delivery_id = req.delivery_id AND attempt = req.attempt
             AND started_at = req.started_at
         ) END AS recorded_before,
         CASE WHEN NOT EXISTS (SELECT 1 FROM line) THEN EXISTS (
           SELECT 1 FROM delivery_lines
           WHERE webhook_id = req.webhook_id AND partition_key = req.partition_key
         ) END AS line_exists,
         CASE WHEN EXISTS (SELECT 1 FROM line) THEN (SELECT failing FROM hook) END,
         n.*
  FROM (SELECT 1) AS one
  LEFT JOIN LATERAL (
    ${headOfLines('line')}
    WHERE c.lease_token IS NOT NULL
  ) AS n ON true;
END LOOP;
END
$fn$`;

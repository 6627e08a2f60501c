import { MigrationInterface, QueryRunner } from 'typeorm';
import { CLAIMED_LINE_COLUMNS, pinned, RECORD_ATTEMPT } from './1795633463950-DeliveryFunctions.js';

/**
 * Group commit of delivery results: pgwq_record_attempts records any number of attempts, of
 * different lines, in one call and so in one transaction and one WAL flush. It replaces
 * pgwq_record_attempt (one attempt per call), and runs that function's statement once per
 * attempt.
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
 * Arrays of one length, an element per attempt, each attempt of a different line. For each
 * attempt it runs pgwq_record_attempt's statement (DeliveryFunctions, whose comment says why
 * each of its rules is safe) with that attempt's values, and returns its row with `nth`, the
 * attempt's place in the arrays (from 1). Nothing about one attempt changes:
 *
 * - its own fence: the line must still be leased to its token at its head, or nothing of it is
 *   written, so a lost lease or a second run of a call that already committed (its reply lost)
 *   changes nothing, and still_held / recorded_before / line_exists say why;
 * - its own statement and so its own snapshot, as when each attempt was a call of its own: the
 *   line row's tail_sequence, read after waiting for a producer's lock, says if there is more.
 *
 * What is new is that they share a transaction. So the attempts run in (webhook_id,
 * partition_key) order, the order in which the fan-out trigger's upsert locks lines: a call
 * holds each line's lock until it commits, and a producer whose statement touches several of
 * the same lines could otherwise deadlock with it (PostgreSQL would end one of the two after
 * deadlock_timeout). Rows come back in that order too; `nth` maps them to the attempts.
 *
 * Why one statement per attempt rather than one set-based statement for all: measured both. The
 * set-based one costs less per attempt in large batches, but its plan (a dozen joins and CTE
 * scans) costs more to start than this statement costs to run, and a busy partition records one
 * attempt at a time: on one key it cost PostgreSQL 1,110 µs of CPU per message against 730 µs
 * with this (PostgreSQL 15, 2,000 messages, the worker's own batches).
 */
export const RECORD_ATTEMPTS = `
CREATE FUNCTION pgwq_record_attempts(
  integer[], text[], uuid[], bigint[], text[], double precision[], bigint[], integer[],
  integer[], text[], timestamptz[], integer[], text[], boolean[], double precision)
RETURNS TABLE (
  nth integer,
  fenced boolean,
  recorded integer,
  still_held boolean,
  recorded_before boolean,
  line_exists boolean,${CLAIMED_LINE_COLUMNS})
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
  RETURN QUERY ${recordAttemptStatement()};
END LOOP;
END
$fn$`;

/**
 * pgwq_record_attempt's statement with the loop's values in place of its parameters ($1 … $15:
 * webhook, partition key, lease token, status, retry delay, delivery id, attempt, HTTP status,
 * error, started at, duration, response body, keep, lease ms, head), the attempt's `nth` as its
 * first column, and still_held, recorded_before and line_exists looked up only for an attempt
 * whose fence failed (null otherwise): three index probes that every other attempt paid for,
 * about a sixth of the statement's time.
 */
function recordAttemptStatement(): string {
  const statement = RECORD_ATTEMPT.slice(
    RECORD_ATTEMPT.indexOf('RETURN QUERY') + 'RETURN QUERY'.length,
    RECORD_ATTEMPT.lastIndexOf(';\nEND'),
  );
  const values = [
    'req.webhook_id',
    'req.partition_key',
    'req.lease_token',
    'req.outcome',
    'req.delay',
    'req.delivery_id',
    'req.attempt',
    'req.status_code',
    'req.error',
    'req.started_at',
    'req.duration_ms',
    'req.response_body',
    'req.keep',
    '$15',
    'req.head',
  ];
  const FIRST_COLUMN = 'SELECT EXISTS (SELECT 1 FROM line) AS fenced,';
  const WHY_NOT_FENCED = /EXISTS \(([^()]*)\) AS (still_held|recorded_before|line_exists)/g;
  if (!statement.includes(FIRST_COLUMN) || statement.match(WHY_NOT_FENCED)?.length !== 3) {
    throw new Error('pgwq_record_attempt has changed');
  }
  return statement
    .replace(FIRST_COLUMN, `SELECT req.nth::integer, EXISTS (SELECT 1 FROM line) AS fenced,`)
    .replace(WHY_NOT_FENCED, 'CASE WHEN NOT EXISTS (SELECT 1 FROM line) THEN EXISTS ($1) END AS $2')
    .replace(/\$(\d+)\b/g, (_, n: string) => values[Number(n) - 1]);
}

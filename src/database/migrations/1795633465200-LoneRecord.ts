import { MigrationInterface, QueryRunner } from 'typeorm';
import {
  headOfKeptLines,
  replaceFunction,
  setBasedRecordAttempts,
} from './1795633464800-SetBasedRecord.js';

/**
 * pgwq_record_attempts records a lone delivered result (a hot partition's, one message after
 * another) in a statement of its own, smaller than the loop's.
 *
 * The loop's statement handles every outcome, rewinds, blocking dead letters, throttling and the
 * diagnostics of a result no longer fenced; a plan that large costs its executor start-up on
 * every call, whatever the outcome. The common lone result is a 2xx on a line with no rewind
 * pending, while no webhook has limits: this path locks the line as the loop does (waiting when
 * $16, else SKIP LOCKED), then, in a statement of its own and so in a snapshot taken after the
 * lock (LockThenRead), writes the line, the delivery and the attempt and reads the kept line's
 * next head by the id next_up found it by (as the set-based path does). Its rules are the loop's
 * for that case, column for column.
 *
 * Anything else falls through to the loop, which decides as before, having written nothing yet:
 * the line not locked (busy, or gone), not fenced (a stale token, a head moved on) or a rewind
 * pending (the statement's WHERE leaves the line alone, so the loop does the rewind and says why).
 *
 * Under callgrind (PostgreSQL 15, bench/results/record-evidence.txt) a lone delivered result
 * costs 1.83 million instructions instead of 2.14 million, sent as the worker sends it.
 */
export class LoneRecord1795633465200 implements MigrationInterface {
  name = 'LoneRecord1795633465200';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await replaceFunction(queryRunner, loneRecordAttempts());
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await replaceFunction(queryRunner, setBasedRecordAttempts());
  }
}

/** The request's fields, as the loop names them (req.*), here the arrays' only elements. */
const LONE = {
  webhookId: '$1[1]',
  partitionKey: '$2[1]',
  leaseToken: '$3[1]',
  head: '$4[1]',
  deliveryId: '$7[1]',
  attempt: '$8[1]',
  statusCode: '$9[1]',
  error: '$10[1]',
  startedAt: '$11[1]',
  durationMs: '$12[1]',
  responseBody: '$13[1]',
  keep: '$14[1]',
};

/** The loop's "is there a next head to keep the line for?", with no rewind pending. */
const HAS_NEXT = `nx.sequence <= l.tail_sequence`;
const KEPT = `${HAS_NEXT} AND ${LONE.keep} AND h.status = 'active'`;

const LONE_DELIVERED = `
-- The lone delivered result (see the migration LoneRecord); anything else goes on to the loop.
IF cardinality($1) = 1 AND $5[1] = 'delivered' AND NOT limits_exist THEN
  IF $16 THEN
    PERFORM 1 FROM delivery_lines
    WHERE webhook_id = ${LONE.webhookId} AND partition_key = ${LONE.partitionKey}
    FOR NO KEY UPDATE;
  ELSE
    PERFORM 1 FROM delivery_lines
    WHERE webhook_id = ${LONE.webhookId} AND partition_key = ${LONE.partitionKey}
    FOR NO KEY UPDATE SKIP LOCKED;
  END IF;
  IF FOUND THEN
    RETURN QUERY
    WITH nx AS (
      -- The line's next pending delivery after the head (EventRouting: not head + 1).
      SELECT d.id, d.sequence, d.created_at FROM deliveries d
      WHERE d.webhook_id = ${LONE.webhookId} AND d.partition_key = ${LONE.partitionKey}
        AND d.sequence > ${LONE.head} AND d.status = 'pending'
      ORDER BY d.sequence
      LIMIT 1
    ), line AS (
      UPDATE delivery_lines AS l
      SET head_sequence = coalesce(nx.sequence, l.tail_sequence + 1),
          blocked = false,
          next_attempt_at = CASE
            WHEN ${KEPT} THEN clock_timestamp() + make_interval(secs => $15 / 1000)
            WHEN ${HAS_NEXT} THEN now()
          END,
          lease_token = CASE WHEN ${KEPT} THEN l.lease_token END,
          head_created_at = CASE WHEN ${HAS_NEXT} THEN coalesce(nx.created_at, now()) END
      FROM webhooks AS h
      LEFT JOIN nx ON true
      WHERE h.id = ${LONE.webhookId}
        AND l.webhook_id = ${LONE.webhookId} AND l.partition_key = ${LONE.partitionKey}
        AND l.lease_token = ${LONE.leaseToken} AND l.head_sequence = ${LONE.head}
        AND l.rewind_to IS NULL
      RETURNING l.webhook_id, l.partition_key, l.topic_id, l.head_sequence, l.lease_token,
                h.failing_since IS NOT NULL AS failing, nx.id AS next_delivery_id
    ), delivery AS (
      UPDATE deliveries AS d
      SET status = 'delivered',
          attempts = ${LONE.attempt},
          throttled_since = NULL,
          next_attempt_at = NULL,
          last_status_code = ${LONE.statusCode},
          last_error = ${LONE.error},
          delivered_at = now(),
          dead_at = NULL
      FROM line
      WHERE d.id = ${LONE.deliveryId}
      RETURNING d.id
    ), attempt AS (
      INSERT INTO delivery_attempts
        (delivery_id, attempt, started_at, duration_ms, status_code, error, response_body)
      SELECT id, ${LONE.attempt}, ${LONE.startedAt}, ${LONE.durationMs}, ${LONE.statusCode},
             ${LONE.error}, ${LONE.responseBody}
      FROM delivery
      RETURNING 1
    ), head AS (
${headOfKeptLines()}
      WHERE c.lease_token IS NOT NULL
    )
    SELECT 1, false, true, (SELECT count(*) FROM attempt)::int,
           NULL::boolean, NULL::boolean, NULL::boolean, c.failing, n.*
    FROM line AS c
    LEFT JOIN head AS n ON true;
    IF FOUND THEN
      RETURN;
    END IF;
  END IF;
END IF;
`;

/** SetBasedRecord's function with the lone delivered path between the set-based one and the loop. */
export function loneRecordAttempts(): string {
  const base = setBasedRecordAttempts();
  const loop = `END IF;\nFOR req IN`;
  if (base.split(loop).length !== 2) throw new Error(`pgwq_record_attempts has changed: ${loop}`);
  return base.replace(loop, () => `END IF;${LONE_DELIVERED}FOR req IN`);
}

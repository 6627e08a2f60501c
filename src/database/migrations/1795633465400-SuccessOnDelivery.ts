import { MigrationInterface, QueryRunner } from 'typeorm';
import { pinned } from './1795633463950-DeliveryFunctions.js';
import { loneRecordAttempts } from './1795633465200-LoneRecord.js';
import { replaceFunction } from './1795633464800-SetBasedRecord.js';

/**
 * A delivered delivery keeps its successful attempt on its own row, so the common record writes
 * two rows (the line and the delivery), not three.
 *
 * - deliveries gets delivered_attempt_id, delivered_started_at, delivered_duration_ms and
 *   delivered_response_body; the attempt's number, status code and error are the row's attempts,
 *   last_status_code and last_error. Its id comes from the attempts' own sequence, so attempts
 *   still sort by id in the order they were made.
 * - The attempts table becomes logged_attempts: every other attempt (failures, throttling
 *   answers, a 2xx recorded after a rewind) and the attempts existing before this migration.
 * - delivery_attempts is now a view of both: everything that read attempts reads it as before.
 * - When a delivered delivery becomes something else (an operator's replay, a line's rewind),
 *   a trigger moves its successful attempt into logged_attempts with its id, so no attempt
 *   disappears from its history and the next success has a free place on the row.
 * - delivery_attempts_succeeded_idx goes: retention finds old delivered deliveries by walking
 *   deliveries in id order (src/maintenance/retention.ts).
 * - fillfactor 75 on deliveries (was 85, HotRecords): a delivered row is now about a fifth longer
 *   than the pending row it replaces (140 bytes against 108 with a short partition key, 172 against
 *   140 with a UUID), and a page filled to 85 % had no room for all its rows' delivered versions, so
 *   about one update in ten left the page and wrote its index entries. At 75 % they stay
 *   heap-only. It applies to pages filled from now on.
 *
 * Recording one delivered message, alone, on one line: the bench's floor statement, which keeps
 * the attempt the same way, costs 11 % fewer instructions (683,000 to 608,000 under callgrind,
 * PostgreSQL 18) and ours 5 % fewer (1,737,000 to 1,652,000); WAL per record went from 1,045 to
 * 770 bytes and from 1,081 to 810 (node bench/record-cost.mjs, PostgreSQL 15;
 * bench/results/record-evidence.txt).
 */
export class SuccessOnDelivery1795633465400 implements MigrationInterface {
  name = 'SuccessOnDelivery1795633465400';

  public async up(queryRunner: QueryRunner): Promise<void> {
    const [{ schema }] = await queryRunner.query(`SELECT quote_ident(current_schema()) AS schema`);
    for (const statement of [
      ...renameAttemptsTable('delivery_attempts', 'logged_attempts'),
      `DROP INDEX delivery_attempts_succeeded_idx`,
      `ALTER TABLE deliveries
         ADD COLUMN delivered_attempt_id bigint,
         ADD COLUMN delivered_started_at timestamptz,
         ADD COLUMN delivered_duration_ms integer,
         ADD COLUMN delivered_response_body text`,
      `ALTER TABLE deliveries SET (fillfactor = 75)`,
      ATTEMPTS_VIEW,
      LOG_DELIVERED_ATTEMPT.replace('LANGUAGE', `${pinned(schema)} LANGUAGE`),
      LOG_DELIVERED_ATTEMPT_TRIGGER,
    ]) {
      await queryRunner.query(statement);
    }
    await replaceFunction(queryRunner, successOnDeliveryRecordAttempts());
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    for (const statement of [
      `DROP TRIGGER deliveries_log_delivered_attempt ON deliveries`,
      `DROP FUNCTION pgwq_log_delivered_attempt()`,
      `DROP VIEW delivery_attempts`,
      // The successful attempts kept on their rows go back to the attempts table.
      `INSERT INTO logged_attempts (${ATTEMPT_COLUMNS}) ${KEPT_SUCCESSES}`,
      `ALTER TABLE deliveries
         DROP COLUMN delivered_attempt_id,
         DROP COLUMN delivered_started_at,
         DROP COLUMN delivered_duration_ms,
         DROP COLUMN delivered_response_body`,
      `ALTER TABLE deliveries SET (fillfactor = 85)`,
      ...renameAttemptsTable('logged_attempts', 'delivery_attempts'),
      `CREATE INDEX delivery_attempts_succeeded_idx ON delivery_attempts (started_at)
         WHERE status_code BETWEEN 200 AND 299`,
    ]) {
      await queryRunner.query(statement);
    }
    await replaceFunction(queryRunner, loneRecordAttempts());
  }
}

/**
 * The attempts table with its sequence, keys and index renamed from `from` to `to` (each is
 * named after the table).
 */
const renameAttemptsTable = (from: string, to: string) => [
  `ALTER TABLE ${from} RENAME TO ${to}`,
  `ALTER SEQUENCE ${from}_id_seq RENAME TO ${to}_id_seq`,
  `ALTER TABLE ${to} RENAME CONSTRAINT ${from}_pkey TO ${to}_pkey`,
  `ALTER TABLE ${to} RENAME CONSTRAINT ${from}_delivery_id_fkey TO ${to}_delivery_id_fkey`,
  `ALTER INDEX ${from}_delivery_id_idx RENAME TO ${to}_delivery_id_idx`,
];

/** An attempt's columns, in logged_attempts and in the view delivery_attempts. */
const ATTEMPT_COLUMNS =
  'id, delivery_id, attempt, started_at, duration_ms, status_code, error, response_body';

/** The successful attempts kept on their deliveries, as ATTEMPT_COLUMNS. */
const KEPT_SUCCESSES = `
SELECT delivered_attempt_id, id, attempts, delivered_started_at, delivered_duration_ms,
       last_status_code, last_error, delivered_response_body
FROM deliveries
WHERE delivered_attempt_id IS NOT NULL`;

/** Every attempt: those logged as rows of their own, and the successes kept on their deliveries. */
const ATTEMPTS_VIEW = `
CREATE VIEW delivery_attempts AS
SELECT ${ATTEMPT_COLUMNS}
FROM logged_attempts
UNION ALL${KEPT_SUCCESSES}`;

/** A delivered delivery made pending again (replay, rewind): its success becomes a logged attempt. */
const LOG_DELIVERED_ATTEMPT = `
CREATE FUNCTION pgwq_log_delivered_attempt() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO logged_attempts
    (id, delivery_id, attempt, started_at, duration_ms, status_code, error, response_body)
  VALUES (OLD.delivered_attempt_id, OLD.id, OLD.attempts, OLD.delivered_started_at,
          OLD.delivered_duration_ms, OLD.last_status_code, OLD.last_error,
          OLD.delivered_response_body);
  NEW.delivered_attempt_id := NULL;
  NEW.delivered_started_at := NULL;
  NEW.delivered_duration_ms := NULL;
  NEW.delivered_response_body := NULL;
  RETURN NEW;
END;
$$`;

const LOG_DELIVERED_ATTEMPT_TRIGGER = `
CREATE TRIGGER deliveries_log_delivered_attempt
  BEFORE UPDATE OF status ON deliveries
  FOR EACH ROW
  WHEN (OLD.delivered_attempt_id IS NOT NULL AND NEW.status IS DISTINCT FROM 'delivered')
  EXECUTE FUNCTION pgwq_log_delivered_attempt()`;

/** The successful attempt's columns on the delivery, set when `delivered` (SQL) is true. */
const successOnRow = (delivered: string, req: string) => `,
        delivered_attempt_id = CASE WHEN ${delivered} THEN nextval('logged_attempts_id_seq') END,
        delivered_started_at = CASE WHEN ${delivered} THEN ${req}.started_at END,
        delivered_duration_ms = CASE WHEN ${delivered} THEN ${req}.duration_ms END,
        delivered_response_body = CASE WHEN ${delivered} THEN ${req}.response_body END`;

/** Replaces `from` by `to` in `text`, which must hold it exactly once. */
function once(text: string, from: string, to: string): string {
  if (text.split(from).length !== 2) throw new Error(`pgwq_record_attempts has changed: ${from}`);
  return text.replace(from, () => to);
}

/**
 * LoneRecord's pgwq_record_attempts with a delivered result's attempt kept on its delivery: in
 * the set-based path, the lone delivered path and the loop alike. A delivery row is locked by
 * its line's lock, so the columns are only ever written by the attempt that delivered it.
 */
export function successOnDeliveryRecordAttempts(): string {
  let fn = loneRecordAttempts();
  // The set-based path.
  fn = once(
    fn,
    `        dead_at = CASE WHEN r.outcome = 'dead' AND NOT c.rewound THEN now() END
    FROM line AS c
    JOIN req AS r ON r.nth = c.nth
    WHERE d.id = r.delivery_id
    RETURNING d.id
  ), attempt AS (
    INSERT INTO delivery_attempts`,
    `        dead_at = CASE WHEN r.outcome = 'dead' AND NOT c.rewound THEN now() END${successOnRow(
      `r.outcome = 'delivered' AND NOT c.rewound`,
      'r',
    )}
    FROM line AS c
    JOIN req AS r ON r.nth = c.nth
    WHERE d.id = r.delivery_id
    RETURNING d.id, d.delivered_attempt_id IS NOT NULL AS on_row
  ), attempt AS (
    INSERT INTO logged_attempts`,
  );
  fn = once(
    fn,
    `    JOIN req AS r ON r.delivery_id = x.id
    RETURNING delivery_id`,
    `    JOIN req AS r ON r.delivery_id = x.id
    WHERE NOT x.on_row
    RETURNING delivery_id`,
  );
  fn = once(
    fn,
    `(SELECT count(*) FROM attempt a WHERE a.delivery_id = r.delivery_id)::int`,
    `(SELECT count(*) FROM delivery x WHERE x.id = r.delivery_id)::int`,
  );
  // The lone delivered path: always delivered, never rewound (it leaves a rewind to the loop).
  fn = once(
    fn,
    `          dead_at = NULL
      FROM line
      WHERE d.id = $7[1]`,
    `          dead_at = NULL,
          delivered_attempt_id = nextval('logged_attempts_id_seq'),
          delivered_started_at = $11[1],
          delivered_duration_ms = $12[1],
          delivered_response_body = $13[1]
      FROM line
      WHERE d.id = $7[1]`,
  );
  fn = once(
    fn,
    `      RETURNING d.id
    ), attempt AS (
      INSERT INTO delivery_attempts
        (delivery_id, attempt, started_at, duration_ms, status_code, error, response_body)
      SELECT id, $8[1], $11[1], $12[1], $9[1],
             $10[1], $13[1]
      FROM delivery
      RETURNING 1
    ), head AS (`,
    `      RETURNING d.id
    ), head AS (`,
  );
  fn = once(
    fn,
    `SELECT 1, false, true, (SELECT count(*) FROM attempt)::int,`,
    `SELECT 1, false, true, (SELECT count(*) FROM delivery)::int,`,
  );
  // The loop.
  fn = once(
    fn,
    `        dead_at = CASE WHEN r.status = 'dead' THEN now() END
    FROM recorded AS r
    WHERE id = req.delivery_id
    RETURNING id
  ), attempt AS (
    INSERT INTO delivery_attempts`,
    `        dead_at = CASE WHEN r.status = 'dead' THEN now() END${successOnRow(
      `r.status = 'delivered'`,
      'req',
    )}
    FROM recorded AS r
    WHERE id = req.delivery_id
    RETURNING id, delivered_attempt_id IS NOT NULL AS on_row
  ), attempt AS (
    INSERT INTO logged_attempts`,
  );
  fn = once(
    fn,
    `    FROM delivery
    RETURNING 1
  )
  SELECT req.nth::integer,`,
    `    FROM delivery
    WHERE NOT on_row
    RETURNING 1
  )
  SELECT req.nth::integer,`,
  );
  return once(
    fn,
    `         (SELECT count(*) FROM attempt)::int AS recorded,`,
    `         (SELECT count(*) FROM delivery)::int AS recorded,`,
  );
}

import { MigrationInterface, QueryRunner } from 'typeorm';
import { pinned } from './1795633463950-DeliveryFunctions.js';
import { MAX_PRINTED_PAYLOAD_BYTES } from './1795633464300-BoundedPayloads.js';
import { LINE_UPSERT_CONFLICT } from './1795633464100-LeanerPublish.js';
import { matches, routedFanOut } from './1795633464700-EventRouting.js';

/**
 * A cheaper SQL publish: the same numbering, deliveries, lines and notification for fewer
 * executor start-ups per message (sql/notify_trigger.sql, parts 2 and 5). Instructions per 1-row
 * transaction with one webhook, PostgreSQL 15 under callgrind (deterministic; the message and
 * delivery inserted without triggers: 689,000): 1,527,000 before, 1,219,000 after with tables
 * as small as the bench's; 1,376,000 and 1,247,000 with more rows, analyzed
 * (bench/results/publish-evidence.txt). The savings below are of the first.
 *
 * - messages_payload_printable gets a WHEN: a payload stored in at most
 *   PRINTABLE_WITHOUT_LOOKING bytes, uncompressed, cannot print to more than
 *   MAX_PRINTED_PAYLOAD_BYTES, so the trigger's function (a jsonpath walk over the numbers, a
 *   subtransaction, the payload printed) is not called for it (-80,000).
 * - pgwq_fan_out plans on indexes (enable_seqscan = off, as pgwq_assign_sequence): with a
 *   topic of few partitions and webhooks the cached generic plans read partition_sequences,
 *   webhooks and delivery_lines whole, row versions of the counters' updates included (-164,000).
 * - Its row path is one statement after the row is read: the counter's UPDATE is a CTE of the
 *   fan-out's statement; the row is read without an aggregate (a row, and none when the
 *   statement inserted more than one); the wake-up flag with LIMIT 1, not bool_or (-35,000).
 * - A line's highest delivery below a sequence (previous_sequence when the tail is not below it:
 *   an insert nested in another on the same partition) comes from pgwq_line_sequence_before,
 *   called only then: as a sub-select its plan was started for every statement (-29,000).
 *
 * Locks, their order, and what every path writes are unchanged.
 */
export class CheaperPublish1795633465000 implements MigrationInterface {
  name = 'CheaperPublish1795633465000';

  public async up(queryRunner: QueryRunner): Promise<void> {
    const [{ schema }] = await queryRunner.query(`SELECT quote_ident(current_schema()) AS schema`);
    await queryRunner.query(LINE_SEQUENCE_BEFORE.replace('LANGUAGE', `${pinned(schema)} LANGUAGE`));
    await queryRunner.query(cheaperFanOut(schema));
    await queryRunner.query(PRINTABLE_TRIGGER);
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    const [{ schema }] = await queryRunner.query(`SELECT quote_ident(current_schema()) AS schema`);
    await queryRunner.query(routedFanOut(schema));
    await queryRunner.query(`ALTER FUNCTION pgwq_fan_out() RESET enable_seqscan`);
    await queryRunner.query(`DROP FUNCTION pgwq_line_sequence_before`);
    await queryRunner.query(`
CREATE OR REPLACE TRIGGER messages_payload_printable
  BEFORE INSERT OR UPDATE OF payload ON messages
  FOR EACH ROW EXECUTE FUNCTION pgwq_refuse_unprintable_payload()`);
  }
}

/**
 * The largest stored payload (pg_column_size, uncompressed) that needs no look at its numbers.
 * A jsonb value prints to at most 18,433 times its stored size: a number prints to at most
 * 147,457 characters (131,072 digits before the point, 16,383 after, a sign and a point) plus a
 * separator, and takes at least 8 stored bytes (its 4-byte entry, and at least 3 bytes of numeric
 * starting on a 4-byte boundary); a string's byte prints to at most 6 (\u001f), and every other
 * element has a 4-byte entry for its few characters. 18,433 × 3,640 < MAX_PRINTED_PAYLOAD_BYTES.
 */
export const PRINTABLE_WITHOUT_LOOKING = 3640;
if (18_433 * PRINTABLE_WITHOUT_LOOKING >= MAX_PRINTED_PAYLOAD_BYTES) {
  throw new Error('PRINTABLE_WITHOUT_LOOKING is too large');
}

/** sql/notify_trigger.sql, part 5. */
const PRINTABLE_TRIGGER = `
CREATE OR REPLACE TRIGGER messages_payload_printable
  BEFORE INSERT OR UPDATE OF payload ON messages
  FOR EACH ROW
  WHEN (pg_column_size(NEW.payload) > ${PRINTABLE_WITHOUT_LOOKING}
        OR pg_column_compression(NEW.payload) IS NOT NULL)
  EXECUTE FUNCTION pgwq_refuse_unprintable_payload()`;

/** sql/notify_trigger.sql, part 2 (the helper of previous_sequence). */
const LINE_SEQUENCE_BEFORE = `
CREATE FUNCTION pgwq_line_sequence_before(webhook integer, key text, below bigint)
RETURNS bigint STABLE LANGUAGE sql AS $fn$
  SELECT max(d.sequence) FROM deliveries d
  WHERE d.webhook_id = webhook AND d.partition_key = key AND d.sequence < below
$fn$`;

/** The previous_sequence of a delivery of `sequence` on line (`webhook`, `partitionKey`). */
const previousOnLine = (webhook: string, partitionKey: string, sequence: string) => `(
        SELECT CASE
                 WHEN l.tail_sequence < ${sequence} THEN l.tail_sequence
                 ELSE pgwq_line_sequence_before(${webhook}, ${partitionKey}, ${sequence})
               END
        FROM delivery_lines l
        WHERE l.webhook_id = ${webhook} AND l.partition_key = ${partitionKey})`;

/** The line upsert's end, with the wake-up flag read from its rows. */
const LINE_UPSERT_WOKE = `${LINE_UPSERT_CONFLICT}
    )
    SELECT true INTO woke FROM lines WHERE lines.woke LIMIT 1;`;

/** sql/notify_trigger.sql, part 2. */
const cheaperFanOut = (schema: string) => `
CREATE OR REPLACE FUNCTION pgwq_fan_out() RETURNS trigger
LANGUAGE plpgsql SET search_path = ${schema}, pg_temp SET enable_seqscan = off AS $$
DECLARE
  woke boolean;
  msg_id bigint;
  msg_topic_id integer;
  msg_partition_key text;
  msg_sequence bigint;
  msg_event_type text;
BEGIN
  SELECT n.id, n.topic_id, n.partition_key, n.sequence, n.event_type
  INTO msg_id, msg_topic_id, msg_partition_key, msg_sequence, msg_event_type
  FROM new_messages n
  WHERE NOT EXISTS (SELECT FROM new_messages OFFSET 1);

  IF FOUND THEN
    WITH counter AS (
      UPDATE partition_sequences AS ps
      SET last_sequence = msg_sequence
      WHERE ps.topic_id = msg_topic_id
        AND ps.partition_key = msg_partition_key
        AND ps.last_sequence < msg_sequence
    ), hooks AS (
      SELECT w.id, w.status
      FROM webhooks w
      WHERE w.topic_id = msg_topic_id AND w.deleted_at IS NULL
        AND ${matches('msg_event_type')}
      FOR KEY SHARE
    ), fanned_out AS (
      INSERT INTO deliveries
        (message_id, webhook_id, topic_id, partition_key, sequence, next_attempt_at,
         previous_sequence)
      SELECT msg_id, w.id, msg_topic_id, msg_partition_key, msg_sequence, now(),
             ${previousOnLine('w.id', 'msg_partition_key', 'msg_sequence')}
      FROM hooks w
    ), lines AS (
      INSERT INTO delivery_lines AS l
        (webhook_id, partition_key, topic_id, head_sequence, tail_sequence, next_attempt_at,
         head_created_at)
      SELECT w.id, msg_partition_key, msg_topic_id, msg_sequence, msg_sequence,
             CASE WHEN w.status = 'active' THEN now() END, now()
      FROM hooks w
      ORDER BY w.id
${LINE_UPSERT_WOKE}
  ELSIF EXISTS (SELECT FROM new_messages) THEN
    WITH counter AS (
      UPDATE partition_sequences AS ps
      SET last_sequence = n.last_sequence
      FROM (
        SELECT topic_id, partition_key, max(sequence) AS last_sequence
        FROM new_messages
        GROUP BY topic_id, partition_key
      ) AS n
      WHERE ps.topic_id = n.topic_id
        AND ps.partition_key = n.partition_key
        AND ps.last_sequence < n.last_sequence
    ), hooks AS (
      SELECT w.id, w.topic_id, w.status, w.event_types
      FROM webhooks w
      WHERE w.topic_id IN (SELECT topic_id FROM new_messages) AND w.deleted_at IS NULL
      FOR KEY SHARE
    ), matched AS (
      SELECT m.id, w.id AS webhook_id, m.topic_id, m.partition_key, m.sequence,
             lag(m.sequence) OVER (PARTITION BY w.id, m.partition_key ORDER BY m.sequence)
               AS before
      FROM new_messages m
      JOIN hooks w ON w.topic_id = m.topic_id
      WHERE ${matches('m.event_type')}
    ), fanned_out AS (
      INSERT INTO deliveries
        (message_id, webhook_id, topic_id, partition_key, sequence, next_attempt_at,
         previous_sequence)
      SELECT f.id, f.webhook_id, f.topic_id, f.partition_key, f.sequence, now(),
             coalesce(f.before, ${previousOnLine('f.webhook_id', 'f.partition_key', 'f.sequence')})
      FROM matched f
      RETURNING webhook_id, topic_id, partition_key, sequence
    ), lines AS (
      INSERT INTO delivery_lines AS l
        (webhook_id, partition_key, topic_id, head_sequence, tail_sequence, next_attempt_at,
         head_created_at)
      SELECT f.webhook_id, f.partition_key, f.topic_id, min(f.sequence), max(f.sequence),
             CASE WHEN w.status = 'active' THEN now() END, now()
      FROM fanned_out f
      JOIN hooks w ON w.id = f.webhook_id
      GROUP BY f.webhook_id, f.partition_key, f.topic_id, w.status
      ORDER BY f.webhook_id, f.partition_key
${LINE_UPSERT_WOKE}
  END IF;

  IF woke THEN
    PERFORM pg_notify('pgwq_deliveries', '');
  END IF;
  RETURN NULL;
END;
$$;
`;

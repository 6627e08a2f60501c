import { MigrationInterface, QueryRunner } from 'typeorm';
import { fanOut as webhookOperationsFanOut } from './1795633463850-WebhookOperations.js';

/**
 * A leaner publish for single-row statements (issue 13, point 3): the fan-out trigger
 * (sql/notify_trigger.sql, part 2) gets a row path beside its set path. A statement that inserted
 * one row no longer starts the set path's grouping, sorting and semi-join: it reads the row from
 * the transition table once and runs three small statements keyed by it. Multi-row statements,
 * the sequence trigger, the triggers themselves and every lock taken are unchanged.
 */
export class LeanerPublish1795633464100 implements MigrationInterface {
  name = 'LeanerPublish1795633464100';

  public async up(queryRunner: QueryRunner): Promise<void> {
    const [{ schema }] = await queryRunner.query(`SELECT quote_ident(current_schema()) AS schema`);
    await queryRunner.query(fanOut(schema));
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    const [{ schema }] = await queryRunner.query(`SELECT quote_ident(current_schema()) AS schema`);
    await queryRunner.query(webhookOperationsFanOut(schema));
  }
}

/**
 * What the line upsert does to a line that exists: the busy/idle rule of the comment below. Both
 * paths of the fan-out end their upsert with it, so one rule serves both.
 */
export const LINE_UPSERT_CONFLICT = `      ON CONFLICT (webhook_id, partition_key) DO UPDATE
        SET head_sequence = CASE
              WHEN l.head_sequence > l.tail_sequence THEN EXCLUDED.head_sequence
              ELSE least(l.head_sequence, EXCLUDED.head_sequence)
            END,
            tail_sequence = CASE
              WHEN l.head_sequence > l.tail_sequence THEN EXCLUDED.tail_sequence
              ELSE greatest(l.tail_sequence, EXCLUDED.tail_sequence)
            END,
            next_attempt_at = CASE
              WHEN l.head_sequence > l.tail_sequence THEN EXCLUDED.next_attempt_at
              ELSE l.next_attempt_at
            END,
            head_created_at = coalesce(l.head_created_at, EXCLUDED.head_created_at)
      RETURNING l.next_attempt_at = now() AS woke`;

/** The fan-out with its row path: sql/notify_trigger.sql, part 2. */
export const fanOut = (schema: string) => `
-- 2. After each statement, over the rows really inserted (the transition table): the
-- partitions' counters moved up to their highest new sequence, one pending delivery per
-- (message, webhook the topic has now), the lines' heads and tails, and one NOTIFY.
--
-- Two paths with one meaning. A statement that inserted one row (a 1-row INSERT, an API publish
-- that is not a batch) takes the row path: the row is read from the transition table into
-- variables, and statements keyed by it do the work. More rows take the set path, which groups
-- them per partition and per line. The row path is the set path for one row (the min and max of
-- one sequence are that sequence, every webhook fanned out to has that row's delivery), written
-- out so that its plans are small: for one row, starting the set path's grouping, sorting and
-- semi-join cost more than running them (backend CPU of a 1-row transaction with one webhook,
-- PostgreSQL 15: a fifth to a quarter less; bench/results/publish-evidence.txt). A statement that
-- inserted nothing (every row skipped by ON CONFLICT DO NOTHING) returns at once.
--
-- A deleted webhook (deleted_at set by DELETE /webhooks/{id}) gets nothing more; the worker's
-- purge removes its lines, deliveries and finally its row. The key-share lock on each webhook
-- fanned out to is what makes that last step safe: the row's DELETE skips a webhook a producer
-- has locked, and a producer that comes after the DELETE skips the row (READ COMMITTED re-checks
-- a locked row), so no producer ever fails on the deliveries' foreign key. It does not wait on
-- DELETE /webhooks/{id}, which only updates the row.
--
-- A paused or disabled webhook (DESIGN §7) still gets its deliveries, but its new or idle lines
-- are not made due: they wait with next_attempt_at NULL, so no worker spends a claim on them, and
-- resuming the webhook wakes them. The status is read from the key-share locked row: a pause or
-- resume (PATCH /webhooks/{id}) locks the row FOR UPDATE, so this waits for it and then reads the
-- row as it committed, never a status older than a resume that then missed this line. head_created_at is when the line's head was published, for
-- GET /webhooks/{id}/lines?order=lag; it is set here when a line gets its first pending message.
--
-- The line upsert locks each touched (webhook, partition) line until commit. A worker that
-- finishes the line's head meanwhile waits for that lock and then reads the new tail_sequence
-- from the row itself, so it cannot park the line as idle while this transaction's deliveries
-- are still invisible to it (the lost-wakeup race).
--
-- A busy line keeps its head and takes the greatest tail: a message inserted by a trigger inside
-- another insert on the same partition has the higher number but is fanned out first, so the
-- outer statement comes with a lower range (and may even lower the head of a line the inner
-- statement created). An idle line (head past tail) takes the new rows' range as it is: that is
-- its next message, and it also puts a line back on track after its counter was set back.
--
-- pg_notify with a constant payload: PostgreSQL folds identical notifications of one
-- transaction into one, so a transaction pays for NOTIFY's commit-time lock once, however many
-- rows or statements it has. And only when the statement woke a line (a new line, or an idle
-- one: its next_attempt_at is now() after the upsert). A line that already had work waiting is
-- leased by a worker, backing off on that worker's retry timer, or due with a worker about to
-- free a slot: a notification cannot make it due any sooner, while NOTIFY's database-wide lock
-- serialises every notifying commit (DESIGN §3).
CREATE OR REPLACE FUNCTION pgwq_fan_out() RETURNS trigger
LANGUAGE plpgsql SET search_path = ${schema}, pg_temp AS $$
DECLARE
  woke boolean;
  inserted bigint;
  msg_id bigint;
  msg_topic_id integer;
  msg_partition_key text;
  msg_sequence bigint;
BEGIN
  SELECT count(*), min(n.id), min(n.topic_id), min(n.partition_key), min(n.sequence)
  INTO inserted, msg_id, msg_topic_id, msg_partition_key, msg_sequence
  FROM new_messages n;

  IF inserted = 0 THEN
    RETURN NULL;
  ELSIF inserted = 1 THEN
    UPDATE partition_sequences AS ps
    SET last_sequence = msg_sequence
    WHERE ps.topic_id = msg_topic_id
      AND ps.partition_key = msg_partition_key
      AND ps.last_sequence < msg_sequence;

    WITH hooks AS (
      SELECT w.id, w.status
      FROM webhooks w
      WHERE w.topic_id = msg_topic_id AND w.deleted_at IS NULL
      FOR KEY SHARE
    ), fanned_out AS (
      INSERT INTO deliveries
        (message_id, webhook_id, topic_id, partition_key, sequence, next_attempt_at)
      SELECT msg_id, w.id, msg_topic_id, msg_partition_key, msg_sequence, now()
      FROM hooks w
    ), lines AS (
      INSERT INTO delivery_lines AS l
        (webhook_id, partition_key, topic_id, head_sequence, tail_sequence, next_attempt_at,
         head_created_at)
      SELECT w.id, msg_partition_key, msg_topic_id, msg_sequence, msg_sequence,
             CASE WHEN w.status = 'active' THEN now() END, now()
      FROM hooks w
      ORDER BY w.id
${LINE_UPSERT_CONFLICT}
    )
    SELECT bool_or(lines.woke) INTO woke FROM lines;
  ELSE
    UPDATE partition_sequences AS ps
    SET last_sequence = n.last_sequence
    FROM (
      SELECT topic_id, partition_key, max(sequence) AS last_sequence
      FROM new_messages
      GROUP BY topic_id, partition_key
    ) AS n
    WHERE ps.topic_id = n.topic_id
      AND ps.partition_key = n.partition_key
      AND ps.last_sequence < n.last_sequence;

    WITH hooks AS (
      SELECT w.id, w.topic_id, w.status
      FROM webhooks w
      WHERE w.topic_id IN (SELECT topic_id FROM new_messages) AND w.deleted_at IS NULL
      FOR KEY SHARE
    ), fanned_out AS (
      INSERT INTO deliveries
        (message_id, webhook_id, topic_id, partition_key, sequence, next_attempt_at)
      SELECT m.id, w.id, m.topic_id, m.partition_key, m.sequence, now()
      FROM new_messages m
      JOIN hooks w ON w.topic_id = m.topic_id
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
${LINE_UPSERT_CONFLICT}
    )
    SELECT bool_or(lines.woke) INTO woke FROM lines;
  END IF;

  IF woke THEN
    PERFORM pg_notify('pgwq_deliveries', '');
  END IF;
  RETURN NULL;
END;
$$;
`;

import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * DELETE /webhooks/{id} without a long transaction (issue 8, item 5): it only sets
 * webhooks.deleted_at; the fan-out and the claims ignore such a webhook at once, and the workers'
 * maintenance purges its lines, deliveries (with their attempts) and finally its row in small
 * batches. The fan-out takes a key-share lock on every webhook it fans out to, so that last
 * DELETE never makes a producer fail on the deliveries' foreign key.
 * sql/notify_trigger.sql is updated to match.
 */
export class WebhookDeletion1795633463601 implements MigrationInterface {
  name = 'WebhookDeletion1795633463601';

  public async up(queryRunner: QueryRunner): Promise<void> {
    const [{ schema }] = await queryRunner.query(`SELECT quote_ident(current_schema()) AS schema`);
    await queryRunner.query(`
ALTER TABLE webhooks ADD COLUMN deleted_at timestamptz;
CREATE INDEX webhooks_deleted_idx ON webhooks (id) WHERE deleted_at IS NOT NULL;
`);
    await queryRunner.query(fanOut(schema));
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    const [{ schema }] = await queryRunner.query(`SELECT quote_ident(current_schema()) AS schema`);
    await queryRunner.query(`
-- Back to TriggerIntegrity1795633463600; webhooks waiting for their purge go at once.
-- 2. After each statement, set-based over the rows really inserted (the transition table): the
-- partitions' counters moved up to their highest new sequence, one pending delivery per
-- (message, webhook the topic has now), the lines' heads and tails, and one NOTIFY.
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
BEGIN
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

  WITH fanned_out AS (
    INSERT INTO deliveries
      (message_id, webhook_id, topic_id, partition_key, sequence, next_attempt_at)
    SELECT m.id, w.id, m.topic_id, m.partition_key, m.sequence, now()
    FROM new_messages m
    JOIN webhooks w ON w.topic_id = m.topic_id
    RETURNING webhook_id, topic_id, partition_key, sequence
  ), lines AS (
    INSERT INTO delivery_lines AS l
      (webhook_id, partition_key, topic_id, head_sequence, tail_sequence, next_attempt_at)
    SELECT webhook_id, partition_key, topic_id, min(sequence), max(sequence), now()
    FROM fanned_out
    GROUP BY webhook_id, partition_key, topic_id
    ORDER BY webhook_id, partition_key
    ON CONFLICT (webhook_id, partition_key) DO UPDATE
      SET head_sequence = CASE
            WHEN l.head_sequence > l.tail_sequence THEN EXCLUDED.head_sequence
            ELSE least(l.head_sequence, EXCLUDED.head_sequence)
          END,
          tail_sequence = CASE
            WHEN l.head_sequence > l.tail_sequence THEN EXCLUDED.tail_sequence
            ELSE greatest(l.tail_sequence, EXCLUDED.tail_sequence)
          END,
          next_attempt_at = CASE
            WHEN l.head_sequence > l.tail_sequence THEN now()
            ELSE l.next_attempt_at
          END
    RETURNING l.next_attempt_at = now() AS woke
  )
  SELECT bool_or(lines.woke) INTO woke FROM lines;

  IF woke THEN
    PERFORM pg_notify('pgwq_deliveries', '');
  END IF;
  RETURN NULL;
END;
$$;

DELETE FROM webhooks WHERE deleted_at IS NOT NULL;
DROP INDEX webhooks_deleted_idx;
ALTER TABLE webhooks DROP COLUMN deleted_at;
`);
  }
}

/** The fan-out this migration installs (sql/notify_trigger.sql, part 2, as it was then). */
export const fanOut = (schema: string) => `
-- 2. After each statement, set-based over the rows really inserted (the transition table): the
-- partitions' counters moved up to their highest new sequence, one pending delivery per
-- (message, webhook the topic has now), the lines' heads and tails, and one NOTIFY.
--
-- A deleted webhook (deleted_at set by DELETE /webhooks/{id}) gets nothing more; the worker's
-- purge removes its lines, deliveries and finally its row. The key-share lock on each webhook
-- fanned out to is what makes that last step safe: the row's DELETE skips a webhook a producer
-- has locked, and a producer that comes after the DELETE skips the row (READ COMMITTED re-checks
-- a locked row), so no producer ever fails on the deliveries' foreign key. It does not wait on
-- DELETE /webhooks/{id}, which only updates the row.
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
BEGIN
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

  WITH fanned_out AS (
    INSERT INTO deliveries
      (message_id, webhook_id, topic_id, partition_key, sequence, next_attempt_at)
    SELECT m.id, w.id, m.topic_id, m.partition_key, m.sequence, now()
    FROM new_messages m
    JOIN webhooks w ON w.topic_id = m.topic_id AND w.deleted_at IS NULL
    FOR KEY SHARE OF w
    RETURNING webhook_id, topic_id, partition_key, sequence
  ), lines AS (
    INSERT INTO delivery_lines AS l
      (webhook_id, partition_key, topic_id, head_sequence, tail_sequence, next_attempt_at)
    SELECT webhook_id, partition_key, topic_id, min(sequence), max(sequence), now()
    FROM fanned_out
    GROUP BY webhook_id, partition_key, topic_id
    ORDER BY webhook_id, partition_key
    ON CONFLICT (webhook_id, partition_key) DO UPDATE
      SET head_sequence = CASE
            WHEN l.head_sequence > l.tail_sequence THEN EXCLUDED.head_sequence
            ELSE least(l.head_sequence, EXCLUDED.head_sequence)
          END,
          tail_sequence = CASE
            WHEN l.head_sequence > l.tail_sequence THEN EXCLUDED.tail_sequence
            ELSE greatest(l.tail_sequence, EXCLUDED.tail_sequence)
          END,
          next_attempt_at = CASE
            WHEN l.head_sequence > l.tail_sequence THEN now()
            ELSE l.next_attempt_at
          END
    RETURNING l.next_attempt_at = now() AS woke
  )
  SELECT bool_or(lines.woke) INTO woke FROM lines;

  IF woke THEN
    PERFORM pg_notify('pgwq_deliveries', '');
  END IF;
  RETURN NULL;
END;
$$;
`;

import { MigrationInterface, QueryRunner } from 'typeorm';
import { fanOut as webhookDeletionFanOut } from './1795633463601-WebhookDeletion.js';

/** The fan-out with webhook states (DESIGN §7): sql/notify_trigger.sql, part 2. */
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
            WHEN l.head_sequence > l.tail_sequence THEN EXCLUDED.next_attempt_at
            ELSE l.next_attempt_at
          END,
          head_created_at = coalesce(l.head_created_at, EXCLUDED.head_created_at)
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

/**
 * Operating the queue (DESIGN §7, issue 9).
 *
 * webhooks:
 * - status (active | paused | disabled), with disabled_reason (gone | failing) and disabled_at;
 * - on_exhausted (dead_letter | block): what a head that used up its retries does to its line;
 * - failing_since: when the current run of failed attempts began (NULL after a success), for
 *   WEBHOOK_DISABLE_AFTER_SECONDS.
 *
 * delivery_lines:
 * - blocked: the head is dead and on_exhausted = block held the line there (next_attempt_at is
 *   NULL, so it is not due) until a redrive or a skip;
 * - rewind_to: a redrive or replay that found the line leased leaves the sequence to go back to
 *   here instead of moving the head under the worker's fence; the line's next claim applies it;
 * - head_created_at: when the head (the oldest pending message) was published, NULL when idle,
 *   kept by the fan-out and by every statement that moves the head; delivery_lines_lag_idx
 *   serves GET /webhooks/{id}/lines?order=lag (most behind first) as an index range scan.
 *
 * The fan-out no longer makes a paused or disabled webhook's lines due.
 */
export class WebhookOperations1795633463850 implements MigrationInterface {
  name = 'WebhookOperations1795633463850';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
ALTER TABLE webhooks
  ADD COLUMN status text NOT NULL DEFAULT 'active',
  ADD COLUMN disabled_reason text,
  ADD COLUMN disabled_at timestamptz,
  ADD COLUMN on_exhausted text NOT NULL DEFAULT 'dead_letter',
  ADD COLUMN failing_since timestamptz,
  ADD CONSTRAINT webhooks_status_check CHECK (status IN ('active', 'paused', 'disabled')),
  ADD CONSTRAINT webhooks_on_exhausted_check CHECK (on_exhausted IN ('dead_letter', 'block'));

ALTER TABLE delivery_lines
  ADD COLUMN blocked boolean NOT NULL DEFAULT false,
  ADD COLUMN rewind_to bigint,
  ADD COLUMN head_created_at timestamptz;

UPDATE delivery_lines AS l
SET head_created_at = d.created_at
FROM deliveries AS d
WHERE d.webhook_id = l.webhook_id
  AND d.partition_key = l.partition_key
  AND d.sequence = l.head_sequence
  AND l.head_sequence <= l.tail_sequence;

CREATE INDEX delivery_lines_lag_idx
  ON delivery_lines (webhook_id, head_created_at, partition_key);
`);
    const [{ schema }] = await queryRunner.query(`SELECT quote_ident(current_schema()) AS schema`);
    await queryRunner.query(fanOut(schema));
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    const [{ schema }] = await queryRunner.query(`SELECT quote_ident(current_schema()) AS schema`);
    await queryRunner.query(webhookDeletionFanOut(schema));
    await queryRunner.query(`
-- Lines a pause or a block parked become due again: the old engine knows neither.
UPDATE delivery_lines SET next_attempt_at = now(), lease_token = NULL
WHERE next_attempt_at IS NULL AND (head_sequence <= tail_sequence OR rewind_to IS NOT NULL);
UPDATE delivery_lines SET head_sequence = least(head_sequence, rewind_to)
WHERE rewind_to IS NOT NULL;
DROP INDEX delivery_lines_lag_idx;
ALTER TABLE delivery_lines
  DROP COLUMN blocked,
  DROP COLUMN rewind_to,
  DROP COLUMN head_created_at;
ALTER TABLE webhooks
  DROP CONSTRAINT webhooks_status_check,
  DROP CONSTRAINT webhooks_on_exhausted_check,
  DROP COLUMN status,
  DROP COLUMN disabled_reason,
  DROP COLUMN disabled_at,
  DROP COLUMN on_exhausted,
  DROP COLUMN failing_since;
`);
  }
}

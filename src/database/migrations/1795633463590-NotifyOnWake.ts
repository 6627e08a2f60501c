import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * NOTIFY only when a producing transaction wakes a line (a new line, or an idle one whose head
 * was past its tail). A line that already has work waiting is leased by a worker, backing off
 * on that worker's retry timer, or due with a worker about to free a slot: a notification
 * cannot make it due any sooner, but NOTIFY's commit-time lock serialises every notifying
 * commit (DESIGN §3). Measured on PostgreSQL 15, one webhook, 1-row transactions from 8
 * producers: from about 0.4x to about 0.68x of a plain INSERT into an unindexed table.
 * sql/notify_trigger.sql is updated to match.
 */
export class NotifyOnWake1795633463590 implements MigrationInterface {
  name = 'NotifyOnWake1795633463590';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
-- pg_notify with a constant payload: PostgreSQL folds identical notifications of one
-- transaction into one, so a transaction pays for NOTIFY's commit-time lock once, however many
-- rows or statements it has. And only when the statement woke a line (a new line, or an idle
-- one: its next_attempt_at is now() after the upsert). A line that already had work waiting is
-- leased by a worker, backing off on that worker's retry timer, or due with a worker about to
-- free a slot: a notification cannot make it due any sooner, while NOTIFY's database-wide lock
-- serialises every notifying commit (DESIGN §3).
CREATE OR REPLACE FUNCTION pgwq_fan_out() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  woke boolean;
BEGIN
  INSERT INTO deliveries (message_id, webhook_id, topic_id, partition_key, sequence, next_attempt_at)
  SELECT m.id, w.id, m.topic_id, m.partition_key, m.sequence, now()
  FROM new_messages m
  JOIN webhooks w ON w.topic_id = m.topic_id;

  IF NOT FOUND THEN
    RETURN NULL;
  END IF;

  -- An idle line (head past tail) wakes up at its first new sequence; only a woken line (its
  -- next_attempt_at is now() after the upsert) is worth a NOTIFY.
  WITH lines AS (
    INSERT INTO delivery_lines AS l
      (webhook_id, partition_key, topic_id, head_sequence, tail_sequence, next_attempt_at)
    SELECT w.id, m.partition_key, m.topic_id, min(m.sequence), max(m.sequence), now()
    FROM new_messages m
    JOIN webhooks w ON w.topic_id = m.topic_id
    GROUP BY w.id, m.partition_key, m.topic_id
    ORDER BY w.id, m.partition_key
    ON CONFLICT (webhook_id, partition_key) DO UPDATE
      SET tail_sequence = EXCLUDED.tail_sequence,
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
`);
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
-- Back to one NOTIFY for every producing transaction (MessageTriggers1795633463587).
CREATE OR REPLACE FUNCTION pgwq_fan_out() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO deliveries (message_id, webhook_id, topic_id, partition_key, sequence, next_attempt_at)
  SELECT m.id, w.id, m.topic_id, m.partition_key, m.sequence, now()
  FROM new_messages m
  JOIN webhooks w ON w.topic_id = m.topic_id;

  IF NOT FOUND THEN
    RETURN NULL;
  END IF;

  -- An idle line (head past tail) wakes up at its first new sequence.
  INSERT INTO delivery_lines AS l
    (webhook_id, partition_key, topic_id, head_sequence, tail_sequence, next_attempt_at)
  SELECT w.id, m.partition_key, m.topic_id, min(m.sequence), max(m.sequence), now()
  FROM new_messages m
  JOIN webhooks w ON w.topic_id = m.topic_id
  GROUP BY w.id, m.partition_key, m.topic_id
  ORDER BY w.id, m.partition_key
  ON CONFLICT (webhook_id, partition_key) DO UPDATE
    SET tail_sequence = EXCLUDED.tail_sequence,
        next_attempt_at = CASE
          WHEN l.head_sequence > l.tail_sequence THEN now()
          ELSE l.next_attempt_at
        END;

  PERFORM pg_notify('pgwq_deliveries', '');
  RETURN NULL;
END;
$$;
`);
  }
}

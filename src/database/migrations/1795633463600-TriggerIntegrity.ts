import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The trigger made consistent by construction (issue 8):
 * - sequences are taken only for rows really inserted: an ON CONFLICT DO NOTHING replay or a row
 *   another BEFORE trigger drops leaves no gap (the sequence-run settings are gone: numbering a
 *   20,000-row statement on one key stays linear without them);
 * - a missing counter is seeded from the partition's messages and its lines' tails, and an idle
 *   line takes the new rows' range, so new messages never land below a line's head;
 * - a busy line keeps the greatest tail (a message a trigger inserts inside another insert);
 * - every function's search_path is pinned to the schema the migrations run in, then pg_temp;
 * - an UPDATE that moves a message to another topic, partition or sequence is refused;
 * - messages.idempotency_key, unique per topic, for INSERT … ON CONFLICT (topic_id,
 *   idempotency_key) DO NOTHING (NULL never conflicts).
 * sql/notify_trigger.sql is updated to match.
 */
export class TriggerIntegrity1795633463600 implements MigrationInterface {
  name = 'TriggerIntegrity1795633463600';

  public async up(queryRunner: QueryRunner): Promise<void> {
    const [{ schema }] = await queryRunner.query(`SELECT quote_ident(current_schema()) AS schema`);
    await queryRunner.query(`
ALTER TABLE messages ADD COLUMN idempotency_key text;
ALTER TABLE messages
  ADD CONSTRAINT messages_idempotency_key UNIQUE (topic_id, idempotency_key);

DROP TRIGGER messages_end_sequence_run ON messages;
DROP FUNCTION pgwq_end_sequence_run();
DROP FUNCTION pgwq_flush_sequence_run();

-- 1. Before each row: the next gap-free sequence of the row's partition (topic, partition_key).
--
-- The partition's counter row is locked (FOR NO KEY UPDATE) and stays locked until the
-- transaction ends. A second transaction on the same partition waits here until the first
-- commits (and then sees its numbers) or rolls back (and then reuses them), so sequences follow
-- commit order. Other partitions never wait. A statement that inserts into several partitions
-- locks their counters in row order, so two such transactions can deadlock: PostgreSQL aborts
-- one, and it can be retried.
--
-- The number is greatest(counter, highest sequence in messages) + 1, and it is only a proposal:
-- this trigger runs before ON CONFLICT's check and before later BEFORE triggers, either of which
-- may still drop the row. So no number is used up here: the counter moves in the statement
-- trigger (2.), from the rows really inserted, and the next row of this statement sees the rows inserted
-- before it (a volatile function's queries in a row trigger do), so a dropped row leaves no gap.
-- max() is one backwards step in messages_partition_sequence_key; the counter keeps numbers
-- going up after messages are pruned.
--
-- A partition without a counter row (its first message, or the row was pruned) is seeded from
-- the highest sequence among its messages and among its lines' tails, so a new number is never
-- at or below a line's head. The lines are found through the topic's webhooks and the lines'
-- primary key, one probe per webhook, and only on this path.
CREATE OR REPLACE FUNCTION pgwq_assign_sequence() RETURNS trigger
LANGUAGE plpgsql SET search_path = ${schema}, pg_temp AS $$
DECLARE
  last_taken bigint;
BEGIN
  SELECT greatest(ps.last_sequence, (
           SELECT max(m.sequence) FROM messages m
           WHERE m.topic_id = NEW.topic_id AND m.partition_key = NEW.partition_key))
  INTO last_taken
  FROM partition_sequences ps
  WHERE ps.topic_id = NEW.topic_id AND ps.partition_key = NEW.partition_key
  FOR NO KEY UPDATE;
  IF NOT FOUND THEN
    INSERT INTO partition_sequences AS ps (topic_id, partition_key, last_sequence)
    SELECT NEW.topic_id, NEW.partition_key, greatest(
             (SELECT max(m.sequence) FROM messages m
              WHERE m.topic_id = NEW.topic_id AND m.partition_key = NEW.partition_key),
             (SELECT max(l.tail_sequence) FROM webhooks w
              JOIN delivery_lines l ON l.webhook_id = w.id AND l.partition_key = NEW.partition_key
              WHERE w.topic_id = NEW.topic_id),
             0)
    ON CONFLICT (topic_id, partition_key) DO UPDATE
      SET last_sequence = greatest(ps.last_sequence, EXCLUDED.last_sequence)
    RETURNING ps.last_sequence INTO last_taken;
  END IF;
  NEW.sequence := last_taken + 1;
  RETURN NEW;
END;
$$;

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

-- 3. Before each update that would move a message: refuse it. Its deliveries, its line and the
-- partition's numbering all depend on (topic_id, partition_key, sequence); a message moved to
-- another partition or number would leave a hole in one and a duplicate or stray in the other.
-- The payload and created_at may change.
CREATE OR REPLACE FUNCTION pgwq_refuse_moving_message() RETURNS trigger
LANGUAGE plpgsql SET search_path = ${schema}, pg_temp AS $$
BEGIN
  RAISE EXCEPTION 'a message''s topic_id, partition_key and sequence cannot change (message %: topic %, partition_key "%", sequence %)',
    OLD.id, OLD.topic_id, OLD.partition_key, OLD.sequence
    USING ERRCODE = 'integrity_constraint_violation',
          HINT = 'Publish a new message to the other partition instead.';
END;
$$;

CREATE OR REPLACE TRIGGER messages_assign_sequence
  BEFORE INSERT ON messages
  FOR EACH ROW EXECUTE FUNCTION pgwq_assign_sequence();

CREATE OR REPLACE TRIGGER messages_fan_out
  AFTER INSERT ON messages
  REFERENCING NEW TABLE AS new_messages
  FOR EACH STATEMENT EXECUTE FUNCTION pgwq_fan_out();

CREATE OR REPLACE TRIGGER messages_refuse_moving
  BEFORE UPDATE ON messages
  FOR EACH ROW
  WHEN (OLD.topic_id IS DISTINCT FROM NEW.topic_id
        OR OLD.partition_key IS DISTINCT FROM NEW.partition_key
        OR OLD.sequence IS DISTINCT FROM NEW.sequence)
  EXECUTE FUNCTION pgwq_refuse_moving_message();
`);
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
DROP TRIGGER messages_refuse_moving ON messages;
DROP FUNCTION pgwq_refuse_moving_message();
ALTER TABLE messages DROP CONSTRAINT messages_idempotency_key;
ALTER TABLE messages DROP COLUMN idempotency_key;

-- Back to SequenceRuns1795633463589 and NotifyOnWake1795633463590.
-- 1. Before each row: the next gap-free sequence of the row's partition (topic, partition_key).
--
-- The upsert takes the partition's counter row lock and holds it until the transaction ends.
-- A second transaction on the same partition waits here until the first commits (and then sees
-- its increment) or rolls back (and then reuses the number), so sequences follow commit order
-- and have no gaps. Other partitions never wait.
--
-- A run of consecutive rows for one partition in one statement (INSERT … SELECT, multi-row
-- VALUES, COPY) upserts the counter once and numbers the rest from transaction-local settings;
-- the run's last number is written back when another partition's row comes or the statement
-- ends (pgwq_end_sequence_run). Updating the counter for every row would make such a statement
-- quadratic: each update of a row this transaction already updated walks the chain of its
-- earlier versions (20,000 rows on one key took 4.8 s). Four fixed setting names, so a session
-- that touches millions of partitions does not pile up settings.
CREATE OR REPLACE FUNCTION pgwq_flush_sequence_run() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  IF coalesce(current_setting('pgwq.run_topic_id', true), '') = '' THEN
    RETURN;
  END IF;
  IF current_setting('pgwq.run_sequence')::bigint > current_setting('pgwq.run_stored')::bigint THEN
    UPDATE partition_sequences
    SET last_sequence = current_setting('pgwq.run_sequence')::bigint
    WHERE topic_id = current_setting('pgwq.run_topic_id')::integer
      AND partition_key = current_setting('pgwq.run_partition_key');
  END IF;
  PERFORM set_config('pgwq.run_topic_id', '', true);
END;
$$;

CREATE OR REPLACE FUNCTION pgwq_assign_sequence() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF current_setting('pgwq.run_topic_id', true) = NEW.topic_id::text
     AND current_setting('pgwq.run_partition_key', true) = NEW.partition_key THEN
    NEW.sequence := current_setting('pgwq.run_sequence')::bigint + 1;
  ELSE
    PERFORM pgwq_flush_sequence_run();
    INSERT INTO partition_sequences AS ps (topic_id, partition_key, last_sequence)
    VALUES (NEW.topic_id, NEW.partition_key, 1)
    ON CONFLICT (topic_id, partition_key)
      DO UPDATE SET last_sequence = ps.last_sequence + 1
    RETURNING ps.last_sequence INTO NEW.sequence;
    PERFORM set_config('pgwq.run_topic_id', NEW.topic_id::text, true),
            set_config('pgwq.run_partition_key', NEW.partition_key, true),
            set_config('pgwq.run_stored', NEW.sequence::text, true);
  END IF;
  PERFORM set_config('pgwq.run_sequence', NEW.sequence::text, true);
  RETURN NEW;
END;
$$;

CREATE OR REPLACE FUNCTION pgwq_end_sequence_run() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pgwq_flush_sequence_run();
  RETURN NULL;
END;
$$;

CREATE OR REPLACE TRIGGER messages_end_sequence_run
  AFTER INSERT ON messages
  FOR EACH STATEMENT EXECUTE FUNCTION pgwq_end_sequence_run();

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
}

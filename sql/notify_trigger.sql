-- pg-webhook-queue: the trigger behind every publish, API or plain SQL.
--
-- Installed by the migration src/database/migrations/*-MessageTriggers.ts; this file is the
-- readable copy, and a test fails if the two disagree. To publish from SQL, insert into
-- messages inside your own transaction:
--
--   INSERT INTO messages (topic_id, partition_key, payload, created_at)
--   VALUES (1, 'user-42', '{"event": "order.created"}'::jsonb, now());

-- 1. Before each row: the next gap-free sequence of the row's partition (topic, partition_key).
--
-- The upsert takes the partition's counter row lock and holds it until the transaction ends.
-- A second transaction on the same partition waits here until the first commits (and then sees
-- its increment) or rolls back (and then reuses the number), so sequences follow commit order
-- and have no gaps. Other partitions never wait.
CREATE OR REPLACE FUNCTION pgwq_assign_sequence() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO partition_sequences AS ps (topic_id, partition_key, last_sequence)
  VALUES (NEW.topic_id, NEW.partition_key, 1)
  ON CONFLICT (topic_id, partition_key)
    DO UPDATE SET last_sequence = ps.last_sequence + 1
  RETURNING ps.last_sequence INTO NEW.sequence;
  RETURN NEW;
END;
$$;

-- 2. After each statement, set-based over all inserted rows: one pending delivery per
-- (message, webhook the topic has now), the lines' tails moved forward, and one NOTIFY.
--
-- The line upsert locks each touched (webhook, partition) line until commit. A worker that
-- finishes the line's head meanwhile waits for that lock and then reads the new tail_sequence
-- from the row itself, so it cannot park the line as idle while this transaction's deliveries
-- are still invisible to it (the lost-wakeup race).
--
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

CREATE OR REPLACE TRIGGER messages_assign_sequence
  BEFORE INSERT ON messages
  FOR EACH ROW EXECUTE FUNCTION pgwq_assign_sequence();

CREATE OR REPLACE TRIGGER messages_fan_out
  AFTER INSERT ON messages
  REFERENCING NEW TABLE AS new_messages
  FOR EACH STATEMENT EXECUTE FUNCTION pgwq_fan_out();

-- pg-webhook-queue: the trigger behind every publish, API or plain SQL, and the dead-delivery
-- counts the metrics read.
--
-- Installed by the migrations in src/database/migrations; this file is the readable copy of
-- what they leave installed, and a test fails if the two disagree. To publish from SQL, insert into
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

CREATE OR REPLACE TRIGGER messages_end_sequence_run
  AFTER INSERT ON messages
  FOR EACH STATEMENT EXECUTE FUNCTION pgwq_end_sequence_run();

-- 3. Dead deliveries per webhook, for the metrics (pgwq_webhook_dead_deliveries), counted as they
-- change so that a scrape never counts over deliveries. The triggers append +1 / -1 rows to
-- dead_delivery_counts (a webhook's count is the sum of its rows) rather than update one row per
-- webhook: workers dead-lettering at once have no row lock to queue on, and a statement that
-- moves thousands of one webhook's deliveries (a redrive, a retention batch) builds no chain of
-- row versions. The process that computes the gauges folds each webhook's rows into one.
CREATE OR REPLACE FUNCTION pgwq_count_dead_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO dead_delivery_counts (webhook_id, dead)
  VALUES (NEW.webhook_id, CASE WHEN NEW.status = 'dead' THEN 1 ELSE -1 END);
  RETURN NULL;
END;
$$;

-- Deleted dead deliveries, once per statement. When a webhook is deleted, its deliveries and
-- its counts go with it (ON DELETE CASCADE): the join skips it, as it is gone already.
CREATE OR REPLACE FUNCTION pgwq_count_dead_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO dead_delivery_counts (webhook_id, dead)
  SELECT gone.webhook_id, -count(*)
  FROM gone
  JOIN webhooks w ON w.id = gone.webhook_id
  WHERE gone.status = 'dead'
  GROUP BY gone.webhook_id;
  RETURN NULL;
END;
$$;

-- Fires only for a change into or out of dead: PostgreSQL checks the WHEN without calling the
-- function, so a delivery that succeeds or is retried pays nothing for it.
CREATE OR REPLACE TRIGGER deliveries_count_dead
  AFTER UPDATE OF status ON deliveries
  FOR EACH ROW WHEN ((OLD.status = 'dead') <> (NEW.status = 'dead'))
  EXECUTE FUNCTION pgwq_count_dead_change();

CREATE OR REPLACE TRIGGER deliveries_count_dead_deleted
  AFTER DELETE ON deliveries
  REFERENCING OLD TABLE AS gone
  FOR EACH STATEMENT EXECUTE FUNCTION pgwq_count_dead_deleted();

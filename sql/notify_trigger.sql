-- pg-webhook-queue: the trigger behind every publish, API or plain SQL (the triggers on
-- deliveries are in deliveries_triggers.sql).
--
-- Installed by the migrations in src/database/migrations; this file is the readable copy of
-- what they leave installed, and a test fails if the two disagree. To publish from SQL, insert into
-- messages inside your own transaction:
--
--   INSERT INTO messages (topic_id, partition_key, payload, created_at)
--   VALUES (1, 'user-42', '{"event": "order.created"}'::jsonb, now());
--
-- A message may carry an event_type; it then goes only to the webhooks whose event_types match
-- it (and to those without a list):
--
--   INSERT INTO messages (topic_id, partition_key, payload, event_type)
--   VALUES (1, 'user-42', '{"id": 42}'::jsonb, 'order.created');
--
-- A replay-safe producer gives each message an idempotency_key (unique per topic) and writes
-- INSERT … ON CONFLICT (topic_id, idempotency_key) DO NOTHING: a skipped row takes no number.
--
-- What an operator may prune, and what not:
-- - deliveries that are delivered or dead, with their logged_attempts, and messages that no
--   delivery refers to any more: yes, in any order and at any time (retention does this).
-- - partition_sequences and delivery_lines: never. They hold each partition's numbering and each
--   line's place in it. If lost anyway (a TRUNCATE, a partial restore), a missing counter is
--   seeded again from the partition's messages and lines' tails, and a line whose head is past
--   its tail restarts at the next new message; pending deliveries of a lost line are not sent.
-- - messages' topic_id, partition_key and sequence: never changed (refused by a trigger below).
-- - webhooks: delete one with DELETE /webhooks/{id} (or UPDATE webhooks SET deleted_at = now()),
--   which the workers then purge in small batches; a plain DELETE of a webhook with a long history
--   removes all of it in one transaction, holding its lines and deliveries meanwhile.
--
-- Every function pins its search_path to our schema (public by default), then pg_temp (named,
-- so it is searched last): a producer's own tables called deliveries, … never shadow ours.

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
--
-- enable_seqscan = off: every lookup here is an index probe. PL/pgSQL caches a generic plan
-- after five calls, and one made while the tables were analyzed empty scans them whole; within
-- one INSERT of many new partitions each row then rescans the rows inserted before it (20,000
-- new partitions: 42 s, against 2.9 s with index scans).
CREATE OR REPLACE FUNCTION pgwq_assign_sequence() RETURNS trigger
LANGUAGE plpgsql SET search_path = public, pg_temp SET enable_seqscan = off AS $$
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

-- 2. After each statement, over the rows really inserted (the transition table): the
-- partitions' counters moved up to their highest new sequence, one pending delivery per
-- (message, webhook the topic has now whose event_types match), the lines' heads and tails, and
-- one NOTIFY.
--
-- Routing: a webhook with event_types NULL gets every message; one with a list gets the messages
-- whose event_type equals an entry or starts with an entry's prefix ('order.*' matches
-- 'order.created'); an untyped message goes only to webhooks without a list. A webhook that does
-- not match gets nothing, not even a line. Each delivery stores previous_sequence, the sequence
-- of the delivery before it on its line (whatever its status; NULL for a line's first), sent as
-- webhook-previous-sequence so a receiver tells a filtered message from a missed one: the line's
-- tail, or when the tail is not below it (an insert nested in another on the same partition is
-- fanned out first, with a higher number) pgwq_line_sequence_before(webhook, key, sequence),
-- installed by the migrations: the line's highest delivery below it.
--
-- Two paths with one meaning: a 1-row statement takes the row path (the row read into
-- variables, then one statement with small plans); more rows take the set path, grouped per
-- partition and per line. A statement that inserted nothing does nothing. enable_seqscan = off
-- for the reason given in 1.: with few partitions and webhooks the generic plans otherwise read
-- partition_sequences, webhooks and delivery_lines whole (bench/results/publish-evidence.txt).
--
-- A deleted webhook (deleted_at set) gets nothing more; the workers purge it later. The
-- key-share lock on each webhook fanned out to makes the purge's final DELETE safe: it skips a
-- webhook a producer has locked, and a producer after it skips the row (READ COMMITTED re-checks
-- a locked row), so no producer fails on the deliveries' foreign key.
--
-- A paused or disabled webhook still gets its deliveries, but its new or idle lines are not made
-- due (next_attempt_at NULL) until it is resumed. The status, like event_types, is read from the
-- key-share locked row: a PATCH locks it FOR UPDATE, so this waits for it and reads what it
-- committed. head_created_at (for GET /webhooks/{id}/lines?order=lag) is set here when a line
-- gets its first pending message.
--
-- The line upsert locks each touched (webhook, partition) line until commit. A worker that
-- finishes the line's head meanwhile waits for that lock and then reads the new tail_sequence
-- from the row itself, so it cannot park the line as idle while this transaction's deliveries
-- are still invisible to it (the lost-wakeup race).
--
-- A busy line keeps its head and takes the greatest tail: the outer statement of a nested insert
-- comes with a lower range (and may even lower the head of a line the inner statement created).
-- An idle line (head past tail) takes the new rows' range as it is: that is its next message,
-- and it also puts a line back on track after its counter was set back.
--
-- pg_notify with a constant payload: PostgreSQL folds a transaction's identical notifications
-- into one, so NOTIFY's commit-time lock is paid once per transaction, and only when a line woke
-- (new, or idle until now). A line with work waiting already has a worker on it, its retry
-- timer, or a slot about to free: a notification would not make it due sooner.
CREATE OR REPLACE FUNCTION pgwq_fan_out() RETURNS trigger
LANGUAGE plpgsql SET search_path = public, pg_temp SET enable_seqscan = off AS $$
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
        AND (w.event_types IS NULL OR (msg_event_type IS NOT NULL AND EXISTS (
        SELECT 1 FROM unnest(w.event_types) AS f (entry)
        WHERE f.entry = msg_event_type
           OR (right(f.entry, 2) = '.*' AND starts_with(msg_event_type, left(f.entry, -1))))))
      FOR KEY SHARE
    ), fanned_out AS (
      INSERT INTO deliveries
        (message_id, webhook_id, topic_id, partition_key, sequence, next_attempt_at,
         previous_sequence)
      SELECT msg_id, w.id, msg_topic_id, msg_partition_key, msg_sequence, now(),
             (
        SELECT CASE
                 WHEN l.tail_sequence < msg_sequence THEN l.tail_sequence
                 ELSE pgwq_line_sequence_before(w.id, msg_partition_key, msg_sequence)
               END
        FROM delivery_lines l
        WHERE l.webhook_id = w.id AND l.partition_key = msg_partition_key)
      FROM hooks w
    ), lines AS (
      INSERT INTO delivery_lines AS l
        (webhook_id, partition_key, topic_id, head_sequence, tail_sequence, next_attempt_at,
         head_created_at)
      SELECT w.id, msg_partition_key, msg_topic_id, msg_sequence, msg_sequence,
             CASE WHEN w.status = 'active' THEN now() END, now()
      FROM hooks w
      ORDER BY w.id
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
    SELECT true INTO woke FROM lines WHERE lines.woke LIMIT 1;
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
      WHERE (w.event_types IS NULL OR (m.event_type IS NOT NULL AND EXISTS (
        SELECT 1 FROM unnest(w.event_types) AS f (entry)
        WHERE f.entry = m.event_type
           OR (right(f.entry, 2) = '.*' AND starts_with(m.event_type, left(f.entry, -1))))))
    ), fanned_out AS (
      INSERT INTO deliveries
        (message_id, webhook_id, topic_id, partition_key, sequence, next_attempt_at,
         previous_sequence)
      SELECT f.id, f.webhook_id, f.topic_id, f.partition_key, f.sequence, now(),
             coalesce(f.before, (
        SELECT CASE
                 WHEN l.tail_sequence < f.sequence THEN l.tail_sequence
                 ELSE pgwq_line_sequence_before(f.webhook_id, f.partition_key, f.sequence)
               END
        FROM delivery_lines l
        WHERE l.webhook_id = f.webhook_id AND l.partition_key = f.partition_key))
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
    SELECT true INTO woke FROM lines WHERE lines.woke LIMIT 1;
  END IF;

  IF woke THEN
    PERFORM pg_notify('pgwq_deliveries', '');
  END IF;
  RETURN NULL;
END;
$$;

-- 3. Before each update that would move a message: refuse it. Its deliveries, line and numbering
-- depend on (topic_id, partition_key, sequence); the payload and created_at may change.
CREATE OR REPLACE FUNCTION pgwq_refuse_moving_message() RETURNS trigger
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
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

-- 5. Before each row inserted, or whose payload changes: refuse a payload that prints to more
-- than 64 MiB (payload::text, the body every delivery carries; the API's MAX_PAYLOAD_BYTES is at
-- most that). jsonb stores 1e131071 in a few bytes and prints it as 131,072 digits: such a row
-- could not be delivered, nor claimed beside others. pgwq_payload_text (installed by the
-- migrations) counts the numbers' digits first without printing them, so a bomb is refused in
-- milliseconds; the error is check_violation naming messages_payload_printable. The WHEN skips
-- the call for a payload stored uncompressed in at most 3,640 bytes: it prints to at most 18,433
-- times that (a number prints to 147,457 characters at most and is stored in 8 bytes at least).
CREATE OR REPLACE FUNCTION pgwq_refuse_unprintable_payload() RETURNS trigger
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
DECLARE
  problem text := (pgwq_payload_text(NEW.payload)).problem;
BEGIN
  IF problem IS NOT NULL THEN
    RAISE EXCEPTION 'message refused: %', problem
      USING ERRCODE = 'check_violation', CONSTRAINT = 'messages_payload_printable',
            HINT = 'A delivery carries the payload as PostgreSQL prints it (payload::text).';
  END IF;
  RETURN NEW;
END;
$$;

CREATE OR REPLACE TRIGGER messages_payload_printable
  BEFORE INSERT OR UPDATE OF payload ON messages
  FOR EACH ROW
  WHEN (pg_column_size(NEW.payload) > 3640
        OR pg_column_compression(NEW.payload) IS NOT NULL)
  EXECUTE FUNCTION pgwq_refuse_unprintable_payload();

-- 6. Before each row inserted, or whose event_type changes, with an event_type that is not 1-128
-- characters of A-Z a-z 0-9 _ . : / - : refuse it, saying so (the CHECK's error would print the
-- whole row, payload included). The WHEN is checked without calling the function.
CREATE OR REPLACE FUNCTION pgwq_check_event_type() RETURNS trigger
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
BEGIN
  RAISE EXCEPTION 'message refused: event_type must be 1-128 characters of A-Z a-z 0-9 _ . : / - (got "%")',
    left(NEW.event_type, 200)
    USING ERRCODE = 'check_violation', CONSTRAINT = 'messages_event_type_check';
END;
$$;

CREATE OR REPLACE TRIGGER messages_check_event_type
  BEFORE INSERT OR UPDATE OF event_type ON messages
  FOR EACH ROW WHEN (NEW.event_type !~ '^[A-Za-z0-9_.:/-]{1,128}$')
  EXECUTE FUNCTION pgwq_check_event_type();

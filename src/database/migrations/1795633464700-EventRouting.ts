import { MigrationInterface, QueryRunner } from 'typeorm';
import {
  CLAIM_LINES as FUNCTIONS_CLAIM_LINES,
  CLAIMED_LINE_COLUMNS,
  headOfLines,
  pinned,
} from './1795633463950-DeliveryFunctions.js';
import {
  BUSY_ROW,
  RECORD_ATTEMPTS as LOCK_THEN_READ_RECORD,
} from './1795633464200-LockThenRead.js';
import { fanOut as leanerFanOut, LINE_UPSERT_CONFLICT } from './1795633464100-LeanerPublish.js';
import { boundedHeadOfLines } from './1795633464300-BoundedPayloads.js';
import { EVENT_TYPE_PATTERN } from './1795633464600-PublishByName.js';

/**
 * One entry of a webhook's event_types: an exact event type, or a prefix ending in `.*`
 * (`order.*` matches `order.created` and `order.refund.done`, not `order`).
 */
export const EVENT_TYPE_FILTER_PATTERN =
  '^([A-Za-z0-9_.:/-]{1,128}|[A-Za-z0-9_.:/-]{1,126}\\.\\*)$';

/** The most entries a webhook's event_types may have. */
export const MAX_EVENT_TYPE_FILTERS = 100;

/**
 * The CHECK of webhooks.event_types: NULL (everything), or 1 to 100 entries, each an exact type
 * or a prefix (EVENT_TYPE_FILTER_PATTERN). Joined by spaces they are checked by one expression,
 * once split again they must be as many as before (no entry holds a space).
 */
export const EVENT_TYPES_CHECK =
  `cardinality(event_types) BETWEEN 1 AND ${MAX_EVENT_TYPE_FILTERS} ` +
  `AND array_position(event_types, NULL) IS NULL ` +
  `AND cardinality(string_to_array(array_to_string(event_types, ' '), ' ')) = cardinality(event_types) ` +
  `AND array_to_string(event_types, ' ') ~ ` +
  `'^([A-Za-z0-9_.:/-]{1,128}|[A-Za-z0-9_.:/-]{1,126}\\.\\*)( ([A-Za-z0-9_.:/-]{1,128}|[A-Za-z0-9_.:/-]{1,126}\\.\\*))*$'`;

/**
 * Routing by event type, and the sequence each delivery follows on its webhook's line.
 *
 * Schema:
 * - webhooks.event_types text[]: NULL = every message; else exact types and `prefix.*` entries
 *   (EVENT_TYPES_CHECK).
 * - deliveries.previous_sequence bigint: the sequence of the delivery before this one on the same
 *   webhook line (webhook, partition), whatever its status; NULL for a line's first. Set by the
 *   fan-out, never changed (a redrive or replay sends the stored value again). The worker sends it
 *   as webhook-previous-sequence.
 * - messages_topic_event_type_idx (topic_id, event_type, id) WHERE event_type IS NOT NULL: a
 *   topic's messages of one type, and a webhook's deliveries of one type through them. Untyped
 *   messages add no entry.
 * - topics_name_pattern_idx (name text_pattern_ops): GET /topics?name_prefix=…, a typeahead over
 *   any number of topics, is one range scan whatever the database's collation (the unique
 *   topics_name_key finds one name; it serves LIKE 'prefix%' only under the C collation).
 * - messages_check_event_type: a BEFORE trigger whose WHEN lets through every valid row without
 *   calling its function, so a plain INSERT with a bad event_type gets an error that says what is
 *   allowed, instead of the CHECK's, which prints the whole row (payload included).
 *
 * Functions replaced (each the newest definition with the smallest change, commented):
 * - pgwq_fan_out: only webhooks whose event_types match get a delivery; each delivery gets its
 *   previous_sequence (sql/notify_trigger.sql, part 2).
 * - pgwq_claim_lines and pgwq_record_attempts: two more result columns for the head,
 *   previous_sequence and event_type (ClaimedLine). The record's keep path no longer moves a
 *   finished head to head + 1: with filters a line holds some of its partition's sequences only,
 *   so the next head is the line's next pending delivery (one index range scan, in the snapshot
 *   taken after the line's lock, so it sees every delivery committed on the line).
 */
export class EventRouting1795633464700 implements MigrationInterface {
  name = 'EventRouting1795633464700';

  public async up(queryRunner: QueryRunner): Promise<void> {
    const [{ schema }] = await queryRunner.query(`SELECT quote_ident(current_schema()) AS schema`);
    await queryRunner.query(`ALTER TABLE webhooks ADD COLUMN event_types text[]`);
    await queryRunner.query(
      `ALTER TABLE webhooks ADD CONSTRAINT webhooks_event_types_check CHECK (${EVENT_TYPES_CHECK})`,
    );
    await queryRunner.query(`ALTER TABLE deliveries ADD COLUMN previous_sequence bigint`);
    await queryRunner.query(`
CREATE INDEX IF NOT EXISTS "messages_topic_event_type_idx"
ON "messages" ("topic_id", "event_type", "id") WHERE event_type IS NOT NULL`);
    await queryRunner.query(
      `CREATE INDEX IF NOT EXISTS "topics_name_pattern_idx" ON "topics" ("name" text_pattern_ops)`,
    );
    await queryRunner.query(
      CHECK_EVENT_TYPE.replace('LANGUAGE plpgsql', `${pinned(schema)} LANGUAGE plpgsql`),
    );
    await queryRunner.query(CHECK_EVENT_TYPE_TRIGGER);
    await queryRunner.query(routedFanOut(schema));
    await replaceHeadFunctions(queryRunner, ROUTED_CLAIM_LINES, ROUTED_RECORD_ATTEMPTS);
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    const [{ schema }] = await queryRunner.query(`SELECT quote_ident(current_schema()) AS schema`);
    await replaceHeadFunctions(queryRunner, boundedClaimLines(), boundedRecordAttempts());
    await queryRunner.query(leanerFanOut(schema));
    await queryRunner.query(`DROP TRIGGER messages_check_event_type ON messages`);
    await queryRunner.query(`DROP FUNCTION pgwq_check_event_type`);
    await queryRunner.query(`DROP INDEX "messages_topic_event_type_idx"`);
    await queryRunner.query(`DROP INDEX "topics_name_pattern_idx"`);
    await queryRunner.query(`ALTER TABLE deliveries DROP COLUMN previous_sequence`);
    await queryRunner.query(`ALTER TABLE webhooks DROP COLUMN event_types`);
  }
}

/** Both functions' results change: CREATE OR REPLACE cannot change that. */
async function replaceHeadFunctions(
  queryRunner: QueryRunner,
  claim: string,
  record: string,
): Promise<void> {
  const [{ schema }] = await queryRunner.query(`SELECT quote_ident(current_schema()) AS schema`);
  await queryRunner.query(`DROP FUNCTION pgwq_claim_lines`);
  await queryRunner.query(`DROP FUNCTION pgwq_record_attempts`);
  for (const create of [claim, record]) {
    await queryRunner.query(
      create.replace('LANGUAGE plpgsql', `${pinned(schema)} LANGUAGE plpgsql`),
    );
  }
}

/** sql/notify_trigger.sql, part 6. */
const CHECK_EVENT_TYPE = `
CREATE FUNCTION pgwq_check_event_type() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'message refused: event_type must be 1-128 characters of A-Z a-z 0-9 _ . : / - (got "%")',
    left(NEW.event_type, 200)
    USING ERRCODE = 'check_violation', CONSTRAINT = 'messages_event_type_check';
END;
$$`;

const CHECK_EVENT_TYPE_TRIGGER = `
CREATE TRIGGER messages_check_event_type
  BEFORE INSERT OR UPDATE OF event_type ON messages
  FOR EACH ROW WHEN (NEW.event_type !~ '${EVENT_TYPE_PATTERN}')
  EXECUTE FUNCTION pgwq_check_event_type()`;

// ---------------------------------------------------------------------------------------------
// The head functions: what they were (BoundedPayloads, BoundedRecord) and what they become.

/** The result columns a head gains here, after body_problem (ClaimedLine). */
const ROUTING_COLUMNS = `,\n  previous_sequence text,\n  event_type text`;

/** pgwq_claim_lines as BoundedPayloads left it. */
function boundedClaimLines(): string {
  const head = headOfLines('claimed');
  const columns = `RETURNS TABLE (${CLAIMED_LINE_COLUMNS})`;
  if (![head, columns].every((part) => FUNCTIONS_CLAIM_LINES.includes(part))) {
    throw new Error('pgwq_claim_lines has changed');
  }
  return FUNCTIONS_CLAIM_LINES.replace(head, () => boundedHeadOfLines('claimed')).replace(
    columns,
    `RETURNS TABLE (${CLAIMED_LINE_COLUMNS},\n  body_problem text)`,
  );
}

/** pgwq_record_attempts as BoundedRecord left it. */
function boundedRecordAttempts(): string {
  const head = headOfLines('line');
  const columns = `${CLAIMED_LINE_COLUMNS})`;
  const busy = `RETURN QUERY SELECT ${BUSY_ROW};`;
  if (![head, columns, busy].every((part) => LOCK_THEN_READ_RECORD.includes(part))) {
    throw new Error('pgwq_record_attempts has changed');
  }
  return LOCK_THEN_READ_RECORD.replace(head, () => boundedHeadOfLines('line'))
    .replace(columns, () => `${CLAIMED_LINE_COLUMNS},\n  body_problem text)`)
    .replace(busy, () => `RETURN QUERY SELECT ${BUSY_ROW}, NULL::text;`);
}

/**
 * boundedHeadOfLines(`lines`) with two last columns: the head delivery's previous_sequence (the
 * webhook-previous-sequence header; "" is sent for NULL) and its message's event_type (the
 * webhook-event-type header, sent when not NULL). Both from rows the head already joins.
 */
export function routedHeadOfLines(lines: string): string {
  const head = boundedHeadOfLines(lines);
  const lastColumn = 'b.problem AS body_problem';
  if (!head.includes(lastColumn)) throw new Error('boundedHeadOfLines has changed');
  return head.replace(
    lastColumn,
    `${lastColumn},\n       d.previous_sequence::text AS previous_sequence,\n       m.event_type`,
  );
}

/** pgwq_claim_lines (newest: BoundedPayloads) returning routedHeadOfLines. */
export const ROUTED_CLAIM_LINES = (() => {
  const bounded = boundedClaimLines();
  const head = boundedHeadOfLines('claimed');
  const columns = 'body_problem text)';
  if (![head, columns].every((part) => bounded.includes(part))) {
    throw new Error('pgwq_claim_lines has changed');
  }
  return bounded
    .replace(head, () => routedHeadOfLines('claimed'))
    .replace(columns, () => `body_problem text${ROUTING_COLUMNS})`);
})();

/**
 * pgwq_record_attempts (newest: BoundedRecord) returning routedHeadOfLines, and moving a finished
 * head to the line's next pending delivery instead of head + 1.
 *
 * `next_up` is the line's next pending delivery after the head being recorded (req.head, which
 * the fence makes the line's head), found by one range scan of deliveries_line_sequence_key. The
 * statement runs in a snapshot taken after the line's row lock (LockThenRead), and a producer
 * holds that lock from its delivery's insert until its commit, so every delivery of the line is
 * either visible here or not yet written: and one not yet written has a sequence above the
 * line's tail, to which the producer's line upsert then attends (an idle line takes it as its
 * head). So "is there more?" is "is there a next pending delivery?", and the head moves to it,
 * past the sequences the line never got (filtered out for this webhook) and past delivered or
 * dead ones (a rewind's slices in progress), or to tail + 1 (idle) when there is none.
 * Every `l.head_sequence + 1` of the old statement becomes `coalesce(nx.sequence,
 * l.tail_sequence + 1)` and the next head's publication time is nx.created_at.
 */
export const ROUTED_RECORD_ATTEMPTS = (() => {
  const bounded = boundedRecordAttempts();
  const parts = {
    head: boundedHeadOfLines('line'),
    columns: 'body_problem text)',
    busy: `RETURN QUERY SELECT ${BUSY_ROW}, NULL::text;`,
    line: '  ), line AS (\n    UPDATE delivery_lines AS l',
    from: '    FROM hook AS h\n    WHERE l.webhook_id = req.webhook_id',
    createdAt: `coalesce(
            (SELECT d.created_at FROM deliveries d
             WHERE d.webhook_id = req.webhook_id AND d.partition_key = req.partition_key
               AND d.sequence = l.head_sequence + 1),
            now())`,
  };
  if (!Object.values(parts).every((part) => bounded.includes(part))) {
    throw new Error('pgwq_record_attempts has changed');
  }
  const routed = bounded
    .replace(parts.head, () => routedHeadOfLines('line'))
    .replace(parts.columns, () => `body_problem text${ROUTING_COLUMNS})`)
    .replace(
      parts.busy,
      () => `RETURN QUERY SELECT ${BUSY_ROW}, NULL::text, NULL::text, NULL::text;`,
    )
    .replace(
      parts.line,
      () => `  ), next_up AS (
    -- The line's next pending delivery after the head (EventRouting: not head + 1).
    SELECT d.sequence, d.created_at FROM deliveries d
    WHERE d.webhook_id = req.webhook_id AND d.partition_key = req.partition_key
      AND d.sequence > req.head AND d.status = 'pending'
    ORDER BY d.sequence
    LIMIT 1
${parts.line}`,
    )
    .replace(parts.from, () =>
      parts.from.replace('FROM hook AS h', 'FROM hook AS h\n    LEFT JOIN next_up AS nx ON true'),
    )
    .replace(parts.createdAt, () => 'coalesce(nx.created_at, now())')
    .replaceAll('l.head_sequence + 1', 'coalesce(nx.sequence, l.tail_sequence + 1)');
  if (routed.includes('head_sequence + 1')) throw new Error('a head + 1 is left');
  return routed;
})();

// ---------------------------------------------------------------------------------------------
// The fan-out.

/**
 * Whether webhook `w`'s event_types let a message of type `eventType` through: no list lets
 * everything through; a list lets through a typed message whose type is one of its entries, or
 * starts with an entry's prefix (`order.*` → `order.`). An untyped message passes no list.
 */
export const matches = (
  eventType: string,
) => `(w.event_types IS NULL OR (${eventType} IS NOT NULL AND EXISTS (
        SELECT 1 FROM unnest(w.event_types) AS f (entry)
        WHERE f.entry = ${eventType}
           OR (right(f.entry, 2) = '.*' AND starts_with(${eventType}, left(f.entry, -1))))))`;

/**
 * The previous_sequence of a delivery of sequence `sequence` on line (`webhook`, `partitionKey`):
 * the line's tail, the highest sequence fanned out to it so far, or NULL for a new line. (A
 * message inserted by a trigger inside another insert on the same partition is fanned out before
 * the outer one, with a higher number: for the outer one the tail is then not below it, and the
 * line's highest delivery below it is looked up instead.) Producers of one partition take turns
 * on its counter row (part 1) until they commit, so the tail read here is the one the previous
 * producer left, and no other writer changes a line's tail.
 */
const previousOnLine = (webhook: string, partitionKey: string, sequence: string) => `(
        SELECT CASE
                 WHEN l.tail_sequence < ${sequence} THEN l.tail_sequence
                 ELSE (SELECT max(d.sequence) FROM deliveries d
                       WHERE d.webhook_id = ${webhook} AND d.partition_key = ${partitionKey}
                         AND d.sequence < ${sequence})
               END
        FROM delivery_lines l
        WHERE l.webhook_id = ${webhook} AND l.partition_key = ${partitionKey})`;

/** The fan-out with routing and previous_sequence: sql/notify_trigger.sql, part 2. */
export const routedFanOut = (schema: string) => `
-- 2. After each statement, over the rows really inserted (the transition table): the
-- partitions' counters moved up to their highest new sequence, one pending delivery per
-- (message, webhook the topic has now whose event_types match), the lines' heads and tails, and
-- one NOTIFY.
--
-- Routing: a webhook with event_types NULL gets every message; one with a list gets the
-- messages whose event_type is an entry of it or starts with an entry's prefix (an entry
-- 'order.*' matches 'order.created' and 'order.refund.done'); an untyped message goes only to
-- webhooks without a list. The list is read from the key-share locked webhook row, as the status
-- is (below): a PATCH of event_types locks the row FOR UPDATE, so a producer in flight waits for
-- it and then fans out by the list it committed; a list change applies to every message
-- published after it. A webhook whose list does not match gets nothing, not even a line: a
-- message that matches no webhook costs what a message on a topic without webhooks costs, plus
-- reading the topic's webhook rows.
--
-- Each delivery gets previous_sequence, the sequence of the delivery before it on its line
-- (webhook, partition), whatever that one's status, NULL for a line's first: the line's tail
-- before this statement, or the previous message of the same line in this statement. With
-- filters a line holds some of its partition's sequences only; the worker sends this as
-- webhook-previous-sequence, so a receiver tells a message it was never meant to get (no gap)
-- from one it missed.
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
  msg_event_type text;
BEGIN
  SELECT count(*), min(n.id), min(n.topic_id), min(n.partition_key), min(n.sequence),
         min(n.event_type)
  INTO inserted, msg_id, msg_topic_id, msg_partition_key, msg_sequence, msg_event_type
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

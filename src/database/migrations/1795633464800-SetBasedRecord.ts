import { MigrationInterface, QueryRunner } from 'typeorm';
import { pinned } from './1795633463950-DeliveryFunctions.js';
import { mannersHeadOfLines, mannersRecordAttempts } from './1795633464750-WebhookManners.js';

/**
 * pgwq_record_attempts records a group of results in two statements, not two per result.
 *
 * WebhookManners' definition runs a loop with a statement or two per attempt (lock, then write
 * and read), and each statement pays its executor start-up for a plan of a dozen relations: that,
 * not the rows written, was most of the record's cost, and a group commit of ten results paid it
 * ten times. For a group of two or more, while no webhook has limits (webhook_limits is empty)
 * and the group names each line once, the function now:
 *
 * 1. locks the group's lines in key order, FOR NO KEY UPDATE SKIP LOCKED, in one statement;
 * 2. then, in a statement of its own and so in a snapshot taken after those locks (LockThenRead:
 *    a producer's delivery committed before we got its line is seen by the next_up read), writes
 *    every locked line, delivery and attempt and reads every kept line's next head, set-based.
 *
 * Each rule is the loop's, column for column: the same fences (token AND head), the same keep
 * rule (the next pending delivery, EventRouting's next_up), rewinds, blocking dead letters,
 * throttling; `busy` for a line someone else holds; the same diagnostics when not fenced. A lone
 * result (a hot partition's, or one sent again alone to wait for its line) costs less in the
 * loop, whose plan is smaller; so does a group with limits or naming a line twice.
 */
export class SetBasedRecord1795633464800 implements MigrationInterface {
  name = 'SetBasedRecord1795633464800';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await replaceFunction(queryRunner, setBasedRecordAttempts());
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await replaceFunction(queryRunner, mannersRecordAttempts());
  }
}

/**
 * Replaces an existing function by the CREATE FUNCTION statement of a migration's definition,
 * with its search_path pinned to the queue's schema as every function of ours.
 */
export async function replaceFunction(queryRunner: QueryRunner, create: string): Promise<void> {
  const [{ schema }] = await queryRunner.query(`SELECT quote_ident(current_schema()) AS schema`);
  const replace = create.replace('CREATE FUNCTION', 'CREATE OR REPLACE FUNCTION');
  if (replace === create) throw new Error(`not a CREATE FUNCTION: ${create.slice(0, 60)}`);
  await queryRunner.query(replace.replace('LANGUAGE', `${pinned(schema)} LANGUAGE`));
}

/** The group's requests, numbered from 1 in the order of the arrays (`nth`). */
const REQUESTS = `unnest($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) WITH ORDINALITY
    AS r (webhook_id, partition_key, lease_token, head, outcome, delay, delivery_id, attempt,
          status_code, error, started_at, duration_ms, response_body, keep, nth)`;

/**
 * Planner settings for a function's statements, in force until the function returns (a function
 * with a SET clause, as all of ours, undoes set_config(…, true) at its end). Their plans must
 * find each line, delivery and head by its key whatever the tables' statistics say: planned on
 * small or fresh tables, the group's lock read delivery_lines whole and its write joined on a
 * hash, both growing with the table's dead versions (in instructions per result, under callgrind:
 * 2.2 million for a group of ten, against 0.7 million planned this way). And planned once: the
 * plan cache, comparing estimates, would plan the write afresh on every call (0.9 ms measured).
 */
export const KEYED_PLANNING = `
  PERFORM set_config('plan_cache_mode', 'force_generic_plan', true),
          set_config('enable_seqscan', 'off', true),
          set_config('enable_hashjoin', 'off', true),
          set_config('enable_mergejoin', 'off', true);`;

/**
 * The lines of the group that this call can lock, in key order, skipping those someone else holds
 * (a group never waits for a line: its result comes back busy, and goes again alone, waiting):
 * `nth` of each.
 */
const LOCK_LINES = `
  locked := ARRAY(
    SELECT r.nth
    FROM unnest($1, $2) WITH ORDINALITY AS r (webhook_id, partition_key, nth)
    JOIN (
      SELECT l.webhook_id, l.partition_key FROM delivery_lines l
      WHERE (l.webhook_id, l.partition_key) IN (SELECT * FROM unnest($1, $2))
      ORDER BY l.webhook_id, l.partition_key
      FOR NO KEY UPDATE SKIP LOCKED
    ) AS k ON k.webhook_id = r.webhook_id AND k.partition_key = r.partition_key
  );`;

/** The loop's "is there a next head to keep the line for?" test, for request r and line l. */
const HAS_NEXT = `coalesce(nx.sequence, l.tail_sequence + 1) <= l.tail_sequence`;

const SET_BASED = `
  RETURN QUERY
  WITH req AS (
    SELECT * FROM ${REQUESTS}
  ), mine AS MATERIALIZED (
    -- The locked lines' requests, with their webhooks: materialized, so that the line update
    -- below finds each line by its primary key whatever the tables' statistics say.
    SELECT r.*, h.status = 'active' AS active, h.on_exhausted = 'block' AS blocks,
           h.failing_since IS NOT NULL AS webhook_failing
    FROM req AS r
    JOIN webhooks AS h ON h.id = r.webhook_id
    WHERE r.nth = ANY(locked)
  ), line AS (
    UPDATE delivery_lines AS l
    SET head_sequence = CASE
          WHEN r.outcome IN ('pending', 'throttled') OR (r.outcome = 'dead' AND r.blocks)
            OR l.rewind_to <= l.head_sequence THEN l.head_sequence
          ELSE coalesce(nx.sequence, l.tail_sequence + 1)
        END,
        blocked = r.outcome = 'dead' AND r.blocks AND coalesce(l.rewind_to > l.head_sequence, true),
        next_attempt_at = CASE
          WHEN r.outcome = 'dead' AND r.blocks AND coalesce(l.rewind_to > l.head_sequence, true)
            THEN NULL
          WHEN l.rewind_to <= l.head_sequence THEN now()
          WHEN r.outcome IN ('pending', 'throttled') THEN now() + make_interval(secs => r.delay)
          WHEN l.rewind_to IS NOT NULL THEN now()
          WHEN ${HAS_NEXT} AND r.keep AND r.active
            THEN clock_timestamp() + make_interval(secs => $15 / 1000)
          WHEN ${HAS_NEXT} THEN now()
          ELSE NULL
        END,
        lease_token = CASE
          WHEN r.outcome = 'delivered' OR (r.outcome = 'dead' AND NOT r.blocks) THEN
            CASE
              WHEN ${HAS_NEXT} AND r.keep AND r.active AND l.rewind_to IS NULL
                THEN l.lease_token
            END
        END,
        head_created_at = CASE
          WHEN r.outcome IN ('pending', 'throttled') OR (r.outcome = 'dead' AND r.blocks)
            OR l.rewind_to IS NOT NULL
            THEN l.head_created_at
          WHEN ${HAS_NEXT} THEN coalesce(nx.created_at, now())
        END
    FROM mine AS r
    LEFT JOIN LATERAL (
      -- The line's next pending delivery after the head (EventRouting: not head + 1).
      SELECT d.id, d.sequence, d.created_at FROM deliveries d
      WHERE d.webhook_id = r.webhook_id AND d.partition_key = r.partition_key
        AND d.sequence > r.head AND d.status = 'pending'
      ORDER BY d.sequence
      LIMIT 1
    ) AS nx ON true
    WHERE l.webhook_id = r.webhook_id AND l.partition_key = r.partition_key
      AND l.lease_token = r.lease_token AND l.head_sequence = r.head
    RETURNING r.nth, l.webhook_id, l.partition_key, l.topic_id, l.head_sequence, l.lease_token,
              coalesce(l.rewind_to <= r.head, false) AS rewound,
              r.webhook_failing, nx.id AS next_delivery_id
  ), delivery AS (
    UPDATE deliveries AS d
    SET status = CASE
          WHEN c.rewound OR r.outcome = 'throttled' THEN 'pending' ELSE r.outcome
        END,
        attempts = CASE WHEN c.rewound THEN 0 ELSE r.attempt END,
        throttled_attempts = CASE
          WHEN c.rewound THEN 0
          WHEN r.outcome = 'throttled' THEN d.throttled_attempts + 1
          ELSE d.throttled_attempts
        END,
        throttled_since = CASE
          WHEN c.rewound THEN NULL
          WHEN r.outcome = 'throttled' THEN coalesce(d.throttled_since, now())
          -- Past 24 h (the worker's THROTTLING_LIMIT_SECONDS) throttling answers are failures,
          -- and the run they continue is not over: the next one is a failure too.
          WHEN r.outcome = 'pending' AND r.status_code IN (429, 503)
            AND d.throttled_since <= now() - interval '24 hours'
            THEN d.throttled_since
        END,
        next_attempt_at = CASE
          WHEN c.rewound THEN now()
          WHEN r.outcome IN ('pending', 'throttled') THEN now() + make_interval(secs => r.delay)
        END,
        last_status_code = r.status_code,
        last_error = r.error,
        delivered_at = CASE WHEN r.outcome = 'delivered' AND NOT c.rewound THEN now() END,
        dead_at = CASE WHEN r.outcome = 'dead' AND NOT c.rewound THEN now() END
    FROM line AS c
    JOIN req AS r ON r.nth = c.nth
    WHERE d.id = r.delivery_id
    RETURNING d.id
  ), attempt AS (
    INSERT INTO delivery_attempts
      (delivery_id, attempt, started_at, duration_ms, status_code, error, response_body)
    SELECT r.delivery_id, r.attempt, r.started_at, r.duration_ms, r.status_code, r.error,
           r.response_body
    FROM delivery AS x
    JOIN req AS r ON r.delivery_id = x.id
    RETURNING delivery_id
  ), head AS (
${headOfKeptLines()}
    WHERE c.lease_token IS NOT NULL
  )
  SELECT r.nth::integer,
         coalesce(s.busy, false),
         CASE WHEN NOT coalesce(s.busy, false) THEN c.nth IS NOT NULL END AS fenced,
         CASE WHEN NOT coalesce(s.busy, false) THEN
           (SELECT count(*) FROM attempt a WHERE a.delivery_id = r.delivery_id)::int
         END AS recorded,
         s.still_held,
         s.recorded_before,
         s.line_exists,
         c.webhook_failing,
         n.*
  FROM req AS r
  LEFT JOIN line AS c ON c.nth = r.nth
  -- Not fenced: busy (someone else holds the line), or why not (the loop's diagnostics).
  LEFT JOIN LATERAL (
    SELECT e.busy,
           CASE WHEN NOT e.busy THEN EXISTS (
             SELECT 1 FROM delivery_lines
             WHERE webhook_id = r.webhook_id AND partition_key = r.partition_key
               AND lease_token = r.lease_token
           ) END AS still_held,
           CASE WHEN NOT e.busy THEN EXISTS (
             SELECT 1 FROM delivery_attempts
             WHERE delivery_id = r.delivery_id AND attempt = r.attempt
               AND started_at = r.started_at
           ) END AS recorded_before,
           CASE WHEN NOT e.busy THEN e.line_exists END AS line_exists
    FROM (
      SELECT x.line_exists AND NOT r.nth = ANY(locked) AS busy, x.line_exists
      FROM (
        SELECT r.nth = ANY(locked) OR EXISTS (
          SELECT 1 FROM delivery_lines
          WHERE webhook_id = r.webhook_id AND partition_key = r.partition_key
        ) AS line_exists
        OFFSET 0
      ) AS x
      OFFSET 0
    ) AS e
  ) AS s ON c.nth IS NULL
  LEFT JOIN head AS n ON n.webhook_id = c.webhook_id AND n.partition_key = c.partition_key
  ORDER BY r.webhook_id, r.partition_key; -- the loop's order: the lines' lock order
  RETURN;`;

/**
 * The kept lines' next heads, as WebhookManners reads them, but each head delivery found by the id
 * the line's update found it by (next_up, pending, in this statement's snapshot): a primary-key
 * lookup that no table's statistics can turn into a scan of the webhook's pending deliveries.
 */
export function headOfKeptLines(): string {
  const head = mannersHeadOfLines('line');
  const join = `LEFT JOIN deliveries d
  ON d.webhook_id = c.webhook_id
 AND d.partition_key = c.partition_key
 AND d.sequence = c.head_sequence
 AND d.status = 'pending'`;
  if (head.split(join).length !== 2) throw new Error('mannersHeadOfLines has changed');
  return head.replace(join, 'LEFT JOIN deliveries d ON d.id = c.next_delivery_id');
}

/** WebhookManners' function with the set-based path first. */
export function setBasedRecordAttempts(): string {
  const base = mannersRecordAttempts();
  const declare = `DECLARE\n  req record;\n`;
  const begin = `BEGIN\nFOR req IN`;
  for (const part of [declare, begin]) {
    if (base.split(part).length !== 2) throw new Error(`pgwq_record_attempts has changed: ${part}`);
  }
  return base
    .replace(declare, () => `${declare}  locked bigint[];\n`)
    .replace(
      begin,
      () => `BEGIN
-- The set-based path (see the migration SetBasedRecord): a group, no limits, each line once.
IF cardinality($1) > 1 AND NOT limits_exist
    AND (SELECT count(DISTINCT (w, p)) FROM unnest($1, $2) AS x (w, p)) = cardinality($1) THEN${KEYED_PLANNING}${LOCK_LINES}${SET_BASED}
END IF;
FOR req IN`,
    );
}

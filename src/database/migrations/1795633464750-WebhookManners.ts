import { MigrationInterface, QueryRunner } from 'typeorm';
import { CLAIMED_LINE_COLUMNS, pinned } from './1795633463950-DeliveryFunctions.js';
import { BUSY_ROW } from './1795633464200-LockThenRead.js';
import {
  ROUTED_CLAIM_LINES,
  ROUTED_RECORD_ATTEMPTS,
  routedHeadOfLines,
} from './1795633464700-EventRouting.js';

/**
 * Every endpoint its own manners: per-webhook settings, limits enforced across all workers,
 * throttling that does not use the retry budget.
 *
 * Tables and columns:
 * - webhooks: headers (jsonb, static headers sent on every attempt), max_in_flight,
 *   rate_limit_per_second, max_retries, backoff_factor (NULL = the global setting),
 *   disabled_detail (what a worker says when it disables the webhook, e.g. the refused address).
 * - deliveries: throttled_since (when the head's current run of throttling answers began, NULL
 *   when it is not being throttled) and throttled_attempts (its attempts that were throttling
 *   answers: they are in `attempts` and in the attempt log, but not in the retry budget).
 * - webhook_limits: one row per webhook with max_in_flight or rate_limit_per_second, written by
 *   the API with the webhook: its token bucket (tokens, refilled_at) and two hints for the claim
 *   (tokens_at: when the next token comes; full_until: it had max_in_flight attempts running).
 *   A webhook without limits has no row, and while no webhook has one the claim does exactly
 *   what it did before (one probe of an empty table).
 * - delivery_lines.limited: the line's lease is counted against max_in_flight (set by the claim
 *   for webhooks with max_in_flight), with the partial index delivery_lines_limited_leased_idx
 *   holding exactly those leased lines: lines of webhooks without limits never enter it.
 *
 * Functions replaced (DROP + CREATE: their result gains columns): pgwq_claim_lines and
 * pgwq_record_attempts, each built below from the previous definition (EventRouting's: its
 * columns previous_sequence and event_type, its record moving a finished head to the line's next
 * pending delivery) with the changes marked "manners"; new: pgwq_bucket_tokens. down() puts
 * EventRouting's definitions back.
 */
export class WebhookManners1795633464750 implements MigrationInterface {
  name = 'WebhookManners1795633464750';

  public async up(queryRunner: QueryRunner): Promise<void> {
    const [{ schema }] = await queryRunner.query(`SELECT quote_ident(current_schema()) AS schema`);
    for (const statement of SCHEMA_UP) await queryRunner.query(statement);
    await queryRunner.query(`DROP FUNCTION pgwq_claim_lines`);
    await queryRunner.query(`DROP FUNCTION pgwq_record_attempts`);
    for (const create of [BUCKET_TOKENS, mannersClaimLines(), mannersRecordAttempts()]) {
      await queryRunner.query(create.replace('LANGUAGE', `${pinned(schema)} LANGUAGE`));
    }
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    const [{ schema }] = await queryRunner.query(`SELECT quote_ident(current_schema()) AS schema`);
    await queryRunner.query(`DROP FUNCTION pgwq_claim_lines`);
    await queryRunner.query(`DROP FUNCTION pgwq_record_attempts`);
    await queryRunner.query(`DROP FUNCTION pgwq_bucket_tokens`);
    for (const create of [ROUTED_CLAIM_LINES, ROUTED_RECORD_ATTEMPTS]) {
      await queryRunner.query(create.replace('LANGUAGE', `${pinned(schema)} LANGUAGE`));
    }
    for (const statement of SCHEMA_DOWN) await queryRunner.query(statement);
  }
}

const SCHEMA_UP = [
  `ALTER TABLE webhooks
     ADD COLUMN headers jsonb,
     ADD COLUMN max_in_flight integer,
     ADD COLUMN rate_limit_per_second double precision,
     ADD COLUMN max_retries integer,
     ADD COLUMN backoff_factor double precision,
     ADD COLUMN disabled_detail text`,
  `ALTER TABLE webhooks ADD CONSTRAINT webhooks_max_in_flight_check
     CHECK (max_in_flight BETWEEN 1 AND 10000)`,
  `ALTER TABLE webhooks ADD CONSTRAINT webhooks_rate_limit_check
     CHECK (rate_limit_per_second >= 0.01 AND rate_limit_per_second <= 10000)`,
  `ALTER TABLE webhooks ADD CONSTRAINT webhooks_max_retries_check
     CHECK (max_retries BETWEEN 1 AND 1000)`,
  `ALTER TABLE webhooks ADD CONSTRAINT webhooks_backoff_factor_check
     CHECK (backoff_factor >= 0.001 AND backoff_factor <= 1000)`,
  `ALTER TABLE webhooks ADD CONSTRAINT webhooks_headers_check
     CHECK (jsonb_typeof(headers) = 'object')`,
  `ALTER TABLE deliveries
     ADD COLUMN throttled_since timestamptz,
     ADD COLUMN throttled_attempts integer NOT NULL DEFAULT 0`,
  `ALTER TABLE delivery_lines ADD COLUMN limited boolean NOT NULL DEFAULT false`,
  `CREATE INDEX delivery_lines_limited_leased_idx ON delivery_lines (webhook_id)
     WHERE lease_token IS NOT NULL AND limited`,
  `CREATE TABLE webhook_limits (
     webhook_id integer NOT NULL,
     tokens double precision NOT NULL,
     refilled_at timestamptz NOT NULL DEFAULT clock_timestamp(),
     tokens_at timestamptz,
     full_until timestamptz,
     CONSTRAINT webhook_limits_pkey PRIMARY KEY (webhook_id),
     CONSTRAINT webhook_limits_webhook_id_fkey FOREIGN KEY (webhook_id)
       REFERENCES webhooks (id) ON DELETE CASCADE
   )`,
];

const SCHEMA_DOWN = [
  `DROP TABLE webhook_limits`,
  `DROP INDEX delivery_lines_limited_leased_idx`,
  `ALTER TABLE delivery_lines DROP COLUMN limited`,
  `ALTER TABLE deliveries DROP COLUMN throttled_since, DROP COLUMN throttled_attempts`,
  `ALTER TABLE webhooks
     DROP COLUMN headers, DROP COLUMN max_in_flight, DROP COLUMN rate_limit_per_second,
     DROP COLUMN max_retries, DROP COLUMN backoff_factor, DROP COLUMN disabled_detail`,
];

/**
 * pgwq_bucket_tokens(tokens, refilled_at, rate, at): the tokens a webhook's bucket holds at `at`.
 * It fills at `rate` per second up to max(1, rate): after a quiet second, up to one second's worth
 * of attempts (at least one) may start at once; over any T seconds at most max(1, rate) + rate × T
 * start. A fractional rate (0.5) is one attempt every 2 seconds.
 */
const BUCKET_TOKENS = `
CREATE FUNCTION pgwq_bucket_tokens(
  tokens double precision, refilled_at timestamptz, rate double precision, at timestamptz)
RETURNS double precision
IMMUTABLE LANGUAGE sql AS $fn$
  SELECT least(greatest(1, rate),
               tokens + rate * greatest(0, extract(epoch FROM at - refilled_at)::float8))
$fn$`;

/** How long a claim that found a webhook at max_in_flight leaves its lines out of the walk. */
const FULL_HOLD = `interval '250 milliseconds'`;

/** manners: the columns the worker needs for a head's per-webhook settings and throttling. */
const MANNERS_COLUMNS = `,
  headers jsonb,
  max_retries integer,
  backoff_factor double precision,
  throttled_attempts integer,
  throttled_seconds double precision`;

/** The columns of a head as EventRouting left them (its last two: previous_sequence, event_type). */
const LINE_COLUMNS = `${CLAIMED_LINE_COLUMNS},\n  body_problem text,\n  previous_sequence text,\n  event_type text`;

/**
 * routedHeadOfLines with the manners columns after its last: the webhook's static headers, its
 * retry settings, and how the head has been throttled (throttled_seconds: for how long; NULL when
 * not).
 */
export function mannersHeadOfLines(lines: string): string {
  const head = routedHeadOfLines(lines);
  const last = 'd.previous_sequence::text AS previous_sequence,\n       m.event_type\n';
  if (head.split(last).length !== 2) throw new Error('routedHeadOfLines has changed');
  return head.replace(
    last,
    () => `${last.trimEnd()},
       w.headers,
       w.max_retries,
       w.backoff_factor,
       d.throttled_attempts,
       extract(epoch FROM now() - d.throttled_since)::float8 AS throttled_seconds\n`,
  );
}

/** The statement of the previous pgwq_claim_lines (between RETURN QUERY and END). */
function previousClaimStatement(): string {
  const match = /RETURN QUERY\n([\s\S]*);\nEND\n\$fn\$$/.exec(ROUTED_CLAIM_LINES);
  if (!match) throw new Error('pgwq_claim_lines has changed');
  return match[1];
}

/**
 * pgwq_claim_lines, manners (DESIGN §10: max_in_flight and rate_limit_per_second, across all
 * workers). Same parameters and rules as before (DeliveryFunctions, BoundedPayloads,
 * EventRouting), its rows with the manners columns after EventRouting's.
 *
 * No webhook has limits (webhook_limits is empty): the previous statement, unchanged.
 *
 * Otherwise four steps, each a statement of its own and so each in a snapshot taken after the
 * steps before it (a VOLATILE function takes one per statement):
 * 1. The walk, as before, locks the due lines (SKIP LOCKED) within each webhook's room in this
 *    worker. It passes over the webhooks whose bucket says they have no room now (tokens_at: no
 *    token before then; full_until: a claim found max_in_flight attempts running just now), so
 *    their lines do not take the places of other webhooks' in the LIMIT. These are hints only:
 *    step 3 decides.
 * 2. The buckets of the webhooks with limits among those lines, locked with SKIP LOCKED: one
 *    claim at a time grants a webhook's room, and a bucket another claim or a record holds is
 *    not waited for (this claim takes none of that webhook's lines; the holder is serving it).
 * 3. With the buckets locked, in a fresh snapshot: each webhook's room is the least of the lines
 *    it wants, its whole tokens (refilled to now, pgwq_bucket_tokens) and max_in_flight minus
 *    its leased lines. The count sees every lease of every other claim: a claim leases a limited
 *    webhook's lines only while it holds the bucket, and this snapshot was taken after we got
 *    it, so after their commits. A lease that lapsed is not counted (next_attempt_at <= now():
 *    its line is due and its worker has given it up); a record that keeps a line keeps its
 *    lease, so a kept line stays counted. The tokens taken are spent and the hints set.
 * 4. The claim's UPDATE of the lines granted (and of every line of webhooks without limits),
 *    marking `limited` the leases counted against max_in_flight, then the heads.
 * The lines locked in step 1 and not granted are unlocked at commit, untouched.
 */
export function mannersClaimLines(): string {
  const previous = previousClaimStatement();
  const head = routedHeadOfLines('claimed');
  const columns = `RETURNS TABLE (${LINE_COLUMNS})`;
  if (![head, columns].every((part) => ROUTED_CLAIM_LINES.includes(part))) {
    throw new Error('pgwq_claim_lines has changed');
  }
  if (!previous.includes(head)) throw new Error('pgwq_claim_lines has changed');
  const fast = previous.replace(head, () => mannersHeadOfLines('claimed'));
  return `
CREATE FUNCTION pgwq_claim_lines(integer, double precision, integer[], integer[], integer[], integer)
RETURNS TABLE (${LINE_COLUMNS}${MANNERS_COLUMNS})
LANGUAGE plpgsql AS $fn$
#variable_conflict use_column
DECLARE
  held integer[];
  due_ids integer[];
  due_keys text[];
  limited_ids integer[];
  locked_ids integer[];
  grant_ids integer[] := '{}';
  grants integer[] := '{}';
  counted_ids integer[] := '{}';
BEGIN
IF NOT EXISTS (SELECT 1 FROM webhook_limits) THEN
  RETURN QUERY
  ${fast};
  RETURN;
END IF;
-- manners, 1: the walk.
held := ARRAY(
  SELECT b.webhook_id FROM webhook_limits b WHERE b.tokens_at > now() OR b.full_until > now());
WITH due AS (
  SELECT webhook_id, partition_key, next_attempt_at
  FROM delivery_lines
  WHERE next_attempt_at <= now()
    AND webhook_id <> ALL($3)
    AND webhook_id <> ALL(held)
    AND (
      SELECT w.deleted_at IS NULL AND w.status = 'active'
      FROM webhooks w WHERE w.id = delivery_lines.webhook_id
    )
  ORDER BY next_attempt_at
  LIMIT $1
  FOR UPDATE SKIP LOCKED
), within_cap AS (
  SELECT ranked.webhook_id, ranked.partition_key, ranked.next_attempt_at
  FROM (
    SELECT webhook_id, partition_key, next_attempt_at,
           row_number() OVER (PARTITION BY webhook_id ORDER BY next_attempt_at) AS nth
    FROM due
  ) AS ranked
  LEFT JOIN unnest($4, $5) AS room (webhook_id, lines)
    ON room.webhook_id = ranked.webhook_id
  WHERE ranked.nth <= coalesce(room.lines, $6)
)
SELECT coalesce(array_agg(c.webhook_id ORDER BY c.next_attempt_at), '{}'),
       coalesce(array_agg(c.partition_key ORDER BY c.next_attempt_at), '{}')
INTO due_ids, due_keys
FROM within_cap AS c;
limited_ids := ARRAY(SELECT b.webhook_id FROM webhook_limits b WHERE b.webhook_id = ANY(due_ids));
IF cardinality(limited_ids) > 0 THEN
  -- manners, 2: the buckets.
  SELECT coalesce(array_agg(k.webhook_id), '{}') INTO locked_ids
  FROM (
    SELECT b.webhook_id FROM webhook_limits b
    WHERE b.webhook_id = ANY(limited_ids)
    ORDER BY b.webhook_id
    FOR UPDATE SKIP LOCKED
  ) AS k;
  -- manners, 3: the rooms, in a snapshot taken after the buckets' locks.
  WITH clock AS (
    SELECT clock_timestamp() AS at
  ), wanted AS (
    SELECT u.webhook_id, count(*)::int AS n
    FROM unnest(due_ids) AS u (webhook_id)
    WHERE u.webhook_id = ANY(locked_ids)
    GROUP BY u.webhook_id
  ), state AS (
    SELECT b.webhook_id, wanted.n, clock.at, w.max_in_flight,
           w.rate_limit_per_second AS rate,
           pgwq_bucket_tokens(b.tokens, b.refilled_at, w.rate_limit_per_second, clock.at) AS avail,
           w.max_in_flight - (
             SELECT count(*) FROM delivery_lines l
             WHERE l.webhook_id = b.webhook_id AND l.lease_token IS NOT NULL AND l.limited
               AND l.next_attempt_at > now()
           )::int AS free
    FROM webhook_limits b
    JOIN wanted ON wanted.webhook_id = b.webhook_id
    JOIN webhooks w ON w.id = b.webhook_id
    CROSS JOIN clock
  ), granted AS (
    SELECT s.*,
           greatest(0, least(s.n, coalesce(floor(s.avail)::int, s.n), coalesce(s.free, s.n))) AS k
    FROM state AS s
  ), spent AS (
    UPDATE webhook_limits AS b
    SET tokens = coalesce(g.avail - g.k, b.tokens),
        refilled_at = g.at,
        tokens_at = CASE
          WHEN g.avail - g.k < 1 THEN g.at + make_interval(secs => (1 - (g.avail - g.k)) / g.rate)
        END,
        full_until = CASE WHEN g.free <= g.k THEN g.at + ${FULL_HOLD} END
    FROM granted AS g
    WHERE b.webhook_id = g.webhook_id
    RETURNING g.webhook_id, g.k, g.max_in_flight IS NOT NULL AS counted
  )
  SELECT coalesce(array_agg(s.webhook_id), '{}'), coalesce(array_agg(s.k), '{}'),
         coalesce(array_agg(s.webhook_id) FILTER (WHERE s.counted), '{}')
  INTO grant_ids, grants, counted_ids
  FROM spent AS s;
END IF;
-- manners, 4: the claim of the lines granted.
RETURN QUERY
WITH c AS (
  SELECT u.webhook_id, u.partition_key
  FROM (
    SELECT u.webhook_id, u.partition_key,
           row_number() OVER (PARTITION BY u.webhook_id ORDER BY u.nth) AS k
    FROM unnest(due_ids, due_keys) WITH ORDINALITY AS u (webhook_id, partition_key, nth)
  ) AS u
  WHERE u.webhook_id <> ALL(limited_ids)
     OR u.k <= coalesce(grants[array_position(grant_ids, u.webhook_id)], 0)
), claimed AS (
  UPDATE delivery_lines AS l
  SET lease_token = gen_random_uuid(),
      next_attempt_at = clock_timestamp() + make_interval(secs => $2 / 1000),
      head_sequence = least(l.head_sequence, coalesce(l.rewind_to, l.head_sequence)),
      rewind_to = NULL,
      limited = l.webhook_id = ANY(counted_ids)
  FROM c
  WHERE l.webhook_id = c.webhook_id
    AND l.partition_key = c.partition_key
    AND l.next_attempt_at <= now()
  RETURNING l.webhook_id, l.partition_key, l.topic_id, l.head_sequence, l.lease_token
)
${mannersHeadOfLines('claimed')};
END
$fn$`;
}

/**
 * pgwq_record_attempts, manners: EventRouting's definition (BoundedRecord's, whose keep path moves
 * a finished head to the line's next pending delivery, next_up; LockThenRead's comment says why
 * each rule is safe) with these changes, each marked "manners" in the function:
 *
 * - A fifth outcome, 'throttled' (a 429, or a 503 with Retry-After, within 24 h of throttling):
 *   for the line it is 'pending' (the head stays, due again after the delay); the delivery stays
 *   pending with the attempt recorded and counted in `attempts`, and also in throttled_attempts,
 *   which the worker subtracts for the retry budget; throttled_since is set when a run of
 *   throttling begins. Any other answer ends the run (throttled_since NULL), except a throttling
 *   answer after 24 h of them, which the worker records as a failure ('pending' or 'dead'): the
 *   run goes on, so the next one is a failure too. A rewound head starts again with both at
 *   zero, as its attempts do.
 * - A line is kept (its next head POSTed at once) only if that attempt may start: for a webhook
 *   with rate_limit_per_second, a token taken from its bucket, locked with SKIP LOCKED (a bucket
 *   a claim holds is not waited for: the line is released instead, due now, and a claim takes it
 *   when there is a token); for a webhook with max_in_flight, the line's lease must be one counted
 *   against it (`limited`; a lease taken before the limit was set is not kept). A kept line stays
 *   leased and so stays counted in max_in_flight.
 * - A line of a webhook with max_in_flight that is released clears its bucket's full_until, so
 *   the next claim looks at the webhook again at once (if a claim holds the bucket, its hint
 *   lapses by itself).
 * These reads happen after the line's lock, in statements of their own, and only for webhooks
 * with a webhook_limits row (one probe per call when there is none at all).
 */
export function mannersRecordAttempts(): string {
  const base = ROUTED_RECORD_ATTEMPTS;
  const parts = {
    pending: `req.outcome = 'pending'`,
    recorded: `SELECT CASE WHEN rewound THEN 'pending' ELSE req.outcome END AS status, rewound FROM line`,
    attempts: `attempts = CASE WHEN r.rewound THEN 0 ELSE req.attempt END,`,
    keep: 'req.keep',
    declare: `DECLARE\n  req record;\nBEGIN\n`,
    statement: `  RETURN QUERY\n  WITH hook AS (`,
    loopEnd: `  ) AS n ON true;\nEND LOOP;`,
    columns: `${LINE_COLUMNS})`,
    busy: `RETURN QUERY SELECT ${BUSY_ROW}, NULL::text, NULL::text, NULL::text;`,
    head: routedHeadOfLines('line'),
  };
  for (const part of Object.values(parts)) {
    if (!base.includes(part)) throw new Error(`pgwq_record_attempts has changed: ${part}`);
  }
  // Replaced once each (the others in every place they are): each must be there once only.
  for (const part of [parts.recorded, parts.attempts, parts.declare, parts.statement]) {
    if (base.split(part).length !== 2) throw new Error(`pgwq_record_attempts has changed: ${part}`);
  }
  for (const part of [parts.loopEnd, parts.columns, parts.busy, parts.head]) {
    if (base.split(part).length !== 2) throw new Error(`pgwq_record_attempts has changed: ${part}`);
  }
  return base
    .replaceAll(parts.pending, `req.outcome IN ('pending', 'throttled')`)
    .replace(
      parts.recorded,
      `SELECT CASE WHEN rewound OR req.outcome = 'throttled' THEN 'pending' ELSE req.outcome END
      AS status, rewound FROM line -- manners: throttled is pending`,
    )
    .replace(
      parts.attempts,
      `${parts.attempts}
        -- manners: throttling answers, kept apart from the retry budget
        throttled_attempts = CASE
          WHEN r.rewound THEN 0
          WHEN req.outcome = 'throttled' THEN deliveries.throttled_attempts + 1
          ELSE deliveries.throttled_attempts
        END,
        throttled_since = CASE
          WHEN r.rewound THEN NULL
          WHEN req.outcome = 'throttled' THEN coalesce(deliveries.throttled_since, now())
          -- Past 24 h (the worker's THROTTLING_LIMIT_SECONDS) throttling answers are failures,
          -- and the run they continue is not over: the next one is a failure too.
          WHEN req.outcome = 'pending' AND req.status_code IN (429, 503)
            AND deliveries.throttled_since <= now() - interval '24 hours'
            THEN deliveries.throttled_since
        END,`,
    )
    .replaceAll(parts.keep, '(req.keep AND keep_ok)')
    .replace(
      parts.declare,
      `DECLARE
  req record;
  -- manners
  limits_exist boolean := EXISTS (SELECT 1 FROM webhook_limits);
  keep_ok boolean;
  clear_full boolean;
  v_rate double precision;
  v_counted boolean;
  v_uncounted boolean;
  v_would_keep boolean;
  v_ours boolean;
BEGIN
`,
    )
    .replace(
      parts.statement,
      `  -- manners: may a kept line start its next attempt? (see the migration's comment)
  keep_ok := true;
  clear_full := false;
  IF limits_exist AND EXISTS (SELECT 1 FROM webhook_limits WHERE webhook_id = req.webhook_id) THEN
    SELECT w.rate_limit_per_second,
           w.max_in_flight IS NOT NULL,
           w.max_in_flight IS NOT NULL AND NOT l.limited,
           req.keep AND req.outcome IN ('delivered', 'dead')
             AND NOT (req.outcome = 'dead' AND w.on_exhausted = 'block')
             -- the record's keep rule (EventRouting's next_up): a next pending delivery
             AND (SELECT d.sequence FROM deliveries d
                  WHERE d.webhook_id = req.webhook_id AND d.partition_key = req.partition_key
                    AND d.sequence > req.head AND d.status = 'pending'
                  ORDER BY d.sequence LIMIT 1) <= l.tail_sequence
             AND w.status = 'active' AND l.rewind_to IS NULL,
           l.lease_token = req.lease_token AND l.head_sequence = req.head
      INTO v_rate, v_counted, v_uncounted, v_would_keep, v_ours
    FROM delivery_lines l JOIN webhooks w ON w.id = l.webhook_id
    WHERE l.webhook_id = req.webhook_id AND l.partition_key = req.partition_key;
    IF v_ours AND v_would_keep AND v_uncounted THEN
      keep_ok := false;
    END IF;
    IF v_ours AND v_would_keep AND keep_ok AND v_rate IS NOT NULL THEN
      PERFORM 1 FROM webhook_limits WHERE webhook_id = req.webhook_id FOR UPDATE SKIP LOCKED;
      keep_ok := FOUND;
      IF keep_ok THEN
        UPDATE webhook_limits AS b
        SET tokens = t.avail - 1,
            refilled_at = t.at,
            tokens_at = CASE
              WHEN t.avail - 1 < 1 THEN t.at + make_interval(secs => (2 - t.avail) / v_rate)
            END
        FROM (
          SELECT pgwq_bucket_tokens(o.tokens, o.refilled_at, v_rate, clock_timestamp()) AS avail,
                 clock_timestamp() AS at
          FROM webhook_limits o WHERE o.webhook_id = req.webhook_id
        ) AS t
        WHERE b.webhook_id = req.webhook_id AND t.avail >= 1;
        keep_ok := FOUND;
      END IF;
    END IF;
    clear_full := coalesce(v_ours AND v_counted AND NOT (v_would_keep AND keep_ok), false);
  END IF;
${parts.statement}`,
    )
    .replace(
      parts.loopEnd,
      `  ) AS n ON true;
  -- manners: a released line of a webhook with max_in_flight frees a place at once.
  IF clear_full THEN
    UPDATE webhook_limits SET full_until = NULL
    WHERE webhook_id = (
      SELECT b.webhook_id FROM webhook_limits b
      WHERE b.webhook_id = req.webhook_id AND b.full_until IS NOT NULL
      FOR UPDATE SKIP LOCKED
    );
  END IF;
END LOOP;`,
    )
    .replace(parts.columns, () => `${LINE_COLUMNS}${MANNERS_COLUMNS})`)
    .replace(
      parts.busy,
      () =>
        `RETURN QUERY SELECT ${BUSY_ROW}, NULL::text, NULL::text, NULL::text,
        NULL::jsonb, NULL::integer, NULL::float8, NULL::integer, NULL::float8;`,
    )
    .replace(parts.head, () => mannersHeadOfLines('line'));
}

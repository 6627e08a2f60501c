import { MOVE_HEAD_TO_NEXT, NEXT_HEAD, NOTIFY_CHANNEL } from '../queue/queue.sql.js';

/**
 * Every statement of the delivery path: claim → POST → record result (or release). Values go in
 * $n parameters only. Each statement is one round trip and fenced where it writes after a claim.
 *
 * The hot ones (claim, record, renew) are PL/pgSQL functions created by the migrations
 * src/database/migrations/1795633463950-DeliveryFunctions.ts and 1795633464000-GroupRecord.ts
 * (the record), which hold their SQL and why each is safe; here are the calls. A function's
 * statement is planned once per server session, so a call sent unnamed, as a transaction-mode
 * pooler needs, costs little more than a named prepared statement (docs/pooler.md).
 *
 * Every fenced write matches the lease token AND the head sequence it expects, so it is
 * idempotent: a statement whose commit succeeded but whose reply was lost (a reset, a failover)
 * is sent again by the worker, and the second run finds the head already moved and changes
 * nothing (DESIGN §3). A token alone is not enough: a kept line keeps its token across heads.
 *
 * Lease expiries come from clock_timestamp(), the time of the write; due times may use now()
 * (the migration says why).
 */

export const LISTEN = `LISTEN ${NOTIFY_CHANNEL}`;

/**
 * The LISTEN connection's self-test (NotifyListener): a channel of its own, so the test wakes no
 * worker, and a session that cannot hear it never LISTENs on NOTIFY_CHANNEL.
 */
export const PROBE_CHANNEL = 'pgwq_listen_probe';
export const LISTEN_PROBE = `LISTEN ${PROBE_CHANNEL}`;
export const NOTIFY_PROBE = `SELECT pg_notify('${PROBE_CHANNEL}', $1)`;

/**
 * The rows of CLAIM_LINES and RECORD_ATTEMPTS, each sent as one JSON text (row_json). Their 21
 * and 29 columns as columns cost the worker a field description and a parser per column on
 * every call (both are sent unnamed, so nothing is cached); JSON.parse reads the row in one go.
 * The functions print bigints as text, so no number loses precision; jsonb columns arrive as
 * objects, as pg would parse them.
 */
export function parseRows<T>(rows: readonly { row_json: string }[]): T[] {
  return rows.map((r) => JSON.parse(r.row_json) as T);
}

/**
 * Claim up to $1 due lines for a lease of $2 ms, at most $6 lines per webhook or the room given
 * for it in $4/$5 (webhook ids, lines), none of the webhooks in $3; each with its head delivery
 * and everything needed to POST it (ClaimedLine). SKIP LOCKED, the due condition re-checked on
 * the locked row, a fresh lease token per line: see pgwq_claim_lines.
 */
export const CLAIM_LINES = `SELECT to_json(c)::text AS row_json
FROM pgwq_claim_lines($1, $2, $3, $4, $5, $6) AS c`;

/**
 * Extend the lease ($3 token, $4 head) on line ($1, $2) to $5 ms from the time of the write;
 * not renewed = the line is someone else's now (pgwq_renew_lease). Running it twice is harmless.
 */
export const RENEW_LEASE = `SELECT * FROM pgwq_renew_lease($1, $2, $3, $4, $5)`;

/** The row of RENEW_LEASE. */
export interface RenewedLease {
  renewed: boolean;
  line_exists: boolean;
}

/**
 * Record attempts' outcomes, any number of lines at once, in one call and one commit
 * (pgwq_record_attempts: arrays with an element per attempt, in its parameters' order; see
 * RecordRequest). Each attempt is fenced by its own lease token and head and, when asked, keeps
 * its line and returns the next head; one row per attempt, `nth` its place in the arrays. A line
 * whose row lock someone else holds is not waited for: its row comes back `busy`, nothing of it
 * written, unless $16 and it is the call's only attempt. The function lists the parameters and
 * says why a second run changes nothing.
 */
export const RECORD_ATTEMPTS = `SELECT to_json(r)::text AS row_json
FROM pgwq_record_attempts($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) AS r`;

/**
 * RECORD_ATTEMPTS whose commit does not wait for the WAL flush (RECORD_SYNCHRONOUS_COMMIT=off):
 * set_config(…, true) lasts until the end of the call's own transaction, also through a
 * transaction-mode pooler. docs/delivery.md, "Synchronous commit of results", says what it risks.
 */
export const RECORD_ATTEMPTS_ASYNC = `SELECT to_json(r)::text AS row_json
FROM set_config('synchronous_commit', 'off', true),
  pgwq_record_attempts($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) AS r`;

/**
 * What a recorded attempt did to its delivery: pending = it is retried later; throttled = the
 * receiver asked to wait (429, 503 + Retry-After): retried later without using the retry budget.
 */
export type Outcome = 'delivered' | 'pending' | 'dead' | 'throttled';

/** One attempt's outcome to record, with the fence it was sent under. */
export interface RecordRequest {
  webhookId: number;
  partitionKey: string;
  leaseToken: string;
  /** The head the attempt was for: the fence, with the token. */
  head: string;
  outcome: Outcome;
  /** Seconds until a pending head is due again. */
  retryDelaySeconds: number;
  deliveryId: string;
  attempt: number;
  statusCode: number | null;
  error: string | null;
  startedAt: Date;
  durationMs: number;
  responseBody: string | null;
  /** Keep the line and return its next head, if there is one. */
  keep: boolean;
}

/**
 * RECORD_ATTEMPTS's parameters for these requests and lease. `wait`: a single request waits for
 * its line's lock instead of coming back busy.
 */
export function recordAttemptsValues(
  requests: readonly RecordRequest[],
  leaseMs: number,
  wait = false,
) {
  const column = <T>(f: (r: RecordRequest) => T) => requests.map(f);
  return [
    column((r) => r.webhookId),
    column((r) => r.partitionKey),
    column((r) => r.leaseToken),
    column((r) => r.head),
    column((r) => r.outcome),
    column((r) => r.retryDelaySeconds),
    column((r) => r.deliveryId),
    column((r) => r.attempt),
    column((r) => r.statusCode),
    column((r) => r.error),
    column((r) => r.startedAt.toISOString()),
    column((r) => r.durationMs),
    column((r) => r.responseBody),
    column((r) => r.keep),
    leaseMs,
    wait,
  ];
}

/** One row of RECORD_ATTEMPTS: the claim's columns are null unless the line was kept. */
export type RecordedAttempt = {
  /** The attempt's place in the call's arrays, from 1. */
  nth: number;
  /** The line's lock was held by someone else: nothing recorded, every other column null. */
  busy: boolean;
  fenced: boolean;
  recorded: number;
  /** Fenced only: the webhook has a run of failures, read after the line's lock. */
  webhook_failing: boolean | null;
  /** Set only when not fenced, like the two after it. */
  still_held: boolean | null;
  recorded_before: boolean | null;
  line_exists: boolean | null;
} & (ClaimedLine | { [K in keyof ClaimedLine]: null });

/**
 * The head delivery is not pending (its message was deleted, or a rewind walks over a delivered or
 * dead one): move the line on to the next pending delivery (NEXT_HEAD), fenced, with the same
 * "is there more?" rule as RECORD_ATTEMPTS.
 *
 * The NOT EXISTS runs in this statement's fresh snapshot. CLAIM_LINES can lock a line version
 * committed after its own snapshot (another worker's late but still fenced result moved the head
 * on, or a redrive moved it back), and then its join may not see the new head delivery yet.
 * Re-checking here means we only skip a head that is really not pending; otherwise no row comes
 * back and the caller releases the line to be claimed again. Fenced on the head it skips ($4), so
 * a second run skips nothing more.
 */
export const SKIP_MISSING_HEAD = `
WITH n AS (${NEXT_HEAD})
UPDATE delivery_lines AS l
SET ${MOVE_HEAD_TO_NEXT}
FROM n
WHERE l.webhook_id = $1 AND l.partition_key = $2 AND l.lease_token = $3
  AND l.head_sequence = $4
  AND NOT EXISTS (
    SELECT 1 FROM deliveries d
    WHERE d.webhook_id = l.webhook_id
      AND d.partition_key = l.partition_key
      AND d.sequence = l.head_sequence
      AND d.status = 'pending'
  )
RETURNING 1
`;

/**
 * Give back leased lines without recording an attempt, each due again after its delay (ms):
 * at shutdown, a head whose lease is too short to start a request, a line whose earlier record
 * kept it but lost its reply, a line whose destination's circuit breaker is open. Each row is found by its primary key (lease_token has no index)
 * and fenced on its token and head, so a second run, or a line another worker has taken over
 * meanwhile, changes nothing. Nothing is sent or counted, so the order and the retry budget
 * are untouched.
 */
export const RELEASE_LINES = `
UPDATE delivery_lines AS l
SET next_attempt_at = clock_timestamp() + make_interval(secs => r.delay_ms / 1000),
    lease_token = NULL
FROM unnest($1::int[], $2::text[], $3::uuid[], $4::bigint[], $5::double precision[])
  AS r(webhook_id, partition_key, lease_token, head_sequence, delay_ms)
WHERE l.webhook_id = r.webhook_id
  AND l.partition_key = r.partition_key
  AND l.lease_token = r.lease_token
  AND l.head_sequence = r.head_sequence
`;

/**
 * The head a lease token still holds on line ($1, $2): after a record whose reply was lost kept
 * the line, its next head, which is not head + 1 when the line skips sequences (filters).
 */
export const HELD_HEAD = `
SELECT head_sequence::text AS head FROM delivery_lines
WHERE webhook_id = $1 AND partition_key = $2 AND lease_token = $3
`;

/** One row of CLAIM_LINES. bigint columns arrive as text. */
export interface ClaimedLine {
  webhook_id: number;
  partition_key: string;
  sequence: string;
  lease_token: string;
  delivery_id: string | null;
  message_id: string | null;
  attempts: number | null;
  body: string | null;
  url: string;
  secret: string;
  previous_secret: string | null;
  topic: string;
  failing: boolean;
  /**
   * Why the head's payload cannot be sent (it prints to more than a delivery may carry), from
   * CLAIM_LINES only; body is then null. Such a head is recorded dead at once, nothing sent.
   */
  body_problem?: string | null;
  /**
   * The sequence of the delivery before this head on its line, whatever its status (NULL for
   * the line's first): webhook-previous-sequence. Stored at fan-out (EventRouting).
   */
  previous_sequence: string | null;
  /** The message's event type: webhook-event-type, sent only when set. */
  event_type: string | null;
  // ---- manners (per-webhook settings, throttling; migration WebhookManners) ----
  /** Static headers sent on every attempt (never logged). */
  headers: Record<string, string> | null;
  /** The webhook's MAX_RETRIES, when it overrides the global one. */
  max_retries: number | null;
  /** The webhook's BACKOFF_FACTOR, when it overrides the global one. */
  backoff_factor: number | null;
  /** The head's attempts that were throttling answers (not in the retry budget). */
  throttled_attempts: number | null;
  /** For how long the head has been throttled without a break; null when it is not. */
  throttled_seconds: number | null;
}

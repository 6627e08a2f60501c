import pg from 'pg';
import { NOTIFY_CHANNEL } from './delivery.sql.js';

/**
 * A webhook's state (DESIGN §7) as the engine keeps it: pausing or disabling parks its lines
 * (next_attempt_at NULL: not due, so no worker spends a claim on them) and resuming wakes them.
 * Shared by PATCH /webhooks/{id} and the worker's auto-disable.
 */

/** A pg pool or client, or a TypeORM EntityManager (inside the API's transaction). */
export interface Queryable {
  query(text: string, values: unknown[]): Promise<unknown>;
}

/** Why the worker disabled a webhook. */
export type DisabledReason = 'gone' | 'failing';

/**
 * Park the webhook's waiting lines. Lines in flight (leased) are left alone: their attempt
 * finishes and RECORD_ATTEMPTS parks them. The lines are locked in primary-key order, the order
 * the fan-out's upsert locks them in, so a producer and this never deadlock; a line's lease is
 * re-checked on the locked row.
 */
const PARK_LINES = `
UPDATE delivery_lines AS l
SET next_attempt_at = NULL
FROM (
  SELECT partition_key FROM delivery_lines
  WHERE webhook_id = $1 AND next_attempt_at IS NOT NULL AND lease_token IS NULL
  ORDER BY partition_key
  FOR NO KEY UPDATE
) AS s
WHERE l.webhook_id = $1 AND l.partition_key = s.partition_key
`;

/**
 * Wake every parked line with work (not blocked ones: those wait for a redrive or a skip), due
 * now, in primary-key order like PARK_LINES, and tell the workers. A head that was waiting out a
 * backoff when the webhook was paused is tried at once.
 */
const WAKE_LINES = `
WITH woken AS (
  UPDATE delivery_lines AS l
  SET next_attempt_at = now()
  FROM (
    SELECT partition_key FROM delivery_lines
    WHERE webhook_id = $1 AND next_attempt_at IS NULL AND NOT blocked
      AND (head_sequence <= tail_sequence OR rewind_to IS NOT NULL)
    ORDER BY partition_key
    FOR NO KEY UPDATE
  ) AS s
  WHERE l.webhook_id = $1 AND l.partition_key = s.partition_key
  RETURNING 1
)
SELECT count(*)::int AS woken, pg_notify('${NOTIFY_CHANNEL}', '') FROM woken
`;

/**
 * A failed attempt: starts the webhook's run of failures (failing_since) if none is running, and
 * disables it (`failing`) once the run has lasted $2 seconds ($2 = 0: never). Writes the row only
 * at those two moments, so failures of a busy webhook do not queue on its row lock.
 */
const NOTE_FAILURE = `
UPDATE webhooks
SET failing_since = coalesce(failing_since, now()),
    status = CASE WHEN failing_since IS NOT NULL THEN 'disabled' ELSE status END,
    disabled_reason = CASE WHEN failing_since IS NOT NULL THEN 'failing' ELSE disabled_reason END,
    disabled_at = CASE WHEN failing_since IS NOT NULL THEN now() ELSE disabled_at END
WHERE id = $1 AND deleted_at IS NULL
  AND (
    failing_since IS NULL
    OR ($2::int > 0 AND status = 'active'
        AND failing_since <= now() - make_interval(secs => $2::int))
  )
RETURNING status = 'disabled' AS disabled
`;

/** A success ends the run of failures. Writes nothing when none is running. */
const NOTE_SUCCESS = `
UPDATE webhooks SET failing_since = NULL WHERE id = $1 AND failing_since IS NOT NULL
`;

/** 410 Gone: disabled at once, whatever it was. */
const DISABLE_GONE = `
UPDATE webhooks
SET status = 'disabled', disabled_reason = 'gone', disabled_at = now()
WHERE id = $1 AND deleted_at IS NULL AND status <> 'disabled'
RETURNING 1
`;

export async function parkLines(client: Queryable, webhookId: number): Promise<void> {
  await client.query(PARK_LINES, [webhookId]);
}

export async function wakeLines(client: Queryable, webhookId: number): Promise<void> {
  await client.query(WAKE_LINES, [webhookId]);
}

/**
 * Records what an attempt says about the webhook's health; returns why it was disabled, if this
 * attempt disabled it. Its lines are then parked (each its own statement: the webhook row's lock
 * is not held while the lines are locked).
 */
export async function noteAttemptOutcome(
  pool: pg.Pool,
  webhookId: number,
  outcome: { ok: boolean; statusCode: number | null; wasFailing: boolean },
  disableAfterSeconds: number,
): Promise<DisabledReason | undefined> {
  let reason: DisabledReason | undefined;
  if (outcome.statusCode === 410) {
    if ((await pool.query(DISABLE_GONE, [webhookId])).rowCount) reason = 'gone';
  } else if (!outcome.ok) {
    const { rows } = await pool.query<{ disabled: boolean }>(NOTE_FAILURE, [
      webhookId,
      disableAfterSeconds,
    ]);
    if (rows[0]?.disabled) reason = 'failing';
  } else if (outcome.wasFailing) {
    await pool.query(NOTE_SUCCESS, [webhookId]);
  }
  if (reason) await parkLines(pool, webhookId);
  return reason;
}

import pg from 'pg';
import { inTransaction } from '../database/transaction.js';
import { NOTIFY_CHANNEL } from './queue.sql.js';

/**
 * A webhook's state (DESIGN §7) as the engine keeps it: a paused or disabled webhook's waiting
 * lines are parked (next_attempt_at NULL: not due, so no worker spends a claim on them), an
 * active webhook's lines with work are due. Shared by PATCH /webhooks/{id} and the worker's
 * auto-disable.
 *
 * The status change commits first, on its own (its row lock held only for that), and then
 * settleLines makes every line agree with the status, in batches (a webhook may have 500,000
 * lines). Each batch locks its lines and only then reads the webhook's status, in a later
 * statement (DESIGN §3's snapshot trap). So when two changes race (a pause and a resume, an
 * auto-disable and a resume), whichever batch touches a line last has read a status at least as
 * new as every change committed before it locked the line: the last status wins on every line,
 * and none is left parked while its webhook is active.
 */

/** Lines per settling transaction: a few milliseconds of locks. */
const LINES_PER_BATCH = 1000;
/** Busy lines waited for at once, each on a pooled connection of its own. */
const BUSY_AT_ONCE = 4;

/** Why the worker disabled a webhook. */
export type DisabledReason = 'gone' | 'failing' | 'refused';

/**
 * Lock up to $3 of webhook $1's lines after partition key $2, in key order (the primary key's
 * range). SKIP LOCKED: a line whose lock is held (a producer's open transaction, a worker's
 * record) is passed over and settled on its own afterwards, so a batch never waits for one line
 * while holding others, and cannot deadlock with a producer that locks several in any order.
 */
const LOCK_LINE_BATCH = `
SELECT partition_key FROM delivery_lines
WHERE webhook_id = $1 AND partition_key > $2
ORDER BY partition_key
LIMIT $3
FOR NO KEY UPDATE SKIP LOCKED
`;

/** The lines a batch passed over: in its key range ($2, $3], not among those it locked ($4). */
const PASSED_OVER = `
SELECT partition_key FROM delivery_lines
WHERE webhook_id = $1 AND partition_key > $2 AND ($3::text IS NULL OR partition_key <= $3)
  AND partition_key <> ALL ($4::text[])
`;

/** One line, waiting for its lock (it holds no other line's: no deadlock). */
const LOCK_LINE = `
SELECT 1 FROM delivery_lines WHERE webhook_id = $1 AND partition_key = $2 FOR NO KEY UPDATE
`;

/**
 * Make the locked lines $2 of webhook $1 agree with its status, read here, after their locks.
 * Active: a parked line with work (not a blocked one: it waits for a redrive or a skip) is due
 * now, and the workers are told; a head that was waiting out a backoff when the webhook was
 * paused is tried at once. Paused or disabled: a waiting line is parked. A leased line is left to
 * its worker (its record releases it; the claim's filter passes over a paused webhook's). Found
 * by its primary key (= ANY of the keys): one index probe per line, whatever the planner
 * estimates.
 */
const SETTLE_LINES = `
WITH settled AS (
  UPDATE delivery_lines AS l
  SET next_attempt_at = CASE WHEN w.status = 'active' THEN now() END
  FROM webhooks AS w
  WHERE w.id = $1 AND l.webhook_id = $1 AND l.partition_key = ANY ($2::text[])
    AND l.lease_token IS NULL
    AND CASE
      WHEN w.status = 'active' THEN l.next_attempt_at IS NULL AND NOT l.blocked
        AND (l.head_sequence <= l.tail_sequence OR l.rewind_to IS NOT NULL)
      ELSE l.next_attempt_at IS NOT NULL
    END
  RETURNING w.status = 'active' AS woke
)
SELECT count(*)::int AS settled,
       (SELECT pg_notify('${NOTIFY_CHANNEL}', '') WHERE EXISTS (SELECT 1 FROM settled WHERE woke))
FROM settled
`;

/**
 * Parks or wakes every line of the webhook as its status says now (see the top of this file).
 * Returns how many changed. A line whose lock is held is settled alone, waiting for it (up to the
 * lock timeout, whose error is thrown on: settling again finishes the job).
 */
export async function settleLines(pool: pg.Pool, webhookId: number): Promise<number> {
  let settled = 0;
  const settle = async (client: pg.ClientBase, keys: string[]) => {
    const { rows } = await client.query<{ settled: number }>(SETTLE_LINES, [webhookId, keys]);
    return rows[0].settled;
  };
  for (let after = ''; ;) {
    const { locked, passedOver } = await inTransaction(pool, async (client) => {
      const { rows } = await client.query<{ partition_key: string }>(LOCK_LINE_BATCH, [
        webhookId,
        after,
        LINES_PER_BATCH,
      ]);
      const keys = rows.map((row) => row.partition_key);
      const last = keys.length === LINES_PER_BATCH ? keys[keys.length - 1] : null;
      const busy = await client.query<{ partition_key: string }>(PASSED_OVER, [
        webhookId,
        after,
        last,
        keys,
      ]);
      settled += await settle(client, keys);
      return { locked: keys, passedOver: busy.rows.map((row) => row.partition_key) };
    });
    // Each alone, a few at once: the wait is for the longest holder, not the sum of them.
    for (let k = 0; k < passedOver.length; k += BUSY_AT_ONCE) {
      const settledAlone = await Promise.all(
        passedOver.slice(k, k + BUSY_AT_ONCE).map((key) =>
          inTransaction(pool, async (client) => {
            await client.query(LOCK_LINE, [webhookId, key]);
            return settle(client, [key]);
          }),
        ),
      );
      settled += settledAlone.reduce((sum, n) => sum + n, 0);
    }
    if (locked.length < LINES_PER_BATCH) return settled;
    after = locked[locked.length - 1];
  }
}

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

/**
 * The worker's address policy refused the webhook's address (DESIGN §10): disabled at once,
 * whatever it was, with what was refused and why ($2).
 */
const DISABLE_REFUSED = `
UPDATE webhooks
SET status = 'disabled', disabled_reason = 'refused', disabled_detail = $2, disabled_at = now()
WHERE id = $1 AND deleted_at IS NULL AND status <> 'disabled'
RETURNING 1
`;

/**
 * Disables the webhook whose address the worker's policy refused, keeping its backlog, and parks
 * its lines as any disable does. True if this call disabled it.
 */
export async function disableRefused(
  pool: pg.Pool,
  webhookId: number,
  detail: string,
): Promise<boolean> {
  const disabled = Boolean((await pool.query(DISABLE_REFUSED, [webhookId, detail])).rowCount);
  if (disabled) await settleLines(pool, webhookId);
  return disabled;
}

/**
 * Records what an attempt says about the webhook's health; returns why it was disabled, if this
 * attempt disabled it. Its lines are then settled (parked, unless a resume committed meanwhile),
 * after the disable committed: the webhook row's lock is not held while the lines are locked.
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
  if (reason) await settleLines(pool, webhookId);
  return reason;
}

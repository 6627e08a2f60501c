import { Injectable, Logger } from '@nestjs/common';
import pg from 'pg';
import type { MaintenanceTask } from './maintenance-task.js';

const LINES_PER_BATCH = 1000;
/** Each takes its attempts along (ON DELETE CASCADE): up to MAX_RETRIES rows apiece. */
const DELIVERIES_PER_BATCH = 200;

/** The next webhook marked deleted after $1 (by id; the partial index webhooks_deleted_idx). */
const NEXT_DELETED_WEBHOOK = `
SELECT id FROM webhooks WHERE deleted_at IS NOT NULL AND id > $1 ORDER BY id LIMIT 1
`;

/**
 * Up to $2 of its lines. SKIP LOCKED: a line a worker is recording on or a producer is fanning
 * out to is left for a later batch, so the purge never waits on anyone and cannot deadlock. The
 * lines are deleted by key (= ANY of an array built once): one index probe each, where a join
 * with the sub-select could be planned as a nested loop over every line of the webhook.
 */
const DELETE_LINES = `
DELETE FROM delivery_lines
WHERE webhook_id = $1
  AND partition_key = ANY (ARRAY(
    SELECT partition_key FROM delivery_lines
    WHERE webhook_id = $1
    LIMIT $2
    FOR UPDATE SKIP LOCKED
  ))
`;

/** Up to $2 of its deliveries, oldest first (deliveries_webhook_id_idx), and their attempts. */
const DELETE_DELIVERIES = `
DELETE FROM deliveries AS d
USING (
  SELECT id FROM deliveries
  WHERE webhook_id = $1
  ORDER BY id
  LIMIT $2
  FOR UPDATE SKIP LOCKED
) AS doomed
WHERE d.id = doomed.id
`;

/**
 * The row itself, once nothing refers to it. SKIP LOCKED again: a producer whose fan-out locked
 * the webhook (it read it before DELETE /webhooks/{id} committed) still holds a key-share lock
 * until it commits, and its deliveries must find the row; the next round gets it and them.
 */
const DELETE_WEBHOOK = `
DELETE FROM webhooks AS w
WHERE w.id IN (
    SELECT id FROM webhooks WHERE id = $1 AND deleted_at IS NOT NULL FOR UPDATE SKIP LOCKED
  )
  AND NOT EXISTS (SELECT 1 FROM delivery_lines WHERE webhook_id = w.id)
  AND NOT EXISTS (SELECT 1 FROM deliveries WHERE webhook_id = w.id)
`;

/**
 * Removes what DELETE /webhooks/{id} left behind: a deleted webhook's lines first (so no worker
 * is handed its head again), then its deliveries with their attempts, then its row. One small
 * step per batch. Webhooks are taken in id order; one that cannot be finished now (rows locked)
 * is passed over until the next round, so it never holds up the others.
 */
@Injectable()
export class WebhookPurge implements MaintenanceTask {
  readonly name = 'webhook purge';
  readonly lockKey = 1;
  private readonly logger = new Logger(WebhookPurge.name);
  /** The last webhook passed over in this round; 0 starts a new round. */
  private after = 0;

  async runBatch(client: pg.ClientBase): Promise<boolean> {
    const next = await client.query<{ id: number }>(NEXT_DELETED_WEBHOOK, [this.after]);
    if (next.rowCount === 0) {
      this.after = 0;
      return false;
    }
    const { id } = next.rows[0];
    if ((await client.query(DELETE_LINES, [id, LINES_PER_BATCH])).rowCount) return true;
    if ((await client.query(DELETE_DELIVERIES, [id, DELIVERIES_PER_BATCH])).rowCount) return true;
    if ((await client.query(DELETE_WEBHOOK, [id])).rowCount) {
      this.logger.log(`deleted webhook ${id} purged`);
    }
    this.after = id;
    return true;
  }
}

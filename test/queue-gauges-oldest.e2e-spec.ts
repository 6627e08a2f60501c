import { QUEUE_STATS, QueueStatsRow } from '../src/metrics/queue-stats.sql.js';
import { createTestDatabase, TestDatabase } from './helpers/db.js';
import { createTopic, createWebhook, insertMessage } from './helpers/factories.js';

/**
 * The gauges' oldest pending delivery comes from the lines (no index of deliveries tells pending
 * rows from delivered ones): a line's head, or for a blocked line the first pending delivery after
 * its dead head, never the dead head itself.
 */
describe('the queue gauges: the oldest pending delivery', () => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db.drop();
  });

  async function figures(webhookId: number) {
    const { rows } = await db.pool.query<QueueStatsRow>(QUEUE_STATS);
    const row = rows.find((r) => r.webhook_id === webhookId)!;
    return {
      pending: row.pending,
      blocked: row.blocked_lines,
      // Whole seconds: the publication times below are set whole seconds ago.
      age: Math.floor(row.oldest_pending_age_seconds),
    };
  }

  /** Publication `secondsAgo` for a delivery, and for its line's head time when it is the head. */
  async function publishedAgo(
    webhookId: number,
    key: string,
    sequence: number,
    secondsAgo: number,
  ) {
    await db.pool.query(
      `WITH d AS (
         UPDATE deliveries SET created_at = now() - make_interval(secs => $4)
         WHERE webhook_id = $1 AND partition_key = $2 AND sequence = $3
         RETURNING webhook_id, partition_key, sequence, created_at
       )
       UPDATE delivery_lines l SET head_created_at = d.created_at
       FROM d
       WHERE l.webhook_id = d.webhook_id AND l.partition_key = d.partition_key
         AND l.head_sequence = d.sequence`,
      [webhookId, key, sequence, secondsAgo],
    );
  }

  it('is the oldest line head, or the first pending after a blocked line’s dead head', async () => {
    const topic = await createTopic(db.pool);
    const webhook = await createWebhook(db.pool, topic.id);
    for (const key of ['a', 'a', 'a', 'b']) await insertMessage(db.pool, topic.id, key);
    await publishedAgo(webhook.id, 'a', 1, 1000);
    await publishedAgo(webhook.id, 'a', 2, 900);
    await publishedAgo(webhook.id, 'a', 3, 800);
    await publishedAgo(webhook.id, 'b', 1, 500);
    const age = (await figures(webhook.id)).age;
    expect(age).toBeGreaterThanOrEqual(1000);
    expect(age).toBeLessThan(1010);

    // a's head dies and the line blocks there: the oldest pending is a's second.
    await db.pool.query(
      `UPDATE deliveries SET status = 'dead', dead_at = now()
       WHERE webhook_id = $1 AND partition_key = 'a' AND sequence = 1`,
      [webhook.id],
    );
    await db.pool.query(
      `UPDATE delivery_lines SET blocked = true, next_attempt_at = NULL
       WHERE webhook_id = $1 AND partition_key = 'a'`,
      [webhook.id],
    );
    let now = await figures(webhook.id);
    expect(now).toMatchObject({ pending: 3, blocked: 1 });
    expect(now.age).toBeGreaterThanOrEqual(900);
    expect(now.age).toBeLessThan(910);

    // Nothing pending after the blocked head (sent before a redrive, say): b's head.
    await db.pool.query(
      `UPDATE deliveries SET status = 'delivered', delivered_at = now()
       WHERE webhook_id = $1 AND partition_key = 'a' AND sequence > 1`,
      [webhook.id],
    );
    now = await figures(webhook.id);
    expect(now.age).toBeGreaterThanOrEqual(500);
    expect(now.age).toBeLessThan(510);

    // Nothing pending at all.
    await db.pool.query(
      `UPDATE delivery_lines SET head_sequence = tail_sequence + 1, head_created_at = NULL
       WHERE webhook_id = $1 AND partition_key = 'b'`,
      [webhook.id],
    );
    expect((await figures(webhook.id)).age).toBe(0);
  });
});

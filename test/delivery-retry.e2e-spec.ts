import type { INestApplicationContext } from '@nestjs/common';
import { createTestDatabase, TestDatabase } from './helpers/db.js';
import { eventually } from './helpers/eventually.js';
import { createTopic, createWebhook, insertMessage } from './helpers/factories.js';
import { Receiver } from './helpers/receiver.js';
import { startInProcessWorker } from './helpers/worker.js';

/** Backoff spacing as recorded in delivery_attempts, with a fractional factor and a cap. */
describe('delivery retries', () => {
  let db: TestDatabase;
  let worker: INestApplicationContext;
  let receiver: Receiver;

  beforeAll(async () => {
    db = await createTestDatabase();
    receiver = await Receiver.start(() => ({ status: 500 }));
    worker = await startInProcessWorker(db.url, {
      MAX_RETRIES: '4',
      BACKOFF_FACTOR: '1.5',
      BACKOFF_MAX_SECONDS: '2',
      // Polling alone could not keep this spacing: the worker's own retry timer must.
      POLL_INTERVAL_MS: '5000',
    });
  });
  afterAll(async () => {
    await worker?.close();
    await receiver?.close();
    await db?.drop();
  });

  it('spaces attempts by BACKOFF_FACTOR^n seconds, capped, then dead-letters and moves on', async () => {
    const topic = await createTopic(db.pool);
    const webhook = await createWebhook(db.pool, topic.id, receiver.url);
    receiver.handler = (a) =>
      a.headers['webhook-sequence'] === '1' ? { status: 500 } : { status: 200 };
    await insertMessage(db.pool, topic.id, 'k');
    await insertMessage(db.pool, topic.id, 'k');
    await eventually(() => receiver.where('webhook-sequence', '2').length === 1, {
      timeoutMs: 15_000,
      what: 'the message after the dead one',
    });
    const { rows } = await db.pool.query<{
      attempt: number;
      started_at: Date;
      duration_ms: number;
    }>(
      `SELECT a.attempt, a.started_at, a.duration_ms FROM delivery_attempts a
       JOIN deliveries d ON d.id = a.delivery_id
       WHERE d.webhook_id = $1 AND d.sequence = 1 ORDER BY a.attempt`,
      [webhook.id],
    );
    expect(rows.map((r) => r.attempt)).toEqual([1, 2, 3, 4]);
    // After failure n the next attempt is due factor^n s later ±10 % jitter, capped at 2 s:
    // 1.5, 2, 2.
    const expected = [1.5, 2, 2];
    for (let n = 1; n < rows.length; n++) {
      const previousEnd = rows[n - 1].started_at.getTime() + rows[n - 1].duration_ms;
      const gap = rows[n].started_at.getTime() - previousEnd;
      expect(gap).toBeGreaterThanOrEqual(expected[n - 1] * 900 - 5);
      expect(gap).toBeLessThan(expected[n - 1] * 1000 + 1000);
    }
    const dead = await db.pool.query(
      `SELECT status, attempts, last_status_code FROM deliveries WHERE webhook_id = $1 ORDER BY sequence`,
      [webhook.id],
    );
    expect(dead.rows).toEqual([
      { status: 'dead', attempts: 4, last_status_code: 500 },
      { status: 'delivered', attempts: 1, last_status_code: 200 },
    ]);
  });

  it('honours Retry-After on 429', async () => {
    const topic = await createTopic(db.pool);
    const webhook = await createWebhook(db.pool, topic.id, receiver.url);
    let calls = 0;
    receiver.handler = () =>
      ++calls === 1 ? { status: 429, headers: { 'retry-after': '0' } } : { status: 200 };
    await insertMessage(db.pool, topic.id, 'r');
    await eventually(
      async () =>
        (
          await db.pool.query(
            `SELECT 1 FROM deliveries WHERE webhook_id = $1 AND status = 'delivered'`,
            [webhook.id],
          )
        ).rowCount === 1,
      { what: 'delivered after the 429' },
    );
    const { rows } = await db.pool.query<{ status_code: number }>(
      `SELECT a.status_code FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id
       WHERE d.webhook_id = $1 ORDER BY a.attempt`,
      [webhook.id],
    );
    expect(rows.map((r) => r.status_code)).toEqual([429, 200]);
    // The 429 is a row of its own; the success is kept on the delivery, with the next id.
    const { rows: kept } = await db.pool.query(
      `SELECT a.id::int AS logged, d.delivered_attempt_id::int AS kept,
              d.attempts, d.last_status_code, d.delivered_started_at > a.started_at AS later
       FROM deliveries d JOIN logged_attempts a ON a.delivery_id = d.id
       WHERE d.webhook_id = $1`,
      [webhook.id],
    );
    expect(kept).toEqual([
      {
        logged: expect.any(Number),
        kept: expect.any(Number),
        attempts: 2,
        last_status_code: 200,
        later: true,
      },
    ]);
    expect(kept[0].kept).toBeGreaterThan(kept[0].logged);
  });
});

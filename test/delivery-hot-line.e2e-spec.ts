import type { INestApplicationContext } from '@nestjs/common';
import { createTestDatabase, TestDatabase } from './helpers/db.js';
import { eventually } from './helpers/eventually.js';
import { createTopic, createWebhook } from './helpers/factories.js';
import { Receiver } from './helpers/receiver.js';
import { startInProcessWorker } from './helpers/worker.js';

/**
 * A hot partition keeps its worker: with slots free, a line with heads waiting is never handed
 * back to the claim queue between messages (each hand-back would cost a claim, and a new lease
 * token). While every slot is taken, a line still goes back after 20 heads in a row, for the
 * others' turn (the fairness tests).
 */
describe('a hot partition on a worker with free slots', () => {
  let db: TestDatabase;
  let worker: INestApplicationContext | undefined;
  let receiver: Receiver | undefined;

  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await worker?.close();
    await receiver?.close();
    await db?.drop();
  });

  it('delivers 60 messages in order under one lease', async () => {
    const MESSAGES = 60;
    const topic = await createTopic(db.pool);
    // While each request is in flight, the line's lease token is the one it was sent under.
    const tokens: string[] = [];
    receiver = await Receiver.start(async () => {
      const { rows } = await db.pool.query<{ lease_token: string }>(
        `SELECT lease_token FROM delivery_lines WHERE partition_key = 'hot'`,
      );
      tokens.push(rows[0].lease_token);
      return { status: 204 };
    });
    await createWebhook(db.pool, topic.id, receiver.url);
    await db.pool.query(
      `INSERT INTO messages (topic_id, partition_key, payload)
       SELECT $1, 'hot', jsonb_build_object('n', n) FROM generate_series(1, $2::int) n`,
      [topic.id, MESSAGES],
    );
    worker = await startInProcessWorker(db.url, { WORKER_CONCURRENCY: '10' });
    await eventually(() => receiver!.arrivals.length >= MESSAGES, {
      what: `${MESSAGES} arrivals`,
    });
    const sequences = receiver.arrivals.map((a) => Number(a.headers['webhook-sequence']));
    expect(sequences).toEqual(Array.from({ length: MESSAGES }, (_, i) => i + 1));
    expect(new Set(tokens).size).toBe(1);
  });
});

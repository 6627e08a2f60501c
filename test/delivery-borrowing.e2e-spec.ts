import type { INestApplicationContext } from '@nestjs/common';
import { createTestDatabase, TestDatabase } from './helpers/db.js';
import { eventually } from './helpers/eventually.js';
import { createTopic, createWebhook, insertMessage } from './helpers/factories.js';
import { Arrival, Receiver } from './helpers/receiver.js';
import { startInProcessWorker } from './helpers/worker.js';

/**
 * The per-webhook cap is work-conserving: a lone webhook that answers quickly borrows the free
 * slots beyond WORKER_CONCURRENCY_PER_WEBHOOK (all but one), and gives them back as soon as
 * another webhook's work arrives; one that hangs while borrowing leaves the others a slot.
 */
describe('delivery: borrowing beyond the per-webhook cap', () => {
  let db: TestDatabase;
  const receivers: Receiver[] = [];
  const contexts: INestApplicationContext[] = [];

  beforeEach(async () => {
    db = await createTestDatabase();
  });
  afterEach(async () => {
    await Promise.all(contexts.splice(0).map((c) => c.close()));
    await Promise.all(receivers.splice(0).map((r) => r.close()));
    await db.drop();
  });

  /**
   * A receiver that answers after `delayMs` (or what `slowMs` says for an arrival) and counts
   * the requests it holds at once.
   */
  async function counting(delayMs: number, slowMs: (a: Arrival) => number = () => delayMs) {
    const gauge = { now: 0, max: 0 };
    const receiver = await Receiver.start(async (arrival) => {
      gauge.now += 1;
      gauge.max = Math.max(gauge.max, gauge.now);
      await new Promise((r) => setTimeout(r, slowMs(arrival)));
      gauge.now -= 1;
      return { status: 200 };
    });
    receivers.push(receiver);
    return { receiver, gauge };
  }

  /** `perKey` messages on each of `keys` partitions, in one INSERT (the trigger fans them out). */
  async function backlog(topicId: number, keys: number, perKey: number, prefix = 'p') {
    await db.pool.query(
      `INSERT INTO messages (topic_id, partition_key, payload)
       SELECT $1::int, $2::text || (i % $3::int), jsonb_build_object('i', i)
       FROM generate_series(0, $3::int * $4::int - 1) AS i`,
      [topicId, prefix, keys, perKey],
    );
  }

  async function worker(env: Record<string, string>) {
    contexts.push(await startInProcessWorker(db.url, { DELIVERY_TIMEOUT_MS: '5000', ...env }));
  }

  it('lets a lone webhook that answers quickly use more than its cap, in order', async () => {
    const { receiver, gauge } = await counting(150);
    const topic = await createTopic(db.pool);
    await createWebhook(db.pool, topic.id, receiver.url);
    await backlog(topic.id, 20, 4);
    // Ten slots, five per webhook by default.
    await worker({ WORKER_CONCURRENCY: '10' });
    await eventually(() => receiver.arrivals.length >= 80, {
      timeoutMs: 60_000,
      what: 'all 80 messages',
    });
    // Up to nine at once (one slot stays free for another webhook's work); five without
    // borrowing. The machine is shared, so ask for more than the cap, not for nine.
    expect(gauge.max).toBeGreaterThan(5);
    expect(gauge.max).toBeLessThanOrEqual(9);
    for (let k = 0; k < 20; k++) {
      const sequences = receiver.where('webhook-partition-key', `p${k}`);
      expect(sequences.map((a) => Number(a.headers['webhook-sequence']))).toEqual([1, 2, 3, 4]);
    }
  }, 90_000);

  it('gives the borrowed slots back when another webhook has work', async () => {
    const busy = await counting(150);
    const other = await counting(150);
    const busyTopic = await createTopic(db.pool);
    const otherTopic = await createTopic(db.pool);
    await createWebhook(db.pool, busyTopic.id, busy.receiver.url);
    await createWebhook(db.pool, otherTopic.id, other.receiver.url);
    await backlog(busyTopic.id, 20, 40);
    await worker({ WORKER_CONCURRENCY: '10' });
    await eventually(() => busy.gauge.now > 5, {
      timeoutMs: 30_000,
      what: 'the lone webhook borrowing beyond its cap',
    });

    await backlog(otherTopic.id, 20, 10, 'q');
    // The newcomer's lines are younger than the borrower's: without the cap biting again it
    // would get the one free slot only. With it, every slot that frees up goes to the newcomer
    // until it holds its cap.
    await eventually(() => other.gauge.now >= 5, {
      timeoutMs: 30_000,
      what: 'the second webhook reaching its cap of five at once',
    });
    expect(busy.gauge.now).toBeLessThanOrEqual(5);
    expect(other.gauge.max).toBeLessThanOrEqual(5);
  }, 90_000);

  it('keeps a slot for another webhook when a borrower hangs', async () => {
    // Quick for its first message on each partition, then it hangs for 4 s (of 5 s allowed).
    const hanging = await counting(20, (a) => (a.headers['webhook-sequence'] === '1' ? 20 : 4000));
    const healthy = await counting(0);
    const hangingTopic = await createTopic(db.pool);
    const healthyTopic = await createTopic(db.pool);
    await createWebhook(db.pool, hangingTopic.id, hanging.receiver.url);
    await createWebhook(db.pool, healthyTopic.id, healthy.receiver.url);
    // Four slots, two per webhook: the borrower may take three.
    await worker({ WORKER_CONCURRENCY: '4', MAX_RETRIES: '1000', BACKOFF_FACTOR: '0.05' });
    await backlog(hangingTopic.id, 8, 2);
    await eventually(() => hanging.gauge.now >= 3, {
      timeoutMs: 30_000,
      what: 'the borrower holding three slots, hung',
    });

    const latencies: number[] = [];
    for (let i = 0; i < 5; i++) {
      const before = healthy.receiver.arrivals.length;
      const sent = Date.now();
      await insertMessage(db.pool, healthyTopic.id, 'h');
      const arrival = await eventually(() => healthy.receiver.arrivals[before], {
        timeoutMs: 30_000,
        intervalMs: 5,
        what: 'the healthy webhook to get its message',
      });
      latencies.push(arrival.at - sent);
    }
    // Taking the last slot too, the borrower would make each wait up to 4 s.
    expect(hanging.gauge.max).toBeLessThanOrEqual(3);
    const slow = latencies.filter((ms) => ms >= 1500);
    expect({ latencies, slow }).toEqual({ latencies, slow: [] });
  }, 90_000);
});

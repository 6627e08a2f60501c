import type { INestApplicationContext } from '@nestjs/common';
import pg from 'pg';
import { Inbox, verify } from '@pgwq/receiver';
import type { Delivery } from '@pgwq/receiver';
import { createTestDatabase, TestDatabase } from './helpers/db.js';
import { eventually } from './helpers/eventually.js';
import { createTopic, createWebhook } from './helpers/factories.js';
import { Arrival, Receiver } from './helpers/receiver.js';
import { startInProcessWorker } from './helpers/worker.js';

const SECRET = 'whsec_' + Buffer.alloc(32, 9).toString('base64');

/**
 * webhook-previous-sequence and webhook-event-type on real deliveries (a worker, receivers on
 * loopback), checked with the receiver kit: both signatures verify, a line that gets a subset
 * of its partition moves through it without stalling, and the inbox tells a filtered message
 * (no gap) from a dead-lettered one (a gap).
 */
describe('previous sequence and event type headers', () => {
  let db: TestDatabase;
  let worker: INestApplicationContext;
  let inboxPool: pg.Pool;
  const inbox = new Inbox({ table: 'routing_inbox' });
  const receivers: Receiver[] = [];

  async function receiver(...args: Parameters<typeof Receiver.start>) {
    const r = await Receiver.start(...args);
    receivers.push(r);
    return r;
  }

  const verified = (a: Arrival): Delivery =>
    verify({ headers: a.headers as Record<string, string>, body: a.body }, SECRET);

  /** Applies a delivery through the inbox in its own transaction; returns its status. */
  async function applyToInbox(d: Delivery, webhook: string): Promise<string> {
    const client = await inboxPool.connect();
    try {
      await client.query('BEGIN');
      const result = await inbox.accept(client, d, { webhook });
      await client.query('COMMIT');
      return result.status;
    } finally {
      client.release();
    }
  }

  const publish = (key: string, eventType: string | null) =>
    db.pool.query(`SELECT pgwq_publish('shop', $1, $2::jsonb, $3)`, [
      key,
      JSON.stringify({ eventType }),
      eventType,
    ]);

  beforeAll(async () => {
    db = await createTestDatabase();
    inboxPool = new pg.Pool({ connectionString: db.url, max: 2 });
    await inbox.install(inboxPool);
    worker = await startInProcessWorker(db.url, { MAX_RETRIES: '2', BACKOFF_FACTOR: '0.1' });
    await createTopic(db.pool, 'shop');
  });
  afterAll(async () => {
    await worker?.close();
    await Promise.all(receivers.map((r) => r.close()));
    await inboxPool?.end();
    await db?.drop();
  });

  it('sends each line its previous sequence and event type, signed, across filtered messages', async () => {
    const everything = await receiver();
    const ordersOnly = await receiver();
    const topicId = (await db.pool.query(`SELECT id FROM topics WHERE name = 'shop'`)).rows[0].id;
    await createWebhook(db.pool, topicId, everything.url, SECRET);
    const filtered = await createWebhook(db.pool, topicId, ordersOnly.url, SECRET);
    await db.pool.query(`UPDATE webhooks SET event_types = '{order.*}' WHERE id = $1`, [
      filtered.id,
    ]);
    // 1 order.created, 2 user.created, 3 untyped, 4 order.paid, 5 user.deleted, 6 order.shipped:
    // the filtered line gets 1, 4 and 6, published one by one and in one transaction.
    await publish('k', 'order.created');
    await publish('k', 'user.created');
    await publish('k', null);
    const client = await db.pool.connect();
    try {
      await client.query('BEGIN');
      await client.query(`SELECT pgwq_publish('shop', 'k', '{}', 'order.paid')`);
      await client.query(`SELECT pgwq_publish('shop', 'k', '{}', 'user.deleted')`);
      await client.query(`SELECT pgwq_publish('shop', 'k', '{}', 'order.shipped')`);
      await client.query('COMMIT');
    } finally {
      client.release();
    }

    await eventually(() => everything.arrivals.length >= 6 && ordersOnly.arrivals.length >= 3, {
      timeoutMs: 15_000,
    });
    const seen = (r: Receiver) =>
      r.arrivals.map((a) => {
        const d = verified(a);
        return [d.sequence, d.previousSequence, d.eventType];
      });
    expect(seen(ordersOnly)).toEqual([
      [1, null, 'order.created'],
      [4, 1, 'order.paid'],
      [6, 4, 'order.shipped'],
    ]);
    expect(seen(everything)).toEqual([
      [1, null, 'order.created'],
      [2, 1, 'user.created'],
      [3, 2, null],
      [4, 3, 'order.paid'],
      [5, 4, 'user.deleted'],
      [6, 5, 'order.shipped'],
    ]);
    // The raw headers: the previous sequence is "" for a line's first; no event type header for
    // an untyped message.
    expect(ordersOnly.arrivals[0].headers['webhook-previous-sequence']).toBe('');
    expect(everything.arrivals[2].headers).not.toHaveProperty('webhook-event-type');
    expect(everything.arrivals[2].headers['webhook-previous-sequence']).toBe('2');
    // A changed previous sequence fails the metadata signature.
    const forged = { ...ordersOnly.arrivals[1], headers: { ...ordersOnly.arrivals[1].headers } };
    forged.headers['webhook-previous-sequence'] = '3';
    expect(() => verified(forged)).toThrow(/webhook-metadata-signature/);

    // The inbox applies the filtered line without a gap.
    const statuses = [];
    for (const a of ordersOnly.arrivals) statuses.push(await applyToInbox(verified(a), 'orders'));
    expect(statuses).toEqual(['accepted', 'accepted', 'accepted']);

    // Both lines went idle past their tails: nothing stalled on a sequence the line never got.
    const lineStates = async () =>
      (
        await db.pool.query(
          `SELECT webhook_id, head_sequence::int AS head, tail_sequence::int AS tail,
                  next_attempt_at, lease_token
           FROM delivery_lines WHERE partition_key = 'k' ORDER BY webhook_id`,
        )
      ).rows;
    await eventually(async () => (await lineStates()).every((r) => r.lease_token === null));
    const rows = await lineStates();
    expect(rows.map((r) => [r.head, r.tail, r.next_attempt_at, r.lease_token])).toEqual([
      [7, 6, null, null],
      [7, 6, null, null],
    ]);
  });

  it('names a dead-lettered message as the previous sequence of the next one: the inbox sees a gap', async () => {
    const topicId = (await db.pool.query(`SELECT id FROM topics WHERE name = 'shop'`)).rows[0].id;
    // Refuses order.paid for good; everything else succeeds.
    const hook = await receiver((a) =>
      a.headers['webhook-event-type'] === 'order.paid' ? { status: 500 } : { status: 204 },
    );
    const webhook = await createWebhook(db.pool, topicId, hook.url, SECRET);
    await db.pool.query(`UPDATE webhooks SET event_types = '{order.*}' WHERE id = $1`, [
      webhook.id,
    ]);
    await publish('d', 'order.created'); // 1
    await publish('d', 'user.created'); // 2, not for this webhook
    await publish('d', 'order.paid'); // 3, dead after 2 attempts
    await publish('d', 'user.created'); // 4, not for this webhook
    await publish('d', 'order.shipped'); // 5

    await eventually(() => hook.arrivals.some((a) => a.headers['webhook-sequence'] === '5'), {
      timeoutMs: 15_000,
    });
    const deliveries = hook.arrivals.map(verified);
    expect(deliveries.map((d) => [d.sequence, d.previousSequence, d.attempt])).toEqual([
      [1, null, 1],
      [3, 1, 1],
      [3, 1, 2],
      [5, 3, 1],
    ]);
    const recorded = async () =>
      (
        await db.pool.query(
          `SELECT sequence::int, status, previous_sequence::int AS previous FROM deliveries
           WHERE webhook_id = $1 ORDER BY sequence`,
          [webhook.id],
        )
      ).rows;
    await eventually(async () => (await recorded())[2]?.status === 'delivered');
    const rows = await recorded();
    expect(rows).toEqual([
      { sequence: 1, status: 'delivered', previous: null },
      { sequence: 3, status: 'dead', previous: 1 },
      { sequence: 5, status: 'delivered', previous: 3 },
    ]);
    // The receiver applied 1 and never 3 (it answered 500): 5 names 3, so it is a gap.
    expect(await applyToInbox(deliveries[0], 'dead-letter')).toBe('accepted');
    expect(await applyToInbox(deliveries[3], 'dead-letter')).toBe('gap');
  });
});

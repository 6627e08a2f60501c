import type { INestApplicationContext } from '@nestjs/common';
import { Webhook } from 'standardwebhooks';
import { createTestDatabase, TestDatabase } from './helpers/db.js';
import { eventually } from './helpers/eventually.js';
import { createTopic, createWebhook, insertMessage, withEchoTrigger } from './helpers/factories.js';
import { Receiver } from './helpers/receiver.js';
import { startInProcessWorker } from './helpers/worker.js';

/** The delivery engine against a real PostgreSQL and real HTTP receivers (DESIGN §3, §4). */
describe('delivery', () => {
  let db: TestDatabase;
  let worker: INestApplicationContext;
  const receivers: Receiver[] = [];

  async function receiver(...args: Parameters<typeof Receiver.start>) {
    const r = await Receiver.start(...args);
    receivers.push(r);
    return r;
  }

  async function delivery(webhookId: number, sequence: number, partitionKey = 'k') {
    const { rows } = await db.pool.query(
      `SELECT id::int, status, attempts, last_status_code, last_error, delivered_at, dead_at
       FROM deliveries WHERE webhook_id = $1 AND sequence = $2 AND partition_key = $3`,
      [webhookId, sequence, partitionKey],
    );
    return rows[0];
  }

  async function attempts(deliveryId: number) {
    const { rows } = await db.pool.query(
      `SELECT attempt, status_code, error, response_body, duration_ms, started_at
       FROM delivery_attempts WHERE delivery_id = $1 ORDER BY attempt`,
      [deliveryId],
    );
    return rows;
  }

  beforeAll(async () => {
    db = await createTestDatabase();
    worker = await startInProcessWorker(db.url, { MAX_RETRIES: '3', BACKOFF_FACTOR: '0.1' });
  });
  afterAll(async () => {
    await worker?.close();
    await Promise.all(receivers.map((r) => r.close()));
    await db?.drop();
  });

  it('POSTs a signed, well-formed delivery and records it as delivered', async () => {
    const hook = await receiver(() => ({ status: 200, body: 'x'.repeat(5000) }));
    const topic = await createTopic(db.pool, 'orders');
    const webhook = await createWebhook(db.pool, topic.id, hook.url);
    const message = await insertMessage(db.pool, topic.id, 'user-42', {
      event: 'order.created',
      total: 12.5,
    });

    const done = await eventually(
      async () =>
        (await delivery(webhook.id, 1, 'user-42'))?.status === 'delivered' &&
        delivery(webhook.id, 1, 'user-42'),
      { what: 'delivered' },
    );
    expect(hook.arrivals).toHaveLength(1);
    const [arrival] = hook.arrivals;
    const { rows } = await db.pool.query(
      'SELECT payload::text AS body FROM messages WHERE id = $1',
      [message.id],
    );
    expect(arrival.body).toBe(rows[0].body);
    expect(arrival.headers).toMatchObject({
      'content-type': 'application/json',
      'webhook-id': String(message.id),
      'webhook-topic': 'orders',
      'webhook-partition-key': 'user-42',
      'webhook-sequence': '1',
      'webhook-attempt': '1',
    });
    expect(arrival.headers['user-agent']).toMatch(/^pg-webhook-queue\//);
    const ts = Number(arrival.headers['webhook-timestamp']);
    expect(Math.abs(ts - Date.now() / 1000)).toBeLessThan(30);
    // Verified as a receiver would, with the standardwebhooks package.
    const verified = new Webhook(webhook.secret).verify(arrival.body, {
      'webhook-id': arrival.headers['webhook-id'] as string,
      'webhook-timestamp': arrival.headers['webhook-timestamp'] as string,
      'webhook-signature': arrival.headers['webhook-signature'] as string,
    });
    expect(verified).toEqual({ event: 'order.created', total: 12.5 });

    expect(done).toMatchObject({ attempts: 1, last_status_code: 200, last_error: null });
    expect(done.delivered_at).toBeInstanceOf(Date);
    const recorded = await attempts(done.id);
    expect(recorded).toHaveLength(1);
    expect(recorded[0]).toMatchObject({ attempt: 1, status_code: 200, error: null });
    expect(recorded[0].response_body).toBe('x'.repeat(1024));
    const line = await db.pool.query(
      'SELECT head_sequence, tail_sequence, next_attempt_at, lease_token FROM delivery_lines WHERE webhook_id = $1',
      [webhook.id],
    );
    expect(line.rows).toEqual([
      { head_sequence: '2', tail_sequence: '1', next_attempt_at: null, lease_token: null },
    ]);
  });

  it('signs with both secrets while a rotated-out secret is still valid', async () => {
    const hook = await receiver();
    const topic = await createTopic(db.pool);
    const webhook = await createWebhook(db.pool, topic.id, hook.url);
    const previous = webhook.secret;
    const current = 'whsec_' + Buffer.alloc(32, 9).toString('base64');
    await db.pool.query(
      `UPDATE webhooks SET secret = $2, previous_secret = $3,
         previous_secret_expires_at = now() + interval '1 hour' WHERE id = $1`,
      [webhook.id, current, previous],
    );
    await insertMessage(db.pool, topic.id, 'k');
    const arrival = await eventually(() => hook.arrivals[0], { what: 'arrival' });
    const headers = {
      'webhook-id': arrival.headers['webhook-id'] as string,
      'webhook-timestamp': arrival.headers['webhook-timestamp'] as string,
      'webhook-signature': arrival.headers['webhook-signature'] as string,
    };
    expect(headers['webhook-signature'].split(' ')).toHaveLength(2);
    expect(() => new Webhook(current).verify(arrival.body, headers)).not.toThrow();
    expect(() => new Webhook(previous).verify(arrival.body, headers)).not.toThrow();
  });

  it('treats a redirect, a refused connection and a timeout as failures with a clear error', async () => {
    const redirect = await receiver(() => ({
      status: 302,
      headers: { location: 'http://example.com/' },
    }));
    const hang = await receiver(() => 'hang');
    const topic = await createTopic(db.pool);
    const w1 = await createWebhook(db.pool, topic.id, redirect.url);
    const w2 = await createWebhook(db.pool, topic.id, 'http://127.0.0.1:1/refused');
    const w3 = await createWebhook(db.pool, topic.id, hang.url);
    await insertMessage(db.pool, topic.id, 'k');
    const failed = async (id: number) => {
      const d = await delivery(id, 1);
      return d?.attempts >= 1 && d;
    };
    const [d1, d2, d3] = await Promise.all(
      [w1, w2, w3].map((w) => eventually(() => failed(w.id), { what: `webhook ${w.id} failed` })),
    );
    expect(d1).toMatchObject({ last_status_code: 302 });
    expect(d1.last_error).toMatch(/redirect not followed/);
    expect(redirect.arrivals.length).toBeGreaterThanOrEqual(1);
    expect(d2).toMatchObject({ last_status_code: null });
    expect(d2.last_error).toMatch(/connection refused/);
    expect(d3).toMatchObject({ status: 'pending', attempts: 1, last_status_code: null });
    expect(d3.last_error).toMatch(/timeout after 1000 ms/);
    await db.pool.query('DELETE FROM topics WHERE id = $1', [topic.id]);
  });

  it('holds up only the partition whose receiver hangs, and only for that webhook', async () => {
    const slow = await receiver((a) =>
      a.headers['webhook-partition-key'] === 'stuck' ? 'hang' : { status: 200 },
    );
    const failing = await receiver(() => ({ status: 500 }));
    const healthy = await receiver();
    const topic = await createTopic(db.pool);
    const wSlow = await createWebhook(db.pool, topic.id, slow.url);
    await createWebhook(db.pool, topic.id, failing.url);
    await createWebhook(db.pool, topic.id, healthy.url);
    for (let i = 0; i < 3; i++) {
      await insertMessage(db.pool, topic.id, 'stuck', { i });
      await insertMessage(db.pool, topic.id, 'free', { i });
    }
    // The healthy webhook gets everything, the slow one every other partition, in order.
    await eventually(() => healthy.arrivals.length === 6, { what: 'healthy webhook gets all six' });
    await eventually(() => slow.where('webhook-partition-key', 'free').length === 3, {
      what: 'slow webhook gets the free partition',
    });
    expect(
      slow.where('webhook-partition-key', 'free').map((a) => a.headers['webhook-sequence']),
    ).toEqual(['1', '2', '3']);
    // The stuck partition never gets past its first message for the slow webhook.
    expect(
      slow
        .where('webhook-partition-key', 'stuck')
        .every((a) => a.headers['webhook-sequence'] === '1'),
    ).toBe(true);
    expect((await delivery(wSlow.id, 2, 'stuck')).status).toBe('pending');
    await db.pool.query('DELETE FROM topics WHERE id = $1', [topic.id]);
  });

  it('dead-letters after MAX_RETRIES and moves the partition on', async () => {
    const hook = await receiver((a) =>
      JSON.parse(a.body).poison ? { status: 500, body: 'boom' } : { status: 200 },
    );
    const topic = await createTopic(db.pool);
    const webhook = await createWebhook(db.pool, topic.id, hook.url);
    await insertMessage(db.pool, topic.id, 'k', { poison: true });
    await insertMessage(db.pool, topic.id, 'k', { poison: false });
    const second = await eventually(
      async () =>
        (await delivery(webhook.id, 2))?.status === 'delivered' && delivery(webhook.id, 2),
      { what: 'second delivered' },
    );
    const first = await delivery(webhook.id, 1);
    expect(first).toMatchObject({
      status: 'dead',
      attempts: 3,
      last_status_code: 500,
      last_error: 'HTTP 500',
    });
    expect(first.dead_at.getTime()).toBeLessThanOrEqual(second.delivered_at.getTime());
    expect(
      (await attempts(first.id)).map((a) => [a.attempt, a.status_code, a.response_body]),
    ).toEqual([
      [1, 500, 'boom'],
      [2, 500, 'boom'],
      [3, 500, 'boom'],
    ]);
    expect(
      hook.arrivals.map((a) => [a.headers['webhook-sequence'], a.headers['webhook-attempt']]),
    ).toEqual([
      ['1', '1'],
      ['1', '2'],
      ['1', '3'],
      ['2', '1'],
    ]);
    expect(new Set(hook.arrivals.slice(0, 3).map((a) => a.headers['webhook-id'])).size).toBe(1);
  });

  it('gives a webhook created after a message nothing of it, and a deleted webhook nothing more', async () => {
    const early = await receiver();
    const late = await receiver();
    const topic = await createTopic(db.pool);
    const wEarly = await createWebhook(db.pool, topic.id, early.url);
    await insertMessage(db.pool, topic.id, 'k', { n: 1 });
    await createWebhook(db.pool, topic.id, late.url);
    await insertMessage(db.pool, topic.id, 'k', { n: 2 });
    await eventually(() => early.arrivals.length === 2 && late.arrivals.length === 1, {
      what: 'arrivals',
    });
    expect(late.arrivals.map((a) => a.headers['webhook-sequence'])).toEqual(['2']);

    await db.pool.query('DELETE FROM webhooks WHERE id = $1', [wEarly.id]);
    await insertMessage(db.pool, topic.id, 'k', { n: 3 });
    await eventually(() => late.arrivals.length === 2, { what: 'late webhook gets message 3' });
    expect(early.arrivals).toHaveLength(2);
  });

  it('skips a head whose message was deleted', async () => {
    const hook = await receiver((a) => (JSON.parse(a.body).n === 1 ? 'hang' : { status: 200 }));
    const topic = await createTopic(db.pool);
    await createWebhook(db.pool, topic.id, hook.url);
    const first = await insertMessage(db.pool, topic.id, 'k', { n: 1 });
    await insertMessage(db.pool, topic.id, 'k', { n: 2 });
    await eventually(() => hook.arrivals.length >= 1, { what: 'first attempt' });
    await db.pool.query('DELETE FROM messages WHERE id = $1', [first.id]);
    await eventually(() => hook.where('webhook-sequence', '2').length === 1, {
      what: 'second message',
    });
  });

  it('delivers, in order, a message that a trigger inserts inside another insert on the same partition (issue 8, item 4)', async () => {
    const hook = await receiver();
    const topic = await createTopic(db.pool);
    await createWebhook(db.pool, topic.id, hook.url);
    await withEchoTrigger(db.pool, () => insertMessage(db.pool, topic.id, 'k', { echo: true }));
    await eventually(() => hook.arrivals.length >= 2, { what: 'both messages' });
    expect(hook.arrivals.map((a) => [a.headers['webhook-sequence'], JSON.parse(a.body)])).toEqual([
      ['1', { echo: true }],
      ['2', { echo: false }],
    ]);
  });

  // Last: it empties messages for every topic of this file.
  it('delivers a message published after TRUNCATE messages, partition_sequences (issue 8, item 3)', async () => {
    const hook = await receiver();
    const topic = await createTopic(db.pool);
    const webhook = await createWebhook(db.pool, topic.id, hook.url);
    await insertMessage(db.pool, topic.id, 'k', { n: 1 });
    await insertMessage(db.pool, topic.id, 'k', { n: 2 });
    await eventually(
      async () =>
        (await delivery(webhook.id, 2))?.status === 'delivered' &&
        (
          await db.pool.query(
            'SELECT 1 FROM delivery_lines WHERE webhook_id = $1 AND next_attempt_at IS NULL',
            [webhook.id],
          )
        ).rowCount === 1,
      { what: 'the line idle after two deliveries' },
    );
    // Lines first, the order the worker's statements lock in, so the TRUNCATE cannot deadlock.
    await db.pool.query(`
      BEGIN;
      LOCK TABLE delivery_lines IN EXCLUSIVE MODE;
      TRUNCATE messages, partition_sequences CASCADE;
      COMMIT;`);
    await insertMessage(db.pool, topic.id, 'k', { n: 3 });
    await eventually(() => hook.arrivals.length === 3, { what: 'the third message' });
    expect(hook.arrivals.map((a) => [a.headers['webhook-sequence'], JSON.parse(a.body).n])).toEqual(
      [
        ['1', 1],
        ['2', 2],
        ['3', 3],
      ],
    );
  });
});

import type { INestApplicationContext } from '@nestjs/common';
import type { NestExpressApplication } from '@nestjs/platform-express';
import request from 'supertest';
import { createTestApp } from './helpers/app.js';
import { createTestDatabase, TestDatabase } from './helpers/db.js';
import { eventually } from './helpers/eventually.js';
import { createTopic, insertMessage } from './helpers/factories.js';
import { Receiver, Reply } from './helpers/receiver.js';
import { startInProcessWorker } from './helpers/worker.js';

/**
 * DESIGN §10 "Throttling is not failure": a 429, or a 503 with Retry-After, waits as told without
 * using the retry budget, for up to 24 h of uninterrupted throttling; every such attempt is in the
 * attempt log.
 */
describe('throttling', () => {
  let db: TestDatabase;
  let app: NestExpressApplication;
  let http: ReturnType<typeof request>;
  let worker: INestApplicationContext;
  let receiver: Receiver;

  beforeAll(async () => {
    db = await createTestDatabase();
    app = await createTestApp(db.url, { WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true' });
    http = request(app.getHttpServer());
    receiver = await Receiver.start();
    worker = await startInProcessWorker(db.url, { MAX_RETRIES: '5', BACKOFF_FACTOR: '0.05' });
  });
  afterAll(async () => {
    await worker?.close();
    await app?.close();
    await receiver?.close();
    await db?.drop();
  });

  /** A webhook on a topic of its own whose answers are `replies`, in turn, then 200. */
  async function webhookAnswering(replies: Reply[], settings: object = { max_retries: 2 }) {
    const topic = await createTopic(db.pool);
    const res = await http
      .post('/webhooks')
      .send({ topic_id: topic.id, url: `${receiver.url}?t=${topic.id}`, ...settings })
      .expect(201);
    const queue = [...replies];
    const previous = receiver.handler;
    receiver.handler = (arrival) =>
      arrival.headers['webhook-topic'] === topic.name
        ? (queue.shift() ?? { status: 200 })
        : previous(arrival);
    return { topic, webhookId: res.body.id as number };
  }

  const delivery = async (webhookId: number) =>
    (
      await db.pool.query<{
        id: string;
        status: string;
        attempts: number;
        throttled_attempts: number;
        throttled_since: Date | null;
      }>(
        `SELECT id, status, attempts, throttled_attempts, throttled_since FROM deliveries
         WHERE webhook_id = $1`,
        [webhookId],
      )
    ).rows[0];

  const attemptLog = async (deliveryId: string) =>
    (await http.get(`/deliveries/${deliveryId}/attempts`).expect(200)).body as {
      attempt: number;
      status_code: number | null;
    }[];

  it('five 429s with max_retries 2 do not dead-letter; the 200 after them delivers', async () => {
    const { topic, webhookId } = await webhookAnswering(Array(5).fill({ status: 429 }));
    await insertMessage(db.pool, topic.id, 'k');
    const done = await eventually(
      async () => {
        const d = await delivery(webhookId);
        return d?.status !== 'pending' && d;
      },
      { timeoutMs: 20_000, what: 'the delivery finished' },
    );
    expect(done).toMatchObject({ status: 'delivered', attempts: 6, throttled_attempts: 5 });
    const log = await attemptLog(done.id);
    expect(log.map((a) => [a.attempt, a.status_code])).toEqual([
      [1, 429],
      [2, 429],
      [3, 429],
      [4, 429],
      [5, 429],
      [6, 200],
    ]);
    expect(
      receiver.where('webhook-topic', topic.name).map((a) => a.headers['webhook-attempt']),
    ).toEqual(['1', '2', '3', '4', '5', '6']);
  });

  it('503 with Retry-After waits as told and does not dead-letter; 503 without it is a failure', async () => {
    const told = { status: 503, headers: { 'retry-after': '1' } };
    const { topic, webhookId } = await webhookAnswering([told, told, told]);
    await insertMessage(db.pool, topic.id, 'k');
    const done = await eventually(
      async () => {
        const d = await delivery(webhookId);
        return d?.status !== 'pending' && d;
      },
      { timeoutMs: 20_000, what: 'the delivery finished' },
    );
    expect(done).toMatchObject({ status: 'delivered', attempts: 4, throttled_attempts: 3 });
    const arrivals = receiver.where('webhook-topic', topic.name);
    for (let k = 1; k < arrivals.length; k++) {
      // Retry-After: 1 is honoured exactly (no jitter below it).
      expect(arrivals[k].at - arrivals[k - 1].at).toBeGreaterThanOrEqual(990);
    }
    expect((await attemptLog(done.id)).map((a) => a.status_code)).toEqual([503, 503, 503, 200]);

    const plain = await webhookAnswering([{ status: 503 }, { status: 503 }, { status: 503 }]);
    await insertMessage(db.pool, plain.topic.id, 'k');
    const dead = await eventually(
      async () => {
        const d = await delivery(plain.webhookId);
        return d?.status !== 'pending' && d;
      },
      { timeoutMs: 20_000, what: 'the delivery finished' },
    );
    expect(dead).toMatchObject({ status: 'dead', attempts: 2, throttled_attempts: 0 });
  });

  it('after 24 h of uninterrupted throttling, throttling answers count as failures', async () => {
    const { topic, webhookId } = await webhookAnswering(
      [{ status: 429, headers: { 'retry-after': '2' } }].concat(
        Array(20).fill({ status: 429, headers: { 'retry-after': '0' } }),
      ),
    );
    await insertMessage(db.pool, topic.id, 'k');
    const first = await eventually(
      async () => {
        const d = await delivery(webhookId);
        return d?.attempts === 1 && d.throttled_since !== null && d;
      },
      { what: 'the first throttled attempt' },
    );
    expect(first.throttled_attempts).toBe(1);
    // The head has been throttled for 25 hours, as far as the queue knows.
    await db.pool.query(
      `UPDATE deliveries SET throttled_since = now() - interval '25 hours' WHERE id = $1`,
      [first.id],
    );
    const dead = await eventually(
      async () => {
        const d = await delivery(webhookId);
        return d?.status !== 'pending' && d;
      },
      { timeoutMs: 20_000, what: 'the delivery dead-lettered' },
    );
    // One throttled attempt, then two 429s counted as failures: max_retries 2 used up.
    expect(dead).toMatchObject({ status: 'dead', attempts: 3, throttled_attempts: 1 });
    expect((await attemptLog(dead.id)).map((a) => a.status_code)).toEqual([429, 429, 429]);
  });
});

import type { NestExpressApplication } from '@nestjs/platform-express';
import request from 'supertest';
import { createTestApp } from './helpers/app.js';
import { createTestDatabase, TestDatabase } from './helpers/db.js';
import { eventually } from './helpers/eventually.js';
import { createTopic, insertMessage } from './helpers/factories.js';
import { Receiver } from './helpers/receiver.js';
import { WorkerProcess } from './helpers/worker.js';

/**
 * DESIGN §10 max_in_flight and rate_limit_per_second hold across all workers: two worker
 * processes, each free to run many requests to the webhook at once (WORKER_CONCURRENCY 10), share
 * one limit kept in the database.
 */
describe('per-webhook limits across workers', () => {
  let db: TestDatabase;
  let app: NestExpressApplication;
  let http: ReturnType<typeof request>;
  let receiver: Receiver;
  const workers: WorkerProcess[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
    app = await createTestApp(db.url, { WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true' });
    http = request(app.getHttpServer());
    receiver = await Receiver.start();
    for (let k = 0; k < 2; k++) {
      workers.push(
        WorkerProcess.spawn(db.url, {
          WORKER_CONCURRENCY: '10',
          WORKER_CONCURRENCY_PER_WEBHOOK: '10',
          POLL_INTERVAL_MS: '100',
        }),
      );
    }
  });
  afterAll(async () => {
    await Promise.all(workers.map((w) => w.stop()));
    await app?.close();
    await receiver?.close();
    await db?.drop();
  });

  async function webhook(settings: object) {
    const topic = await createTopic(db.pool);
    const res = await http
      .post('/webhooks')
      .send({ topic_id: topic.id, url: `${receiver.url}?t=${topic.id}`, ...settings })
      .expect(201);
    return { topic, webhookId: res.body.id as number };
  }

  const delivered = async (webhookId: number) =>
    Number(
      (
        await db.pool.query(
          `SELECT count(*) FROM deliveries WHERE webhook_id = $1 AND status = 'delivered'`,
          [webhookId],
        )
      ).rows[0].count,
    );

  it('max_in_flight 1: never two requests at once, with two workers and many partitions', async () => {
    const { topic, webhookId } = await webhook({ max_in_flight: 1 });
    const unlimited = await webhook({});
    let running = 0;
    const most = new Map<string, number>();
    receiver.handler = async (arrival) => {
      const name = String(arrival.headers['webhook-topic']);
      running += name === topic.name ? 1 : 0;
      most.set(name, Math.max(most.get(name) ?? 0, name === topic.name ? running : 0));
      await new Promise((r) => setTimeout(r, 100));
      if (name === topic.name) running -= 1;
      return { status: 204 };
    };
    // The unlimited webhook, by the same receiver and workers, does run requests side by side.
    let unlimitedRunning = 0;
    let unlimitedMost = 0;
    const inner = receiver.handler;
    receiver.handler = async (arrival) => {
      if (arrival.headers['webhook-topic'] !== unlimited.topic.name) return inner(arrival);
      unlimitedMost = Math.max(unlimitedMost, ++unlimitedRunning);
      await new Promise((r) => setTimeout(r, 100));
      unlimitedRunning -= 1;
      return { status: 204 };
    };
    for (let k = 0; k < 12; k++) {
      await insertMessage(db.pool, topic.id, `p${k % 6}`);
      await insertMessage(db.pool, unlimited.topic.id, `p${k % 6}`);
    }
    await eventually(async () => (await delivered(webhookId)) === 12, {
      timeoutMs: 30_000,
      what: 'all 12 delivered one at a time',
    });
    await eventually(async () => (await delivered(unlimited.webhookId)) === 12, {
      timeoutMs: 30_000,
    });
    expect(most.get(topic.name)).toBe(1);
    expect(unlimitedMost).toBeGreaterThan(1);
    // No lease is left behind to be counted against the limit.
    const { rows } = await db.pool.query(
      `SELECT count(*)::int AS n FROM delivery_lines
       WHERE webhook_id = $1 AND lease_token IS NOT NULL AND next_attempt_at > now()`,
      [webhookId],
    );
    expect(rows[0].n).toBe(0);
  });

  it('rate_limit_per_second 5: at most 5 + 5·T attempts start in any T seconds, across two workers', async () => {
    const rate = 5;
    const burst = Math.max(1, rate);
    const { topic, webhookId } = await webhook({ rate_limit_per_second: rate });
    receiver.handler = () => ({ status: 204 });
    const total = 35;
    for (let k = 0; k < total; k++) await insertMessage(db.pool, topic.id, `p${k % 12}`);
    await eventually(async () => (await delivered(webhookId)) === total, {
      timeoutMs: 40_000,
      what: `all ${total} delivered`,
    });
    const times = receiver
      .where('webhook-topic', topic.name)
      .map((a) => a.at)
      .sort((a, b) => a - b);
    expect(times).toHaveLength(total);
    // The bucket: over any stretch [t_i, t_j] at most burst + rate·(t_j − t_i) attempts start.
    // One more is allowed for the time between taking a token and the request's arrival.
    let worst = -Infinity;
    for (let i = 0; i < times.length; i++) {
      for (let j = i; j < times.length; j++) {
        const started = j - i + 1;
        const allowed = burst + (rate * (times[j] - times[i])) / 1000;
        worst = Math.max(worst, started - allowed);
      }
    }
    expect(worst).toBeLessThanOrEqual(1);
    // And not far below the rate either: the limit is a rate, not a stall.
    const seconds = (times[times.length - 1] - times[0]) / 1000;
    expect(seconds).toBeGreaterThanOrEqual((total - burst - 1) / rate);
    expect(seconds).toBeLessThan(((total - burst) / rate) * 2 + 2);
  });

  it('a filtered line under limits: kept across the messages it does not get, in order, to the end', async () => {
    const { topic, webhookId } = await webhook({
      event_types: ['order.*'],
      max_in_flight: 1,
      rate_limit_per_second: 50,
    });
    receiver.handler = () => ({ status: 204 });
    // One partition: every other message is of a type this webhook does not get.
    for (let k = 0; k < 30; k++) {
      await db.pool.query(
        `INSERT INTO messages (topic_id, partition_key, payload, event_type)
         VALUES ($1, 'p', '{}'::jsonb, $2)`,
        [topic.id, k % 2 === 0 ? 'order.created' : 'invoice.paid'],
      );
    }
    await eventually(async () => (await delivered(webhookId)) === 15, {
      timeoutMs: 30_000,
      what: 'the 15 order messages delivered',
    });
    const arrivals = receiver.where('webhook-topic', topic.name);
    const sequences = arrivals.map((a) => Number(a.headers['webhook-sequence']));
    expect(sequences).toEqual(Array.from({ length: 15 }, (_, i) => 1 + 2 * i));
    // Each names the one before it on this webhook's line, so the receiver sees no gap.
    expect(arrivals.map((a) => a.headers['webhook-previous-sequence'])).toEqual([
      '',
      ...sequences.slice(0, -1).map(String),
    ]);
    expect(arrivals.every((a) => a.headers['webhook-event-type'] === 'order.created')).toBe(true);
    const { rows } = await db.pool.query(
      `SELECT count(*)::int AS n FROM deliveries WHERE webhook_id = $1`,
      [webhookId],
    );
    expect(rows[0].n).toBe(15);
    // The line is idle, not holding a lease or a token for a message it never gets.
    await eventually(
      async () => {
        const lines = (await http.get(`/webhooks/${webhookId}/lines`).expect(200)).body;
        return lines.length === 1 && lines[0].state === 'idle';
      },
      { what: 'the line idle' },
    );
  });
});

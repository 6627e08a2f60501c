import { execFile } from 'node:child_process';
import type { NestExpressApplication } from '@nestjs/platform-express';
import request from 'supertest';
import { FOLD_DEAD_COUNTS } from '../src/metrics/queue-stats.sql.js';
import { createTestApp } from './helpers/app.js';
import { createTestDatabase, SCHEMA_ENV, TestDatabase } from './helpers/db.js';
import { eventually } from './helpers/eventually.js';
import { createTopic, createWebhook, insertMessage } from './helpers/factories.js';
import { describedMetrics, freePort, sampleValue } from './helpers/prometheus.js';
import { Receiver } from './helpers/receiver.js';
import { built, childCwd } from './helpers/scratch.js';
import { WorkerProcess } from './helpers/worker.js';

const QUEUE_GAUGES = [
  'pgwq_webhook_pending_deliveries',
  'pgwq_webhook_dead_deliveries',
  'pgwq_webhook_oldest_pending_age_seconds',
  'pgwq_webhook_blocked_lines',
  'pgwq_webhook_status',
];
const WORKER_METRICS = [
  'pgwq_claim_duration_seconds',
  'pgwq_delivery_attempts_total',
  'pgwq_delivery_attempt_duration_seconds',
  'pgwq_lease_losses_total',
  'pgwq_deliveries_in_flight',
  'pgwq_listen_connected',
];

async function scrapeWorker(port: number): Promise<string> {
  const response = await fetch(`http://127.0.0.1:${port}/metrics`);
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return response.text();
}

async function workerHealth(port: number) {
  const response = await fetch(`http://127.0.0.1:${port}/health`);
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/** The containers' healthcheck (`node dist/healthcheck.js`) against a worker's METRICS_PORT. */
async function containerHealthcheck(metricsPort: number): Promise<number> {
  const env = {
    PATH: process.env.PATH,
    ...SCHEMA_ENV,
    PORT: String(await freePort()),
    METRICS_PORT: String(metricsPort),
  };
  return new Promise((done) =>
    execFile(process.execPath, [built('healthcheck.js')], { env, cwd: childCwd() }, (error) =>
      done(error ? Number(error.code) : 0),
    ),
  );
}

/**
 * GET /metrics on the API and on a real `node dist/worker.js`: the metrics of DESIGN §8 are there
 * with help text, and they move as messages are published, fail, are dead-lettered and delivered.
 */
describe('metrics', () => {
  let db: TestDatabase;
  let app: NestExpressApplication;
  let worker: WorkerProcess | undefined;
  let ok: Receiver;
  let failing: Receiver;
  let workerPort: number;
  const scrapeApi = async () => {
    const response = await request(app.getHttpServer()).get('/metrics').expect(200);
    expect(response.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    return response.text;
  };

  beforeAll(async () => {
    db = await createTestDatabase();
    app = await createTestApp(db.url);
    ok = await Receiver.start(() => ({ status: 200 }));
    failing = await Receiver.start(() => ({ status: 500 }));
    workerPort = await freePort();
  });
  afterAll(async () => {
    await worker?.stop();
    await app?.close();
    await ok?.close();
    await failing?.close();
    await db?.drop();
  });

  it('publish, fail, dead-letter, deliver: the API and the worker report each step', async () => {
    const topic = await createTopic(db.pool, 'orders');
    const delivered = await createWebhook(db.pool, topic.id, ok.url);
    const dead = await createWebhook(db.pool, topic.id, failing.url);
    const http = request(app.getHttpServer());
    for (const key of ['k1', 'k1', 'k2', 'k2']) {
      await http
        .post('/topics/orders/messages')
        .send({ partition_key: key, payload: { key } })
        .expect(201);
    }
    await http.get('/no-such-route').expect(404);

    // Published, nothing delivered yet: the API's queue gauges see the backlog.
    let api = await scrapeApi();
    for (const name of QUEUE_GAUGES) expect(describedMetrics(api)).toContain(name);
    expect(describedMetrics(api)).toContain('pgwq_http_request_duration_seconds');
    expect(describedMetrics(api)).toContain('process_cpu_seconds_total');
    for (const hook of [delivered, dead]) {
      const labels = { webhook_id: String(hook.id), topic: 'orders' };
      expect(sampleValue(api, 'pgwq_webhook_pending_deliveries', labels)).toBe(4);
      expect(sampleValue(api, 'pgwq_webhook_dead_deliveries', labels)).toBe(0);
      expect(sampleValue(api, 'pgwq_webhook_oldest_pending_age_seconds', labels)).toBeGreaterThan(
        0,
      );
      expect(sampleValue(api, 'pgwq_webhook_blocked_lines', labels)).toBe(0);
      expect(sampleValue(api, 'pgwq_webhook_status', { ...labels, status: 'active' })).toBe(1);
      expect(sampleValue(api, 'pgwq_webhook_status', { ...labels, status: 'paused' })).toBe(0);
    }
    // HTTP requests by route pattern, never the raw path.
    const published = {
      method: 'POST',
      route: '/topics/:topic/messages',
      status: '201',
    };
    expect(sampleValue(api, 'pgwq_http_request_duration_seconds_count', published)).toBe(4);
    expect(
      sampleValue(api, 'pgwq_http_request_duration_seconds_count', {
        route: 'unmatched',
        status: '404',
      }),
    ).toBe(1);
    expect(api).not.toContain('/topics/orders/messages');
    expect(api).not.toContain('/no-such-route');

    // A real worker: 2 attempts per delivery, so each failing one is one retry, then dead.
    worker = WorkerProcess.spawn(db.url, {
      METRICS_PORT: String(workerPort),
      MAX_RETRIES: '2',
      BACKOFF_FACTOR: '0.1',
    });
    // Each outcome of each webhook is its own series (webhook_id).
    const attempts = (
      text: string,
      outcome: string,
      hook = outcome === 'delivered' ? delivered : dead,
    ) =>
      sampleValue(text, 'pgwq_delivery_attempts_total', { outcome, webhook_id: String(hook.id) }) ??
      0;
    const done = await eventually(
      async () => {
        const text = await scrapeWorker(workerPort);
        // The gauge drops a moment after the last attempt is counted (the job ends after it).
        const idle = sampleValue(text, 'pgwq_deliveries_in_flight') === 0;
        return attempts(text, 'delivered') === 4 && attempts(text, 'dead') === 4 && idle && text;
      },
      { timeoutMs: 60_000, what: '4 delivered and 4 dead-lettered attempts, none in flight' },
    );
    for (const name of WORKER_METRICS) expect(describedMetrics(done)).toContain(name);
    expect(describedMetrics(done)).toContain('process_resident_memory_bytes');
    expect(attempts(done, 'retry')).toBe(4);
    expect(attempts(done, 'delivered', dead)).toBe(0);
    expect(attempts(done, 'dead', delivered)).toBe(0);
    expect(
      sampleValue(done, 'pgwq_delivery_attempt_duration_seconds_count', { outcome: 'delivered' }),
    ).toBe(4);
    expect(sampleValue(done, 'pgwq_claim_duration_seconds_count')).toBeGreaterThan(0);
    expect(sampleValue(done, 'pgwq_lease_losses_total')).toBe(0);
    expect(sampleValue(done, 'pgwq_listen_connected')).toBe(1);
    // The worker's registry is its own: no queue gauges, no API requests.
    expect(done).not.toContain('pgwq_webhook_pending_deliveries');
    expect(done).not.toContain('pgwq_http_request_duration_seconds');

    // The queue gauges follow, once their few seconds of caching are over.
    api = await eventually(
      async () => {
        const text = await scrapeApi();
        const labels = { webhook_id: String(dead.id), topic: 'orders' };
        return sampleValue(text, 'pgwq_webhook_dead_deliveries', labels) === 4 && text;
      },
      { timeoutMs: 45_000, what: 'the dead gauge to reach 4' },
    );
    for (const [hook, deadCount] of [
      [delivered, 0],
      [dead, 4],
    ] as const) {
      const labels = { webhook_id: String(hook.id), topic: 'orders' };
      expect(sampleValue(api, 'pgwq_webhook_pending_deliveries', labels)).toBe(0);
      expect(sampleValue(api, 'pgwq_webhook_dead_deliveries', labels)).toBe(deadCount);
      expect(sampleValue(api, 'pgwq_webhook_oldest_pending_age_seconds', labels)).toBe(0);
    }
    expect(ok.arrivals).toHaveLength(4);
  }, 180_000);

  it('the worker answers /health with 200 while its database and claim loop are alive', async () => {
    expect(worker).toBeDefined();
    expect(await workerHealth(workerPort)).toEqual({ status: 200, body: { status: 'ok' } });
    const missing = await fetch(`http://127.0.0.1:${workerPort}/nope`);
    expect(missing.status).toBe(404);
  });

  it('GET /metrics on the API needs the API key when API_KEYS is set', async () => {
    const key = 'metrics-scraper-key-0123456789-abcdefghijklmnop';
    const guarded = await createTestApp(db.url, { API_KEYS: key });
    try {
      await request(guarded.getHttpServer()).get('/metrics').expect(401);
      await request(guarded.getHttpServer())
        .get('/metrics')
        .set('authorization', `Bearer ${key}`)
        .expect(200);
      await request(guarded.getHttpServer()).get('/health').expect(200);
    } finally {
      await guarded.close();
    }
  });
});

describe("the worker's /health when its database is gone", () => {
  it('is 200, then 503 once the database is dropped; so is the container healthcheck', async () => {
    const own = await createTestDatabase();
    const port = await freePort();
    const worker = WorkerProcess.spawn(own.url, { METRICS_PORT: String(port) });
    try {
      await eventually(async () => (await workerHealth(port)).status === 200, {
        timeoutMs: 45_000,
        what: 'the worker to be healthy',
      });
      expect(await containerHealthcheck(port)).toBe(0);
      await own.drop(); // DROP DATABASE … WITH (FORCE): every connection of the worker ends
      const unhealthy = await eventually(
        async () => {
          const health = await workerHealth(port);
          return health.status === 503 && health;
        },
        { timeoutMs: 45_000, what: '503 from /health' },
      );
      expect(unhealthy.body).toEqual({
        status_code: 503,
        error: 'Service Unavailable',
        message: 'the database does not answer',
      });
      expect(await containerHealthcheck(port)).toBe(1);
      expect(worker.running).toBe(true);
    } finally {
      await worker.stop();
    }
  }, 180_000);
});

/** The triggers behind pgwq_webhook_dead_deliveries follow every way into and out of dead. */
describe('dead_delivery_counts', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(() => db?.drop());

  const counted = async () =>
    (
      await db.pool.query<{ webhook_id: number; dead: number }>(
        `SELECT webhook_id, sum(dead)::int AS dead FROM dead_delivery_counts
         GROUP BY webhook_id ORDER BY webhook_id`,
      )
    ).rows;
  const actual = async () =>
    (
      await db.pool.query<{ webhook_id: number; dead: number }>(
        `SELECT webhook_id, count(*)::int AS dead FROM deliveries WHERE status = 'dead'
         GROUP BY webhook_id ORDER BY webhook_id`,
      )
    ).rows;

  it('counts dead-lettering, redrive and deletion; folding keeps the sums, drops deleted webhooks', async () => {
    const topic = await createTopic(db.pool);
    const a = await createWebhook(db.pool, topic.id);
    const b = await createWebhook(db.pool, topic.id);
    for (let i = 0; i < 4; i++) await insertMessage(db.pool, topic.id, `k${i % 2}`);

    await db.pool.query(
      `UPDATE deliveries SET status = 'dead', dead_at = now() WHERE webhook_id = $1`,
      [a.id],
    );
    await db.pool.query(
      `UPDATE deliveries SET status = 'dead', dead_at = now() WHERE webhook_id = $1 AND sequence = 1`,
      [b.id],
    );
    expect(await counted()).toEqual([
      { webhook_id: a.id, dead: 4 },
      { webhook_id: b.id, dead: 2 },
    ]);
    // Dead to dead (a skip touching other columns) counts nothing; a redrive takes one back.
    await db.pool.query(
      `UPDATE deliveries SET status = 'dead', attempts = 9 WHERE webhook_id = $1`,
      [a.id],
    );
    await db.pool.query(
      `UPDATE deliveries SET status = 'pending', dead_at = NULL
       WHERE webhook_id = $1 AND partition_key = 'k0' AND sequence = 1`,
      [a.id],
    );
    // Retention deletes a dead delivery; a message's deletion takes its deliveries with it.
    await db.pool.query(
      `DELETE FROM deliveries WHERE webhook_id = $1 AND partition_key = 'k1' AND sequence = 2`,
      [a.id],
    );
    await db.pool.query(
      `DELETE FROM messages WHERE topic_id = $1 AND partition_key = 'k0' AND sequence = 1`,
      [topic.id],
    );
    expect(await counted()).toEqual(await actual());
    expect(await counted()).toEqual([
      { webhook_id: a.id, dead: 2 },
      { webhook_id: b.id, dead: 1 },
    ]);

    await db.pool.query(FOLD_DEAD_COUNTS);
    const { rows } = await db.pool.query<{ webhook_id: number; dead: string }>(
      'SELECT webhook_id, dead FROM dead_delivery_counts ORDER BY webhook_id',
    );
    expect(rows).toEqual([
      { webhook_id: a.id, dead: '2' },
      { webhook_id: b.id, dead: '1' },
    ]);

    // A deleted webhook's rows go at the next fold (no foreign key: see the migration).
    await db.pool.query('DELETE FROM webhooks WHERE id = $1', [a.id]);
    await db.pool.query(FOLD_DEAD_COUNTS);
    expect(await counted()).toEqual([{ webhook_id: b.id, dead: 1 }]);
    expect(await counted()).toEqual(await actual());
  });
});

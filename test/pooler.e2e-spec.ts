import type { NestExpressApplication } from '@nestjs/platform-express';
import request from 'supertest';
import { createTestApp } from './helpers/app.js';
import { createTestDatabase, TEST_SCHEMA, TestDatabase } from './helpers/db.js';
import { eventually } from './helpers/eventually.js';
import { OrderChecker } from './helpers/order-checker.js';
import { pgBouncerForTests, WARNING_OR_ERROR } from './helpers/pgbouncer.js';
import { Receiver } from './helpers/receiver.js';
import { WorkerProcess } from './helpers/worker.js';
import { runMigrations } from '../src/database/migrate.js';
import { RunningPgBouncer, startPgBouncer } from '../src/database/pgbouncer.js';

const binary = pgBouncerForTests('test/pooler.e2e-spec.ts');

/**
 * The API and real worker processes with DATABASE_URL through PgBouncer in transaction mode
 * (Debian's pgbouncer, started here on a free port): publish, deliver in order, a clean log, and
 * how long a new message waits with LISTEN on its own direct connection and without it.
 */
(binary ? describe : describe.skip)(
  `behind PgBouncer ${binary?.version} in transaction mode`,
  () => {
    let db: TestDatabase;
    let bouncer: RunningPgBouncer;
    let pooledUrl: string;
    let app: NestExpressApplication | undefined;
    const workers: WorkerProcess[] = [];
    const receivers: Receiver[] = [];

    beforeAll(async () => {
      db = await createTestDatabase();
      // A pooler passes no search_path on: with the queue in its own schema, the role sets it,
      // as docs/pooler.md says (before PgBouncer opens its server connections).
      if (TEST_SCHEMA !== 'public') {
        await db.pool.query(
          `ALTER ROLE CURRENT_USER IN DATABASE ${db.name} SET search_path = ${TEST_SCHEMA}`,
        );
      }
      bouncer = await startPgBouncer({
        serverUrl: process.env.PGWQ_TEST_ADMIN_URL!,
        poolMode: 'transaction',
        poolSize: 8,
      });
      pooledUrl = bouncer.url(db.name);
    });
    afterEach(async () => {
      await Promise.all(workers.splice(0).map((w) => w.stop()));
      await Promise.all(receivers.splice(0).map((r) => r.close()));
      await app?.close();
      app = undefined;
    });
    afterAll(async () => {
      await bouncer?.stop();
      await db?.drop();
    });

    function spawnWorker(env: Record<string, string>) {
      // A generous timeout: on a busy machine a slow answer would be logged as a warning.
      const worker = WorkerProcess.spawn(pooledUrl, {
        DELIVERY_TIMEOUT_MS: '10000',
        ...env,
      });
      workers.push(worker);
      return worker;
    }

    /** A topic and one webhook on it; returns the webhook's id. */
    async function topicWithWebhook(name: string, receiver: Receiver): Promise<number> {
      const { rows } = await db.pool.query<{ id: number }>(
        `WITH topic AS (INSERT INTO topics (name) VALUES ($1) RETURNING id)
       INSERT INTO webhooks (topic_id, url, secret) SELECT id, $2, $3 FROM topic RETURNING id`,
        [name, receiver.url, 'whsec_' + Buffer.alloc(32, 7).toString('base64')],
      );
      return rows[0].id;
    }

    /** True once the worker's listener session LISTENs on the direct connection. */
    async function listeningDirectly(): Promise<boolean> {
      const { rows } = await db.pool.query(
        `SELECT 1 FROM pg_stat_activity
       WHERE datname = $1 AND application_name = 'pgwq-listener' AND query ILIKE '%LISTEN pgwq_deliveries%'`,
        [db.name],
      );
      return rows.length > 0;
    }

    /**
     * True once message `sequence` is recorded as delivered and a claim (the call of
     * pgwq_claim_lines) has finished since: the worker has nothing left to do, and only a notification or the
     * poll makes it look again.
     */
    async function idleAfter(webhookId: number, sequence: number): Promise<boolean> {
      const { rows } = await db.pool.query(
        `SELECT 1 FROM deliveries d
       WHERE d.webhook_id = $1 AND d.sequence = $2 AND d.status = 'delivered'
         AND EXISTS (SELECT 1 FROM pg_stat_activity a
                     WHERE a.datname = current_database() AND a.state = 'idle'
                       AND a.query ILIKE '%pgwq_claim_lines(%' AND a.query NOT ILIKE '%pg_stat_activity%'
                       AND a.state_change > d.delivered_at)`,
        [webhookId, sequence],
      );
      return rows.length > 0;
    }

    /**
     * Publishes one message at a time through the API into an idle worker and returns each one's
     * publish→arrival time. After each arrival it waits until the message is recorded and the
     * worker has claimed again: the next one then finds it idle, and the last one is not left
     * unrecorded when the test ends and kills the worker (it would go to the next test's worker
     * once its lease lapsed, and to a receiver that is gone by then).
     */
    async function wakeUpLatencies(topic: string, webhookId: number, receiver: Receiver) {
      const http = request(app!.getHttpServer());
      const latencies: number[] = [];
      for (let i = 1; i <= 5; i++) {
        const sentAt = Date.now();
        await http
          .post(`/topics/${topic}/messages`)
          .send({ partition_key: 'k', payload: { i } })
          .expect(201);
        const arrival = await eventually(() => receiver.where('webhook-sequence', String(i))[0], {
          timeoutMs: 60_000,
          what: `message ${i} to arrive`,
        });
        latencies.push(arrival.at - sentAt);
        await eventually(() => idleAfter(webhookId, i), {
          timeoutMs: 30_000,
          what: `the worker to go idle after message ${i}`,
        });
      }
      return latencies;
    }

    /** The API, a receiver on a new topic and one worker with `env`; `measure` times wake-ups. */
    async function oneWorker(topic: string, env: Record<string, string>) {
      const receiver = await Receiver.start();
      receivers.push(receiver);
      const webhookId = await topicWithWebhook(topic, receiver);
      app = await createTestApp(pooledUrl);
      const worker = spawnWorker(env);
      return { worker, measure: () => wakeUpLatencies(topic, webhookId, receiver) };
    }

    const summary = (ms: number[]) => {
      const sorted = [...ms].sort((a, b) => a - b);
      return `median ${sorted[sorted.length >> 1]} ms, max ${sorted[sorted.length - 1]} ms (${ms.join(', ')})`;
    };

    it('publishes through the API and delivers in order with two workers, logging no warning or error', async () => {
      const KEYS = 20;
      const PER_KEY = 15;
      const checker = new OrderChecker();
      const receiver = await Receiver.start((a) => {
        checker.observe(
          'w',
          a.headers['webhook-partition-key'] as string,
          Number(a.headers['webhook-sequence']),
        );
        return { status: 200 };
      });
      receivers.push(receiver);
      app = await createTestApp(pooledUrl, {
        WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true',
      });
      const http = request(app.getHttpServer());
      const topic = await http.post('/topics').send({ name: 'orders' }).expect(201);
      const webhook = await http
        .post('/webhooks')
        .send({ topic_id: topic.body.id, url: receiver.url })
        .expect(201);
      const first = spawnWorker({ DATABASE_LISTEN_URL: db.url, WORKER_CONCURRENCY: '10' });
      const second = spawnWorker({ DATABASE_LISTEN_URL: db.url, WORKER_CONCURRENCY: '10' });

      await Promise.all(
        Array.from({ length: KEYS }, async (_, k) => {
          for (let n = 1; n <= PER_KEY; n++) {
            const { body } = await http
              .post('/topics/orders/messages')
              .send({ partition_key: `key-${k}`, payload: { k, n } })
              .expect(201);
            expect(body.sequence).toBe(n);
          }
        }),
      );

      await eventually(
        () =>
          Array.from({ length: KEYS }, (_, k) => checker.highest('w', `key-${k}`)).every(
            (highest) => highest === PER_KEY,
          ),
        { timeoutMs: 60_000, what: `${KEYS * PER_KEY} messages to arrive` },
      );
      expect(checker.violations).toEqual([]);
      const deliveries = await http
        .get(`/webhooks/${webhook.body.id}/deliveries`)
        .query({ status: 'delivered', limit: 1000 })
        .expect(200);
      expect(deliveries.body).toHaveLength(KEYS * PER_KEY);
      for (const worker of [first, second]) {
        expect(worker.output).toContain('delivering: concurrency 10');
        expect(worker.output.match(WARNING_OR_ERROR) ?? []).toEqual([]);
      }
    });

    it('publishes idempotently and in batches through it (issue 16, point 3)', async () => {
      app = await createTestApp(pooledUrl);
      const http = request(app.getHttpServer());
      await http.post('/topics').send({ name: 'pooled-publish' }).expect(201);
      const publish = (body: object) => http.post('/topics/pooled-publish/messages').send(body);
      const batch = (messages: object[]) =>
        http.post('/topics/pooled-publish/messages/batch').send({ messages });

      // Concurrent repeats of one key: one publish, every answer the same message.
      const repeats = await Promise.all(
        Array.from({ length: 20 }, () =>
          publish({ partition_key: 'k', payload: {}, idempotency_key: 'once' }),
        ),
      );
      expect(repeats.map((r) => r.status).sort()).toEqual([...Array(19).fill(200), 201]);
      expect(new Set(repeats.map((r) => r.body.id)).size).toBe(1);

      // Batches, several at once, each with a key of its own and a repeat of 'once'.
      const items = (b: number) => [
        { partition_key: 'k', payload: { b }, idempotency_key: 'once' },
        ...Array.from({ length: 100 }, (_, i) => ({
          partition_key: `p${i % 4}`,
          payload: { b, i },
          ...(i === 0 ? { idempotency_key: `batch-${b}` } : {}),
        })),
      ];
      const batches = await Promise.all(Array.from({ length: 8 }, (_, b) => batch(items(b))));
      expect(batches.map((r) => r.status)).toEqual(Array(8).fill(201));
      for (const res of batches) expect(res.body.messages[0]).toEqual(repeats[0].body);
      // A retried batch (only keyed items, all published): 200, the same messages.
      const retry = await batch([items(3)[0], items(3)[1]]).expect(200);
      expect(retry.body.messages).toEqual(batches[3].body.messages.slice(0, 2));

      const { rows } = await db.pool.query(
        `SELECT partition_key, count(*)::int AS n, max(sequence)::int AS last
         FROM messages m JOIN topics t ON t.id = m.topic_id AND t.name = 'pooled-publish'
         GROUP BY partition_key ORDER BY partition_key`,
      );
      expect(rows).toEqual([
        { partition_key: 'k', n: 1, last: 1 },
        ...[0, 1, 2, 3].map((p) => ({ partition_key: `p${p}`, n: 200, last: 200 })),
      ]);
    });

    it('wakes on NOTIFY long before the poll with LISTEN on its own direct connection', async () => {
      // The poll alone would take 10 minutes: whatever arrives sooner was woken by a notification.
      const { worker, measure } = await oneWorker('direct-listen', {
        DATABASE_LISTEN_URL: db.url,
        POLL_INTERVAL_MS: '600000',
      });
      await eventually(listeningDirectly, { timeoutMs: 30_000, what: 'the direct LISTEN' });

      const latencies = await measure();
      console.log(`wake-up with DATABASE_LISTEN_URL direct, poll 600 s: ${summary(latencies)}`);
      expect(worker.output.match(WARNING_OR_ERROR) ?? []).toEqual([]);
    });

    it('without a direct LISTEN connection warns once and finds new work by polling', async () => {
      const { worker, measure } = await oneWorker('pooled-listen', { POLL_INTERVAL_MS: '1000' });
      await eventually(() => worker.output.includes('LISTEN'), {
        timeoutMs: 30_000,
        what: 'the worker to give up on LISTEN through the pooler',
      });

      const latencies = await measure();
      console.log(`wake-up with LISTEN through the pooler, poll 1 s: ${summary(latencies)}`);
      const warnings = worker.output.match(WARNING_OR_ERROR) ?? [];
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatch(/DATABASE_LISTEN_URL/);
      expect(warnings[0]).toMatch(/POLL_INTERVAL_MS/);
    });

    it('refuses to migrate through it, saying a direct or session-mode connection is needed', async () => {
      await expect(runMigrations(pooledUrl)).rejects.toThrow(/direct or session-mode connection/);
    });
  },
);

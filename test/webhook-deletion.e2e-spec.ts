import type { NestExpressApplication } from '@nestjs/platform-express';
import pg from 'pg';
import request from 'supertest';
import { Maintenance, MAINTENANCE_LOCK_CLASS } from '../src/maintenance/maintenance.js';
import { Retention } from '../src/maintenance/retention.js';
import { WebhookPurge } from '../src/maintenance/webhook-purge.js';
import { loadConfig } from '../src/config/app-config.js';
import { createTestApp } from './helpers/app.js';
import { createTestDatabase, TestDatabase } from './helpers/db.js';
import { eventually } from './helpers/eventually.js';
import { createTopic, createWebhook, insertMessage } from './helpers/factories.js';
import { OrderChecker } from './helpers/order-checker.js';
import { Receiver } from './helpers/receiver.js';
import { WorkerProcess } from './helpers/worker.js';

/** DELETE /webhooks/{id} under load (issue 8, item 5): no deadlock, no producer failure, no long lock. */
describe('webhook deletion', () => {
  let db: TestDatabase;
  let app: NestExpressApplication;
  let http: ReturnType<typeof request>;
  const workers: WorkerProcess[] = [];
  const receivers: Receiver[] = [];

  beforeEach(async () => {
    db = await createTestDatabase();
    app = await createTestApp(db.url);
    http = request(app.getHttpServer());
  });
  afterEach(async () => {
    await Promise.all(workers.splice(0).map((w) => w.stop()));
    await Promise.all(receivers.splice(0).map((r) => r.close()));
    await app.close();
    await db.drop();
  });

  async function receiver(...args: Parameters<typeof Receiver.start>) {
    const r = await Receiver.start(...args);
    receivers.push(r);
    return r;
  }

  async function leftOf(webhookIds: number[]) {
    const { rows } = await db.pool.query(
      `SELECT (SELECT count(*)::int FROM webhooks WHERE id = ANY($1)) AS webhooks,
              (SELECT count(*)::int FROM deliveries WHERE webhook_id = ANY($1)) AS deliveries,
              (SELECT count(*)::int FROM delivery_lines WHERE webhook_id = ANY($1)) AS lines`,
      [webhookIds],
    );
    return rows[0];
  }

  it('answers at once while a producer holds the topic in an open transaction, and that producer commits', async () => {
    const topic = await createTopic(db.pool);
    const webhook = await createWebhook(db.pool, topic.id);
    await insertMessage(db.pool, topic.id, 'k');
    const producer = await db.pool.connect();
    try {
      await producer.query('BEGIN');
      // Fans out to the webhook: holds its line and a key-share lock on it until commit.
      await insertMessage(producer, topic.id, 'k');
      const deleted = http.delete(`/webhooks/${webhook.id}`).then((r) => r.status);
      const status = await eventually(
        () => Promise.race([deleted, new Promise<false>((r) => setTimeout(() => r(false), 100))]),
        { timeoutMs: 5000, what: 'the DELETE to answer while the producer is still open' },
      );
      expect(status).toBe(204);
      expectError(await http.delete(`/webhooks/${webhook.id}`), 404);
      expectError(await http.get(`/webhooks/${webhook.id}/secret`), 404);
      expectError(await http.get(`/webhooks/${webhook.id}/deliveries`), 404);
      expect((await http.get(`/topics/${topic.id}/webhooks`).expect(200)).body).toEqual([]);
      await producer.query('COMMIT');
    } finally {
      // Destroyed, not pooled: on a failure above its transaction is still open.
      producer.release(true);
    }
    // A message published after the 204 is not fanned out to it.
    await insertMessage(db.pool, topic.id, 'k');
    const { rows } = await db.pool.query(
      'SELECT count(*)::int AS n FROM deliveries WHERE webhook_id = $1 AND sequence = 3',
      [webhook.id],
    );
    expect(rows[0].n).toBe(0);
  });

  /** Resolves once `pending` has settled or `blocked` backends of this database wait for locks. */
  async function settledOrBlocked(pending: Promise<unknown>, blocked = 1) {
    let settled = false;
    void pending.finally(() => (settled = true));
    await eventually(
      async () => {
        if (settled) return true;
        const { rows } = await db.pool.query(
          `SELECT count(*)::int AS n FROM pg_locks l JOIN pg_stat_activity a USING (pid)
           WHERE NOT l.granted AND a.datname = current_database()`,
        );
        return rows[0].n >= blocked;
      },
      { what: 'the request to answer or to wait for a lock' },
    );
  }

  /**
   * Runs `fn` while a transaction holds the webhook's lines the way a worker recording an attempt
   * does (RECORD_ATTEMPTS locks the line first, then its delivery), and ends it after.
   */
  async function whileAWorkerHoldsItsLines(
    webhookId: number,
    fn: (worker: pg.PoolClient) => Promise<void>,
  ) {
    const worker = await db.pool.connect();
    try {
      await worker.query('BEGIN');
      await worker.query(
        `UPDATE delivery_lines SET next_attempt_at = now() WHERE webhook_id = $1`,
        [webhookId],
      );
      await fn(worker);
      await worker.query('COMMIT');
    } finally {
      worker.release(true);
    }
  }

  it('does not deadlock with a worker recording on one of its lines (line, then delivery)', async () => {
    const topic = await createTopic(db.pool);
    const webhook = await createWebhook(db.pool, topic.id);
    await insertMessage(db.pool, topic.id, 'k');
    let deleted: Promise<number> | undefined;
    await whileAWorkerHoldsItsLines(webhook.id, async (worker) => {
      deleted = http.delete(`/webhooks/${webhook.id}`).then((r) => r.status);
      await settledOrBlocked(deleted);
      await worker.query(`UPDATE deliveries SET attempts = 1 WHERE webhook_id = $1`, [webhook.id]);
    });
    expect(await deleted).toBe(204);
  });

  it('lets a producer publish to the topic while a delete is under way', async () => {
    const topic = await createTopic(db.pool);
    const webhook = await createWebhook(db.pool, topic.id);
    await insertMessage(db.pool, topic.id, 'k');
    let deleted: Promise<number> | undefined;
    let published: Promise<request.Response> | undefined;
    // A delete that removes the lines has to wait for the worker.
    await whileAWorkerHoldsItsLines(webhook.id, async () => {
      deleted = http.delete(`/webhooks/${webhook.id}`).then((r) => r.status);
      await settledOrBlocked(deleted);
      published = http
        .post(`/topics/${topic.name}/messages`)
        .send({ partition_key: 'other', payload: {} })
        .then((r) => r);
      // Blocked too, if the delete is.
      await settledOrBlocked(published, 2);
    });
    expect(await deleted).toBe(204);
    const res = await published!;
    expect([res.status, res.body.message]).toEqual([201, undefined]);
  });

  /** The worker's maintenance, run by hand: batches until the purge has nothing more to do. */
  async function purgeRound(maintenance: Maintenance, purge: WebhookPurge) {
    const results: string[] = [];
    for (let batch = 0; batch < 100; batch++) {
      const result = await maintenance.runBatch(purge);
      results.push(result);
      if (result !== 'more') return results;
    }
    throw new Error(`the purge never finished its round: ${results.join(', ')}`);
  }

  it("purges a deleted webhook's lines, deliveries and attempts in batches, and its row only once no producer holds it", async () => {
    const topic = await createTopic(db.pool);
    const webhook = await createWebhook(db.pool, topic.id);
    const other = await createWebhook(db.pool, topic.id);
    await db.pool.query(
      `INSERT INTO messages (topic_id, partition_key, payload)
       SELECT $1, 'p' || (g % 50), '{}' FROM generate_series(1, 3000) g`,
      [topic.id],
    );
    await db.pool.query(
      `INSERT INTO logged_attempts (delivery_id, attempt, started_at, duration_ms, status_code)
       SELECT id, 1, now(), 5, 500 FROM deliveries WHERE webhook_id = $1`,
      [webhook.id],
    );
    const producer = await db.pool.connect();
    const purge = new WebhookPurge();
    const maintenance = new Maintenance(db.pool, purge, new Retention(loadConfig({})));
    try {
      await producer.query('BEGIN');
      await insertMessage(producer, topic.id, 'late');
      await http.delete(`/webhooks/${webhook.id}`).expect(204);
      const first = await purgeRound(maintenance, purge);
      // 50 lines in one batch, 3,000 deliveries in batches of 200, then the row: passed over.
      expect(first).toEqual([...Array(1 + 15 + 1).fill('more'), 'done']);
      // Left: the row, and the producer's delivery and line (not committed, so not counted).
      expect(await leftOf([webhook.id])).toEqual({ webhooks: 1, deliveries: 0, lines: 0 });
      await producer.query('COMMIT');
    } finally {
      producer.release(true);
    }
    // The producer's delivery and line for it, then the row.
    expect(await purgeRound(maintenance, purge)).toEqual(['more', 'more', 'more', 'done']);
    expect(await leftOf([webhook.id])).toEqual({ webhooks: 0, deliveries: 0, lines: 0 });
    const { rows } = await db.pool.query(
      `SELECT (SELECT count(*)::int FROM delivery_attempts) AS attempts,
              (SELECT count(*)::int FROM deliveries WHERE webhook_id = $1) AS others`,
      [other.id],
    );
    expect(rows[0]).toEqual({ attempts: 0, others: 3001 });
  });

  it('runs one batch of a maintenance task at a time across workers', async () => {
    const purge = new WebhookPurge();
    const maintenance = new Maintenance(db.pool, purge, new Retention(loadConfig({})));
    const otherWorker = await db.pool.connect();
    try {
      await otherWorker.query('BEGIN');
      await otherWorker.query('SELECT pg_advisory_xact_lock($1, $2)', [
        MAINTENANCE_LOCK_CLASS,
        purge.lockKey,
      ]);
      expect(await maintenance.runBatch(purge)).toBe('busy');
      await otherWorker.query('COMMIT');
    } finally {
      otherWorker.release();
    }
    expect(await maintenance.runBatch(purge)).toBe('done');
  });

  it('deletes webhooks with a long history while workers deliver and producers publish: no 5xx, no producer error, nothing new sent to them', async () => {
    const PARTITIONS = 20;
    const WORKERS = 2;
    const CONCURRENCY = 10;
    const checker = new OrderChecker();
    const topic = await createTopic(db.pool);
    const kept = await receiver((a) => {
      checker.observe(
        'kept',
        a.headers['webhook-partition-key'] as string,
        Number(a.headers['webhook-sequence']),
      );
      return { status: 200 };
    });
    await createWebhook(db.pool, topic.id, kept.url);
    const doomed = await Promise.all(
      Array.from({ length: 4 }, async () => {
        const hook = await receiver();
        return { hook, webhook: await createWebhook(db.pool, topic.id, hook.url) };
      }),
    );
    // A long history: 1,000 messages for each webhook before the workers start.
    const HISTORY = 1000;
    await db.pool.query(
      `INSERT INTO messages (topic_id, partition_key, payload)
       SELECT $1, 'p' || (g % $2::int), jsonb_build_object('ticket', 0) FROM generate_series(1, $3::int) g`,
      [topic.id, PARTITIONS, HISTORY],
    );
    for (let i = 0; i < WORKERS; i++) {
      workers.push(
        WorkerProcess.spawn(db.url, {
          WORKER_CONCURRENCY: String(CONCURRENCY),
          DELIVERY_TIMEOUT_MS: '2000',
        }),
      );
    }

    // Every publish takes a ticket before it starts; one taken after a DELETE's 204 must never
    // reach that webhook.
    // Producers publish at a pace the workers can follow, whatever the machine's speed: at most
    // 300 messages ahead of the kept webhook. (Producers that hold every line's lock all the time
    // starve the claims, which skip locked lines.)
    let nextTicket = 1;
    let published = HISTORY;
    let publishing = true;
    const producerErrors: string[] = [];
    const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
    const paced = async () => {
      while (publishing && published - kept.arrivals.length > 300) await pause(20);
      return publishing;
    };
    const sqlProducers = Array.from({ length: 2 }, async () => {
      while (await paced()) {
        const ticket = nextTicket++;
        published += PARTITIONS;
        try {
          // One row per partition, in partition order in every producer: no deadlock between
          // producers on the counters.
          await db.pool.query(
            `INSERT INTO messages (topic_id, partition_key, payload)
             SELECT $1, 'p' || g, jsonb_build_object('ticket', $3::int)
             FROM generate_series(0, $2::int - 1) g ORDER BY 'p' || g`,
            [topic.id, PARTITIONS, ticket],
          );
        } catch (error) {
          producerErrors.push(`SQL: ${(error as Error).message}`);
        }
        await pause(100);
      }
    });
    const apiProducers = Array.from({ length: 2 }, async (_, p) => {
      for (let i = 0; await paced(); i++) {
        const ticket = nextTicket++;
        published += 1;
        const res = await http
          .post(`/topics/${topic.name}/messages`)
          .send({ partition_key: `p${(i + p) % PARTITIONS}`, payload: { ticket } });
        if (res.status !== 201) producerErrors.push(`API ${res.status}: ${res.text}`);
        await pause(20);
      }
    });

    const deletions: { status: number; at: number; ticket: number }[] = [];
    try {
      for (const { hook, webhook } of doomed) {
        await eventually(() => hook.arrivals.length >= 10, {
          timeoutMs: 60_000,
          what: `webhook ${webhook.id} busy`,
        });
        const res = await http.delete(`/webhooks/${webhook.id}`);
        deletions.push({ status: res.status, at: Date.now(), ticket: nextTicket });
      }
      // Producers and workers keep going after the last 204.
      const lastTicket = deletions[deletions.length - 1].ticket;
      await eventually(() => kept.arrivals.some((a) => JSON.parse(a.body).ticket > lastTicket), {
        timeoutMs: 60_000,
        what: 'the kept webhook gets messages published after the last delete',
      });
    } finally {
      publishing = false;
      await Promise.all([...sqlProducers, ...apiProducers]);
    }

    expect(deletions.map((d) => d.status)).toEqual([204, 204, 204, 204]);
    expect(producerErrors).toEqual([]);
    doomed.forEach(({ hook }, i) => {
      const { at, ticket } = deletions[i];
      expect(hook.arrivals.filter((a) => JSON.parse(a.body).ticket >= ticket)).toEqual([]);
      // Only requests already in flight at the 204 (each worker's slots) may still arrive.
      expect(hook.arrivals.filter((a) => a.at > at).length).toBeLessThanOrEqual(
        WORKERS * CONCURRENCY,
      );
    });

    // Everything reaches the kept webhook, in order; the deleted ones' rows are gone.
    const { rows: heads } = await db.pool.query<{ key: string; last: string }>(
      'SELECT partition_key AS key, max(sequence) AS last FROM messages GROUP BY 1',
    );
    await eventually(() => heads.every((h) => checker.highest('kept', h.key) >= Number(h.last)), {
      timeoutMs: 120_000,
      intervalMs: 200,
      what: 'every message at the kept webhook',
    });
    expect(checker.violations).toEqual([]);
    const ids = doomed.map((d) => d.webhook.id);
    await eventually(
      async () => {
        const left = await leftOf(ids);
        return left.webhooks + left.deliveries + left.lines === 0 || undefined;
      },
      { timeoutMs: 30_000, what: 'the deleted webhooks purged' },
    );
    for (const worker of workers) expect(worker.output).not.toMatch(/deadlock/i);
  }, 360_000);

  function expectError(res: request.Response, status: number) {
    expect(res.status).toBe(status);
    expect(res.body).toMatchObject({ status_code: status });
  }
});

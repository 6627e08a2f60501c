import { Inbox, verifyWebhook, applyDelivery, WebhookIncoming } from '@pgwq/receiver';
import express from 'express';
import type { Server } from 'node:http';
import pg from 'pg';
import type { AddressInfo } from 'node:net';
import { createTestDatabase, TestDatabase } from './helpers/db.js';
import { killOneAtRandom, onProgress } from './helpers/chaos.js';
import { eventually } from './helpers/eventually.js';
import { WorkerProcess } from './helpers/worker.js';

const SECRET = 'whsec_' + Buffer.alloc(32, 9).toString('base64');
const PARTITIONS = 10;
const PER_PARTITION = 100;
/** Short leases and timeouts, so a killed worker's lines are taken over within a second. */
const CHAOS_ENV = {
  DELIVERY_TIMEOUT_MS: '500',
  BACKOFF_FACTOR: '0.05',
  MAX_RETRIES: '1000',
  POLL_INTERVAL_MS: '200',
  WORKER_CONCURRENCY: '10',
};

/**
 * A receiver built on the kit (Express, verifyWebhook, the inbox in its own PostgreSQL) applies
 * 1,000 messages over 10 partitions exactly once and in order into its own table, while workers
 * are SIGKILLed and the receiver loses a share of its replies after committing (it commits,
 * then destroys the socket without answering): the queue redelivers those, the inbox reports
 * them as duplicates, and nothing is applied twice.
 */
describe('receiver kit: exactly once, in order, through kills and lost replies', () => {
  let queue: TestDatabase;
  let receiverDb: TestDatabase;
  /** The receiver's own database, on its default search_path (never the queue's schema). */
  let receiverPool: pg.Pool;
  let server: Server;
  const workers: WorkerProcess[] = [];
  const counts = { accepted: 0, duplicate: 0, gap: 0, lostReplies: 0 };

  beforeAll(async () => {
    queue = await createTestDatabase();
    receiverDb = await createTestDatabase({ empty: true });
    receiverPool = new pg.Pool({ connectionString: receiverDb.url, max: 20 });
    const inbox = new Inbox();
    await inbox.install(receiverPool);
    await receiverPool.query(
      `CREATE TABLE applied (
         position bigserial PRIMARY KEY,
         partition_key text NOT NULL,
         n integer NOT NULL,
         UNIQUE (partition_key, n))`,
    );
    const app = express();
    app.post('/hook', verifyWebhook(SECRET), (req: WebhookIncoming, res, next) => {
      applyDelivery(req.webhook!, {
        pool: receiverPool,
        inbox,
        apply: async (tx, delivery) => {
          const { n } = delivery.payload as { n: number };
          await tx.query(`INSERT INTO applied (partition_key, n) VALUES ($1, $2)`, [
            delivery.partitionKey,
            n,
          ]);
        },
      }).then((answer) => {
        counts[answer.outcome as keyof typeof counts] += 1;
        // Committed; now the reply is lost for one request in ten.
        if (answer.outcome === 'accepted' && Math.random() < 0.1) {
          counts.lostReplies += 1;
          req.socket.destroy();
          return;
        }
        res.status(answer.status).send(answer.message);
      }, next);
    });
    server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
    await queue.pool.query(
      `WITH t AS (INSERT INTO topics (name) VALUES ('orders') RETURNING id)
       INSERT INTO webhooks (topic_id, url, secret) SELECT id, $1, $2 FROM t`,
      [url, SECRET],
    );
  });
  afterAll(async () => {
    await Promise.all(workers.map((w) => w.stop()));
    server?.closeAllConnections();
    await new Promise((resolve) => server?.close(resolve));
    await receiverPool?.end();
    await receiverDb?.drop();
    await queue?.drop();
  });

  const spawn = () => {
    const worker = WorkerProcess.spawn(queue.url, CHAOS_ENV);
    workers.push(worker);
  };

  it('applies every message once, in order, while workers are SIGKILLed and replies lost', async () => {
    for (let i = 0; i < 4; i++) spawn();
    // A worker is SIGKILLed (and another started) each time another 150 messages are applied.
    const killer = onProgress(
      () => counts.accepted,
      150,
      () => {
        killOneAtRandom(workers);
        spawn();
      },
    );
    try {
      // Producers publish in their own transactions, by name, ten messages per transaction.
      for (let n = 1; n <= PER_PARTITION; n += 10) {
        await queue.pool.query(
          `SELECT pgwq_publish('orders', 'p' || p, jsonb_build_object('n', n))
           FROM generate_series(1, $1::int) p, generate_series($2::int, $2::int + 9) n
           ORDER BY n, p`,
          [PARTITIONS, n],
        );
      }
      await eventually(
        async () =>
          (await receiverPool.query(`SELECT count(*)::int AS n FROM applied`)).rows[0].n ===
          PARTITIONS * PER_PARTITION,
        { timeoutMs: 60_000, intervalMs: 200, what: 'every message applied' },
      );
    } finally {
      await killer.stop();
    }
    const { rows } = await receiverPool.query<{ partition_key: string; ns: number[] }>(
      `SELECT partition_key, array_agg(n ORDER BY position) AS ns FROM applied
       GROUP BY partition_key ORDER BY partition_key`,
    );
    const expected = Array.from({ length: PER_PARTITION }, (_, i) => i + 1);
    expect(rows).toHaveLength(PARTITIONS);
    for (const row of rows)
      expect({ line: row.partition_key, ns: row.ns }).toEqual({
        line: row.partition_key,
        ns: expected,
      });
    expect(counts.accepted).toBe(PARTITIONS * PER_PARTITION);
    expect(killer.times).toBeGreaterThan(0);
    expect(counts.lostReplies).toBeGreaterThan(0);
    // Every lost reply was delivered again, found applied, and answered 2xx.
    await eventually(() => counts.duplicate >= counts.lostReplies, {
      timeoutMs: 10_000,
      what: `a duplicate for each lost reply (${JSON.stringify(counts)})`,
    });
    expect(counts.gap).toBe(0);
    console.log(`receiver kit e2e: ${killer.times} kills, ${JSON.stringify(counts)}`);
  }, 90_000);
});

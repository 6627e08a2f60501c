import pg from 'pg';
import request from 'supertest';
import { createTestApp } from './helpers/app.js';
import { searchPathOption } from '../src/database/schema.js';
import { createTestDatabase, TEST_SCHEMA, TestDatabase } from './helpers/db.js';
import { eventually } from './helpers/eventually.js';
import { createTopic, createWebhook } from './helpers/factories.js';
import { OrderChecker } from './helpers/order-checker.js';
import { Receiver } from './helpers/receiver.js';
import { WorkerProcess } from './helpers/worker.js';

/**
 * The chaos soak with an operator (DESIGN §7, "Operator actions race with everything else"):
 * three `node dist/worker.js` processes, a receiver failing 10 % of requests, producers holding
 * transactions over several partitions open for up to two seconds (each inserting in a random
 * order), and an operator pausing and resuming, replaying, redriving and skipping live lines.
 * The history checker knows each replay and redrive before it is sent: a line may go back only
 * after one. At the end nothing is lost, nothing out of order, and every line drains.
 */
describe('operator soak', () => {
  const PARTITIONS = 18;
  const PRODUCERS = 3;
  const RUN_MS = 30_000;
  const ENV = {
    DELIVERY_TIMEOUT_MS: '500',
    BACKOFF_FACTOR: '0.05',
    MAX_RETRIES: '2',
    POLL_INTERVAL_MS: '200',
    WORKER_CONCURRENCY: '10',
  };

  let db: TestDatabase;
  const workers: WorkerProcess[] = [];
  let receiver: Receiver | undefined;

  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await Promise.all(workers.map((w) => w.stop()));
    await receiver?.close();
    await db.drop();
  });

  const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const pick = <T>(items: T[]) => items[Math.floor(Math.random() * items.length)];

  it('loses nothing and breaks no order while producers hold partitions and an operator acts', async () => {
    const checker = new OrderChecker('announced');
    const acknowledged = new Set<string>();
    receiver = await Receiver.start((a) => {
      const key = a.headers['webhook-partition-key'] as string;
      const sequence = Number(a.headers['webhook-sequence']);
      checker.observe('w', key, sequence);
      if (Math.random() < 0.1) return { status: 500 };
      acknowledged.add(`${key}/${sequence}`);
      return { status: 200 };
    });
    const app = await createTestApp(db.url, { WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true' });
    const http = request(app.getHttpServer());
    const topic = await createTopic(db.pool);
    const webhook = await createWebhook(db.pool, topic.id, receiver.url);
    // Block: a dead head stops its line until the operator redrives or skips it.
    await http.patch(`/webhooks/${webhook.id}`).send({ on_exhausted: 'block' }).expect(200);
    for (let i = 0; i < 3; i++) workers.push(WorkerProcess.spawn(db.url, ENV));

    let running = true;
    const failures: string[] = [];
    const skipped = new Set<string>();
    const actions = { transactions: 0, pause: 0, busy: 0, replay: 0, redrive: 0, skip: 0 };

    // Producers: each owns its partitions (so producers never deadlock with each other) and
    // locks 2–4 of them per transaction in a random order, holding them 0.2–2 s.
    const producer = async (n: number) => {
      const own = Array.from({ length: PARTITIONS / PRODUCERS }, (_, i) => `p${n + i * PRODUCERS}`);
      const client = new pg.Client({ connectionString: db.url, ...searchPathOption(TEST_SCHEMA) });
      await client.connect();
      try {
        while (running) {
          const keys = [...own]
            .sort(() => Math.random() - 0.5)
            .slice(0, 2 + Math.floor(Math.random() * 3));
          await client.query('BEGIN');
          for (const key of keys) {
            await client.query(
              `INSERT INTO messages (topic_id, partition_key, payload)
               SELECT $1, $2, '{}' FROM generate_series(1, $3::int)`,
              [topic.id, key, 1 + Math.floor(Math.random() * 4)],
            );
            await pause(Math.random() * 300);
          }
          await pause(200 + Math.random() * 1500);
          await client.query('COMMIT');
          actions.transactions++;
        }
      } catch (error) {
        failures.push(`producer ${n}: ${(error as Error).message}`);
      } finally {
        await client.end();
      }
    };

    const deadDeliveries = async () =>
      (
        await db.pool.query<{ id: number; partition_key: string; sequence: number }>(
          `SELECT id::int, partition_key, sequence::int FROM deliveries
           WHERE webhook_id = $1 AND status = 'dead' ORDER BY partition_key, sequence`,
          [webhook.id],
        )
      ).rows;

    /** Redrives these dead deliveries, announcing each line's rewind first. */
    const redrive = async (dead: { id: number; partition_key: string; sequence: number }[]) => {
      const firsts = new Map<string, number>();
      for (const d of dead)
        if (!firsts.has(d.partition_key)) firsts.set(d.partition_key, d.sequence);
      for (const [key, from] of firsts) checker.expectRewind('w', key, from);
      return http.post('/dead-letter/redrive').send({ delivery_ids: dead.map((d) => d.id) });
    };

    /**
     * Pause and resume. The status change waits for the producers in flight on the topic (their
     * key-share lock on the webhook's row, see WebhooksService.update); with transactions that
     * overlap for seconds it can wait past the lock timeout and answer 503 "try again", which the
     * operator does: a resume is repeated until it answers 200.
     */
    const pauser = async () => {
      while (running) {
        await pause(300 + Math.random() * 700);
        const paused = await http.patch(`/webhooks/${webhook.id}`).send({ status: 'paused' });
        if (paused.status === 503) actions.busy++;
        else if (paused.status !== 200) failures.push(`pause answered ${paused.status}`);
        await pause(Math.random() * 800);
        for (;;) {
          const resumed = await http.patch(`/webhooks/${webhook.id}`).send({ status: 'active' });
          if (resumed.status === 200) break;
          if (resumed.status !== 503) failures.push(`resume answered ${resumed.status}`);
          actions.busy++;
        }
        actions.pause++;
      }
    };

    const operator = async () => {
      while (running) {
        await pause(200 + Math.random() * 300);
        const key = `p${1 + Math.floor(Math.random() * PARTITIONS)}`;
        const action = pick(['replay', 'redrive', 'skip'] as const);
        if (action === 'replay') {
          const from = 1 + Math.floor(Math.random() * Math.max(1, checker.highest('w', key)));
          checker.expectRewind('w', key, from);
          const res = await http
            .post(`/webhooks/${webhook.id}/replay`)
            .send({ partition_key: key, from_sequence: from });
          if (res.status !== 200)
            failures.push(`replay answered ${res.status}: ${res.body.message}`);
          else actions.replay++;
        } else if (action === 'redrive') {
          const dead = await deadDeliveries();
          if (dead.length === 0) continue;
          const res = await redrive(dead);
          if (res.status !== 200)
            failures.push(`redrive answered ${res.status}: ${res.body.message}`);
          else actions.redrive++;
        } else {
          const blocked = await http.get(`/webhooks/${webhook.id}/lines?state=blocked`);
          const line = blocked.body[0] as
            { partition_key: string; head_sequence: number } | undefined;
          if (!line) continue;
          const res = await http.post(`/webhooks/${webhook.id}/lines/${line.partition_key}/skip`);
          if (res.status === 200) {
            actions.skip++;
            skipped.add(`${line.partition_key}/${line.head_sequence}`);
          } else if (res.status !== 409) failures.push(`skip answered ${res.status}`);
        }
      }
    };

    const everyone = [
      ...Array.from({ length: PRODUCERS }, (_, n) => producer(n + 1)),
      pauser(),
      operator(),
    ];
    try {
      await pause(RUN_MS);
    } finally {
      running = false;
      await Promise.all(everyone);
    }

    try {
      // The operator stops: resume, and send again whatever is dead, until every line drains.
      await http.patch(`/webhooks/${webhook.id}`).send({ status: 'active' }).expect(200);
      await eventually(
        async () => {
          const dead = await deadDeliveries();
          const res = dead.length > 0 ? await redrive(dead) : undefined;
          if (res && res.status !== 200) failures.push(`redrive answered ${res.status}`);
          const { rows } = await db.pool.query(
            `SELECT count(*)::int AS n FROM delivery_lines
             WHERE webhook_id = $1 AND (head_sequence <= tail_sequence OR blocked
               OR lease_token IS NOT NULL OR rewind_to IS NOT NULL)`,
            [webhook.id],
          );
          return dead.length === 0 && rows[0].n === 0;
        },
        { timeoutMs: 40_000, intervalMs: 500, what: 'every line drained' },
      );
    } finally {
      await app.close();
    }

    console.log(
      `operator soak: ${(await db.pool.query(`SELECT count(*) FROM messages`)).rows[0].count} messages, ${checker.arrivals} arrivals, ` +
        `${checker.rewinds} announced rewinds taken, ${JSON.stringify(actions)}`,
    );
    expect(failures).toEqual([]);
    expect(checker.violations).toEqual([]);
    expect(actions).toMatchObject({
      transactions: expect.any(Number),
      pause: expect.any(Number),
      replay: expect.any(Number),
    });
    expect(Math.min(actions.transactions, actions.pause, actions.replay)).toBeGreaterThan(0);
    expect(checker.rewinds).toBeGreaterThan(0);
    // Nothing lost: every message published was acknowledged, or its dead delivery was skipped
    // by the operator (it stays dead, on purpose).
    const { rows: published } = await db.pool.query<{ partition_key: string; sequence: number }>(
      `SELECT partition_key, sequence::int FROM messages WHERE topic_id = $1`,
      [topic.id],
    );
    const lost = published
      .map((m) => `${m.partition_key}/${m.sequence}`)
      .filter((id) => !acknowledged.has(id) && !skipped.has(id));
    expect(lost).toEqual([]);
    expect(published.length).toBeGreaterThan(100);
  }, 120_000);
});

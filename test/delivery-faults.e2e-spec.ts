import { CLAIM_LINES, RECORD_ATTEMPTS } from '../src/delivery/delivery.sql.js';
import { createTestDatabase, TestDatabase } from './helpers/db.js';
import { eventually } from './helpers/eventually.js';
import { createTopic, createWebhook, insertMessage } from './helpers/factories.js';
import { OrderChecker } from './helpers/order-checker.js';
import { PgProxy } from './helpers/pg-proxy.js';
import { Receiver } from './helpers/receiver.js';
import { WorkerProcess } from './helpers/worker.js';

/**
 * The network between a worker and PostgreSQL failing for real (a TCP proxy in between):
 * replies lost after a commit, and connections that go silent.
 */
describe('delivery under database faults', () => {
  let db: TestDatabase;
  let proxy: PgProxy | undefined;
  const workers: WorkerProcess[] = [];
  const receivers: Receiver[] = [];

  beforeEach(async () => {
    db = await createTestDatabase();
  });
  afterEach(async () => {
    await Promise.all(workers.splice(0).map((w) => w.stop()));
    await Promise.all(receivers.splice(0).map((r) => r.close()));
    await proxy?.close();
    proxy = undefined;
    await db.drop();
  });

  async function receiver(...args: Parameters<typeof Receiver.start>) {
    const r = await Receiver.start(...args);
    receivers.push(r);
    return r;
  }

  function spawn(databaseUrl: string, env: Record<string, string> = {}) {
    const worker = WorkerProcess.spawn(databaseUrl, env);
    workers.push(worker);
    return worker;
  }

  it('a result whose commit succeeded but whose reply was lost is not applied twice when retried', async () => {
    proxy = await PgProxy.start(db.url);
    const order = new OrderChecker();
    const hook = await receiver((a) => {
      order.observe('w', 'k', Number(a.headers['webhook-sequence']));
      return { status: 200 };
    });
    const topic = await createTopic(db.pool);
    const webhook = await createWebhook(db.pool, topic.id, hook.url);
    // The first result recorded (sequence 1, the line kept for 2 and 3) commits, and the
    // worker sees a reset instead of the reply, then retries the statement.
    proxy.cutAfterReply(RECORD_ATTEMPTS);
    spawn(proxy.url);
    await db.pool.query(
      `INSERT INTO messages (topic_id, partition_key, payload)
       SELECT $1, 'k', jsonb_build_object('n', g) FROM generate_series(1, 3) g`,
      [topic.id],
    );
    const deliveries = async () =>
      (
        await db.pool.query(
          `SELECT d.sequence::int, d.status, d.attempts, count(a.id)::int AS recorded
           FROM deliveries d LEFT JOIN delivery_attempts a ON a.delivery_id = d.id
           WHERE d.webhook_id = $1 GROUP BY d.id ORDER BY d.sequence`,
          [webhook.id],
        )
      ).rows;
    // Waits, then shows what is wrong (today's failure: sequence 2 never sent, 1 recorded twice).
    await eventually(async () => (await deliveries()).every((r) => r.status === 'delivered'), {
      timeoutMs: 20_000,
      what: 'every message delivered',
    }).catch(() => undefined);
    expect(await deliveries()).toEqual([
      { sequence: 1, status: 'delivered', attempts: 1, recorded: 1 },
      { sequence: 2, status: 'delivered', attempts: 1, recorded: 1 },
      { sequence: 3, status: 'delivered', attempts: 1, recorded: 1 },
    ]);
    expect(proxy.cuts).toBe(1);
    expect(order.violations).toEqual([]);
    expect(hook.arrivals.map((a) => a.headers['webhook-sequence'])).toEqual(['1', '2', '3']);
    const line = await db.pool.query(
      `SELECT head_sequence::int, lease_token, next_attempt_at FROM delivery_lines`,
    );
    expect(line.rows).toEqual([{ head_sequence: 4, lease_token: null, next_attempt_at: null }]);
  });

  it('leases a kept line from the end of its lock wait, and renews before sending when short', async () => {
    // DELIVERY_TIMEOUT_MS 1000: a lease is 3000 ms, and a request needs 2000 ms of it left.
    const leaseMs = 3000;
    let releaseFirst: () => void = () => undefined;
    let releaseSecond: () => void = () => undefined;
    const first = new Promise<void>((r) => (releaseFirst = r));
    const second = new Promise<void>((r) => (releaseSecond = r));
    const hook = await receiver(async (a) => {
      const sequence = a.headers['webhook-sequence'];
      if (sequence === '1') await first;
      if (sequence === '2') await second;
      return { status: 200 };
    });
    const topic = await createTopic(db.pool);
    await createWebhook(db.pool, topic.id, hook.url);
    spawn(db.url, { DELIVERY_TIMEOUT_MS: '1000' });
    await db.pool.query(
      `INSERT INTO messages (topic_id, partition_key, payload)
       SELECT $1, 'k', jsonb_build_object('n', g) FROM generate_series(1, 2) g`,
      [topic.id],
    );
    await eventually(() => hook.arrivals.length === 1, {
      timeoutMs: 30_000, // a worker process starting on a busy machine
      what: 'sequence 1 in flight',
    });

    // A producer's open transaction holds the line's row lock (the trigger's upsert).
    const producer = await db.pool.connect();
    let committedAt: Date;
    try {
      await producer.query('BEGIN');
      await insertMessage(producer, topic.id, 'k', { n: 3 });
      releaseFirst();
      // The worker's record of 1 (keeping the line for 2) waits on that lock for longer than
      // a whole lease.
      await eventually(
        async () =>
          (
            await db.pool.query(
              `SELECT 1 FROM pg_stat_activity
               WHERE datname = current_database() AND application_name = 'pgwq'
                 AND wait_event_type = 'Lock'
                 AND clock_timestamp() - query_start > make_interval(secs => $1 / 1000.0)`,
              [leaseMs + 300],
            )
          ).rowCount === 1,
        { what: 'the record waiting on the line lock for a whole lease' },
      );
      const { rows } = await producer.query(`SELECT clock_timestamp() AS at`);
      committedAt = rows[0].at;
      await producer.query('COMMIT');
    } finally {
      producer.release();
    }

    await eventually(() => hook.where('webhook-sequence', '2').length === 1, {
      what: 'sequence 2 in flight',
    });
    const line = await db.pool.query(`SELECT next_attempt_at, lease_token FROM delivery_lines`);
    expect(line.rows[0].lease_token).not.toBeNull();
    expect(line.rows[0].next_attempt_at.getTime()).toBeGreaterThanOrEqual(
      committedAt.getTime() + leaseMs,
    );
    // A second worker's claim, while the first is sending 2, finds nothing to take.
    const claim = await db.pool.query(CLAIM_LINES, [10, leaseMs, [], [], [], 10]);
    expect(claim.rows).toEqual([]);

    releaseSecond();
    await eventually(() => hook.arrivals.length === 3, { what: 'sequence 3' });
    expect(hook.arrivals.map((a) => a.headers['webhook-sequence'])).toEqual(['1', '2', '3']);
  });

  it('fails a claim on a silent connection within its bound, recovers, and stops in bounded time', async () => {
    proxy = await PgProxy.start(db.url);
    const hook = await receiver();
    const topic = await createTopic(db.pool);
    await createWebhook(db.pool, topic.id, hook.url);
    const worker = spawn(proxy.url);
    await insertMessage(db.pool, topic.id, 'k', { n: 1 });
    await eventually(() => hook.arrivals.length === 1, {
      timeoutMs: 30_000,
      what: 'delivery before the fault',
    });

    // Every connection through the proxy goes silent, the LISTEN one included: the next
    // poll's claim waits for a reply that never comes.
    proxy.freeze();
    const frozenAt = Date.now();
    const before = worker.output.length;
    // On an open connection the reply never comes (Query read timeout); a new one never
    // finishes its start-up (connection timeout): either way the claim fails, in seconds.
    await eventually(
      () =>
        /claim failed \((Query read timeout|Connection terminated due to connection timeout)\)/.test(
          worker.output.slice(before),
        ),
      {
        timeoutMs: 30_000,
        what: 'the claim to time out',
      },
    );
    // The claim's own limit is 5 s; this bound only says "seconds, not minutes".
    expect(Date.now() - frozenAt).toBeLessThan(20_000);

    // New connections work again (the frozen ones stay dead): polling finds the next message.
    proxy.thaw();
    await insertMessage(db.pool, topic.id, 'k', { n: 2 });
    await eventually(() => hook.where('webhook-sequence', '2').length > 0, {
      timeoutMs: 60_000,
      what: 'delivery after the fault',
    });

    // Shutdown with every connection silent again ends anyway.
    proxy.freeze();
    worker.kill('SIGTERM');
    const exit = await eventually(() => (worker.running ? false : worker.exited), {
      timeoutMs: 30_000,
      what: 'the worker to exit',
    });
    expect(exit).toEqual({ code: 0, signal: null });
  }, 120_000);
});

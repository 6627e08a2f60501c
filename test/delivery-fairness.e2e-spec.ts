import dgram from 'node:dgram';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import type { INestApplicationContext } from '@nestjs/common';
import { createTestDatabase, TestDatabase } from './helpers/db.js';
import { eventually } from './helpers/eventually.js';
import { createTopic, createWebhook, insertMessage } from './helpers/factories.js';
import { Receiver } from './helpers/receiver.js';
import { startInProcessWorker, WorkerProcess } from './helpers/worker.js';

/**
 * One bad receiver must not hold up the others: a per-webhook cap on a worker's slots, circuit
 * breakers per destination, a connect timeout apart from the request timeout, and DNS lookups
 * that cannot pin libuv's thread pool.
 */
describe('delivery fairness', () => {
  let db: TestDatabase;
  const receivers: Receiver[] = [];
  const contexts: INestApplicationContext[] = [];
  const processes: WorkerProcess[] = [];
  const closers: (() => Promise<void> | void)[] = [];

  beforeEach(async () => {
    db = await createTestDatabase();
  });
  afterEach(async () => {
    await Promise.all(contexts.splice(0).map((c) => c.close()));
    await Promise.all(processes.splice(0).map((p) => p.stop()));
    await Promise.all(receivers.splice(0).map((r) => r.close()));
    for (const close of closers.splice(0)) await close();
    await db.drop();
  });

  async function receiver(...args: Parameters<typeof Receiver.start>) {
    const r = await Receiver.start(...args);
    receivers.push(r);
    return r;
  }

  async function worker(env: Record<string, string>, databaseUrl = db.url) {
    const context = await startInProcessWorker(databaseUrl, env);
    contexts.push(context);
    return context;
  }

  /** Publishes one message and resolves with the ms until the receiver has it. */
  async function latency(hook: Receiver, topicId: number, key: string): Promise<number> {
    const before = hook.arrivals.length;
    const sent = Date.now();
    await insertMessage(db.pool, topicId, key);
    const arrival = await eventually(() => hook.arrivals[before], {
      timeoutMs: 30_000,
      intervalMs: 5,
      what: 'the healthy webhook to get its message',
    });
    return arrival.at - sent;
  }

  it('keeps a healthy webhook near its baseline latency while another one hangs', async () => {
    const timeoutMs = 5000;
    const hung = await receiver(() => 'hang');
    const healthy = await receiver();
    const hungTopic = await createTopic(db.pool);
    const healthyTopic = await createTopic(db.pool);
    await createWebhook(db.pool, hungTopic.id, hung.url);
    await createWebhook(db.pool, healthyTopic.id, healthy.url);
    // Two slots; by default one webhook may hold half of them.
    await worker({
      WORKER_CONCURRENCY: '2',
      DELIVERY_TIMEOUT_MS: String(timeoutMs),
      MAX_RETRIES: '1000',
      BACKOFF_FACTOR: '0.05',
    });

    const baseline: number[] = [];
    for (let i = 0; i < 5; i++) baseline.push(await latency(healthy, healthyTopic.id, 'b'));

    // Six partitions that never get an answer, each enough to hold a slot for 5 s.
    for (let p = 1; p <= 6; p++) await insertMessage(db.pool, hungTopic.id, `p${p}`);
    await eventually(() => hung.arrivals.length >= 1, { what: 'the hung webhook holding a slot' });

    const during: number[] = [];
    for (let i = 0; i < 10; i++) during.push(await latency(healthy, healthyTopic.id, 'b'));
    // Without the cap both slots hang and a message waits for a timeout (up to 5 s). The
    // bound is generous on purpose: a busy machine, not the queue, sets the figure.
    const slow = during.filter((ms) => ms >= timeoutMs * 0.3);
    expect({ baseline, during, slow }).toEqual({ baseline, during, slow: [] });
  }, 120_000);

  it('opens a circuit for a destination that keeps timing out, sending nothing to it', async () => {
    const hung = await receiver(() => 'hang');
    const healthy = await receiver();
    const hungTopic = await createTopic(db.pool);
    const healthyTopic = await createTopic(db.pool);
    const hungHook = await createWebhook(db.pool, hungTopic.id, hung.url);
    await createWebhook(db.pool, healthyTopic.id, healthy.url);
    const process = WorkerProcess.spawn(db.url, {
      WORKER_CONCURRENCY: '4',
      DELIVERY_TIMEOUT_MS: '500',
      MAX_RETRIES: '1000',
      BACKOFF_FACTOR: '0.05',
    });
    processes.push(process);
    for (let p = 1; p <= 6; p++) {
      await insertMessage(db.pool, hungTopic.id, `p${p}`, { n: 1 });
      await insertMessage(db.pool, hungTopic.id, `p${p}`, { n: 2 });
    }
    await eventually(() => /circuit open after repeated timeouts/.test(process.output), {
      timeoutMs: 60_000,
      what: `the circuit to open`,
    });
    const attempts = async () =>
      (
        await db.pool.query<{ n: number }>(
          `SELECT coalesce(sum(attempts), 0)::int AS n FROM deliveries WHERE webhook_id = $1`,
          [hungHook.id],
        )
      ).rows[0].n;
    // Requests in flight when it opened still end and count; then none of its lines is leased.
    await eventually(
      async () =>
        (
          await db.pool.query(
            `SELECT 1 FROM delivery_lines WHERE webhook_id = $1 AND lease_token IS NOT NULL`,
            [hungHook.id],
          )
        ).rowCount === 0,
      { what: 'the requests in flight at the opening to end' },
    );
    const arrivalsAfter = hung.arrivals.length;
    const attemptsAfter = await attempts();

    // Its lines are due (a closed breaker would claim them at once, they are the oldest), yet
    // ten claims for the healthy webhook send nothing more to it and spend no attempt.
    for (let i = 0; i < 10; i++) await latency(healthy, healthyTopic.id, 'b');
    expect(hung.arrivals.length).toBe(arrivalsAfter);
    expect(await attempts()).toBe(attemptsAfter);
    // And the order holds: no partition got past its first message.
    expect(hung.arrivals.every((a) => a.headers['webhook-sequence'] === '1')).toBe(true);
    const { rows } = await db.pool.query(
      `SELECT DISTINCT status FROM deliveries WHERE webhook_id = $1`,
      [hungHook.id],
    );
    expect(rows).toEqual([{ status: 'pending' }]);
  }, 120_000);

  it('gives up connecting after the connect timeout, well before the request timeout', async () => {
    // Accepts TCP and never speaks: a TLS handshake that never completes.
    const silent = net.createServer(() => undefined);
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    closers.push(() => {
      silent.close();
      silent.unref();
    });
    const topic = await createTopic(db.pool);
    const { port } = silent.address() as AddressInfo;
    const webhook = await createWebhook(db.pool, topic.id, `https://127.0.0.1:${port}/hook`);
    await worker({ DELIVERY_TIMEOUT_MS: '10000', MAX_RETRIES: '1' });
    await insertMessage(db.pool, topic.id, 'k');
    const attempt = await eventually(
      async () =>
        (
          await db.pool.query(
            `SELECT a.error, a.duration_ms FROM delivery_attempts a
             JOIN deliveries d ON d.id = a.delivery_id WHERE d.webhook_id = $1`,
            [webhook.id],
          )
        ).rows[0],
      { timeoutMs: 30_000, what: 'the attempt' },
    );
    expect(attempt.error).toBe('connect timeout after 3000 ms');
    expect(attempt.duration_ms).toBeGreaterThanOrEqual(3000);
    expect(attempt.duration_ms).toBeLessThan(10_000);
  });

  it('resolves webhook hosts with a bounded lookup: a DNS server that never answers stalls nothing else', async () => {
    // A DNS server that reads every query and answers none.
    const dns = dgram.createSocket('udp4');
    let queries = 0;
    dns.on('message', () => (queries += 1));
    await new Promise<void>((r) => dns.bind(0, '127.0.0.1', r));
    closers.push(() => new Promise<void>((r) => dns.close(() => r())));
    const healthy = await receiver();
    const topic = await createTopic(db.pool);
    await createWebhook(db.pool, topic.id, healthy.url);
    // More never-resolving hosts than libuv has pool threads.
    const stuckHooks: Awaited<ReturnType<typeof createWebhook>>[] = [];
    for (let i = 1; i <= 8; i++) {
      stuckHooks.push(await createWebhook(db.pool, topic.id, `http://stuck-${i}.example.com/hook`));
    }
    // The worker reaches PostgreSQL by name, through getaddrinfo on the thread pool.
    const byName = new URL(db.url);
    byName.hostname = 'localhost';
    await worker(
      {
        WEBHOOK_DNS_SERVERS: `127.0.0.1:${(dns.address() as AddressInfo).port}`,
        WORKER_CONCURRENCY: '20',
        MAX_RETRIES: '1000',
        BACKOFF_FACTOR: '0.05',
        DELIVERY_TIMEOUT_MS: '10000',
      },
      byName.toString(),
    );
    await insertMessage(db.pool, topic.id, 'k', { n: 1 });
    await eventually(() => healthy.arrivals.length === 1 && queries >= 8, {
      timeoutMs: 30_000,
      what: 'the healthy delivery, and lookups of every stuck host under way',
    });

    // Cut every connection of the worker: it must look the database up again and reconnect.
    await db.pool.query(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
       WHERE datname = current_database() AND application_name LIKE 'pgwq%'`,
    );
    for (let n = 2; n <= 4; n++) {
      await insertMessage(db.pool, topic.id, 'k', { n });
      await eventually(() => healthy.arrivals.length === n, {
        timeoutMs: 20_000,
        what: `healthy delivery ${n} after the reconnect`,
      });
    }
    expect(healthy.arrivals.map((a) => a.headers['webhook-sequence'])).toEqual([
      '1',
      '2',
      '3',
      '4',
    ]);
    // The stuck hosts' attempts fail on their own, bounded lookups.
    const rows = await eventually(
      async () => {
        const { rows } = await db.pool.query(
          `SELECT d.webhook_id, a.error FROM delivery_attempts a
           JOIN deliveries d ON d.id = a.delivery_id WHERE d.webhook_id = ANY($1::int[])`,
          [stuckHooks.map((h) => h.id)],
        );
        return new Set(rows.map((r) => r.webhook_id)).size === stuckHooks.length && rows;
      },
      { timeoutMs: 30_000, what: 'a failed attempt for every stuck host' },
    );
    for (const { error } of rows) {
      expect(error).toMatch(
        /^DNS lookup failed: no answer for stuck-\d\.example\.com \(ETIMEOUT\)$/,
      );
    }
  }, 120_000);
});

import request from 'supertest';
import { createTestApp } from './helpers/app.js';
import { createTestDatabase, TestDatabase } from './helpers/db.js';
import { killOneAtRandom, onProgress } from './helpers/chaos.js';
import { eventually } from './helpers/eventually.js';
import { createTopic, createWebhook } from './helpers/factories.js';
import { OrderChecker } from './helpers/order-checker.js';
import { Receiver } from './helpers/receiver.js';
import { WorkerProcess } from './helpers/worker.js';

/**
 * Real `node dist/worker.js` processes: many workers, random receiver failures, SIGKILL,
 * terminated connections, SIGTERM and a stalled worker. The ordering promise is checked on
 * every arrival.
 */
describe('delivery workers', () => {
  const PARTITIONS = 40;
  const MESSAGES = 25;
  const CHAOS_ENV = {
    DELIVERY_TIMEOUT_MS: '500',
    BACKOFF_FACTOR: '0.05',
    MAX_RETRIES: '1000',
    POLL_INTERVAL_MS: '200',
    WORKER_CONCURRENCY: '10',
  };

  let db: TestDatabase;
  let workers: WorkerProcess[] = [];
  const receivers: Receiver[] = [];

  beforeEach(async () => {
    db = await createTestDatabase();
  });
  afterEach(async () => {
    await Promise.all(workers.map((w) => w.stop()));
    workers = [];
    await Promise.all(receivers.splice(0).map((r) => r.close()));
    await db.drop();
  });

  function spawn(env: Record<string, string> = {}) {
    const worker = WorkerProcess.spawn(db.url, env);
    workers.push(worker);
    return worker;
  }

  /** SIGKILLs a running worker at random and starts another with `env`. */
  function killAWorker(env: Record<string, string>) {
    killOneAtRandom(workers);
    spawn(env);
  }

  /** Terminates every worker and API connection to the test database; returns how many. */
  async function terminateConnections(): Promise<number> {
    const { rowCount } = await db.pool.query(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
       WHERE datname = current_database() AND application_name LIKE 'pgwq%'`,
    );
    return rowCount ?? 0;
  }

  /** A receiver failing 10% of requests with 500 and letting 10% time out, at random. */
  async function flakyReceiver(checker: OrderChecker, webhookTag: string) {
    const receiver = await Receiver.start((a) => {
      checker.observe(
        webhookTag,
        a.headers['webhook-partition-key'] as string,
        Number(a.headers['webhook-sequence']),
      );
      const r = Math.random();
      if (r < 0.1) return 'hang';
      if (r < 0.2) return { status: 500 };
      return { status: 200 };
    });
    receivers.push(receiver);
    return receiver;
  }

  /** 40 partitions × 25 messages, one 40-row INSERT per round, while the workers run. */
  async function publish(topicId: number) {
    for (let round = 1; round <= MESSAGES; round++) {
      await db.pool.query(
        `INSERT INTO messages (topic_id, partition_key, payload)
         SELECT $1, 'p' || g, jsonb_build_object('round', $2::int) FROM generate_series(1, $3::int) g`,
        [topicId, round, PARTITIONS],
      );
    }
  }

  async function allArrived(checker: OrderChecker, tags: string[]) {
    for (const tag of tags) {
      for (let p = 1; p <= PARTITIONS; p++) {
        if (checker.highest(tag, `p${p}`) < MESSAGES) return false;
      }
    }
    return true;
  }

  async function expectAllDelivered(webhooks = 2) {
    const { rows } = await db.pool.query(
      `SELECT status, count(*)::int AS n FROM deliveries GROUP BY status ORDER BY status`,
    );
    expect(rows).toEqual([{ status: 'delivered', n: PARTITIONS * MESSAGES * webhooks }]);
    const lines = await db.pool.query(
      `SELECT count(*)::int AS n FROM delivery_lines
       WHERE head_sequence <> tail_sequence + 1 OR next_attempt_at IS NOT NULL`,
    );
    expect(lines.rows[0].n).toBe(0);
  }

  it('three workers deliver 40 partitions × 25 messages to two flaky webhooks, in order', async () => {
    const checker = new OrderChecker();
    const topic = await createTopic(db.pool);
    for (const tag of ['a', 'b']) {
      await createWebhook(db.pool, topic.id, (await flakyReceiver(checker, tag)).url);
    }
    for (let i = 0; i < 3; i++) spawn(CHAOS_ENV);
    await publish(topic.id);
    await eventually(() => allArrived(checker, ['a', 'b']), {
      timeoutMs: 60_000,
      intervalMs: 200,
      what: 'every message at both webhooks',
    });
    expect(checker.violations).toEqual([]);
    await eventually(
      async () =>
        (await db.pool.query(`SELECT 1 FROM deliveries WHERE status <> 'delivered'`)).rowCount ===
        0,
      { what: 'every delivery recorded' },
    );
    await expectAllDelivered();
  }, 90_000); // more than the deadlines inside, so a slow run fails on what it waited for

  it('keeps every message and the order while workers are SIGKILLed and connections terminated', async () => {
    const checker = new OrderChecker();
    const topic = await createTopic(db.pool);
    await createWebhook(db.pool, topic.id, (await flakyReceiver(checker, 'a')).url);
    for (let i = 0; i < 3; i++) spawn(CHAOS_ENV);
    // Every 150 arrivals a worker is SIGKILLed (and another started); every 100, the workers'
    // connections are terminated.
    const killer = onProgress(
      () => checker.arrivals,
      150,
      () => killAWorker(CHAOS_ENV),
    );
    let terminations = 0;
    const terminator = onProgress(
      () => checker.arrivals,
      100,
      async () => void (terminations += await terminateConnections()),
    );
    try {
      await publish(topic.id);
      await eventually(() => allArrived(checker, ['a']), {
        timeoutMs: 90_000,
        intervalMs: 200,
        what: 'every message at both webhooks',
      });
    } finally {
      await Promise.all([killer.stop(), terminator.stop()]);
    }
    expect(killer.times).toBeGreaterThan(0);
    expect(terminations).toBeGreaterThan(0);
    expect(checker.violations).toEqual([]);
    await eventually(
      async () =>
        (await db.pool.query(`SELECT 1 FROM deliveries WHERE status <> 'delivered'`)).rowCount ===
        0,
      { timeoutMs: 20_000, what: 'every delivery recorded' },
    );
    await expectAllDelivered(1);
  }, 150_000);

  it('keeps every message and the order while an operator pauses, replays and redrives under SIGKILL', async () => {
    const checker = new OrderChecker(true);
    const acknowledged = new Set<string>();
    const receiver = await Receiver.start((a) => {
      const key = a.headers['webhook-partition-key'] as string;
      const sequence = Number(a.headers['webhook-sequence']);
      checker.observe('a', key, sequence);
      const r = Math.random();
      if (r < 0.1) return 'hang';
      if (r < 0.3) return { status: 500 };
      acknowledged.add(`${key}/${sequence}`);
      return { status: 200 };
    });
    receivers.push(receiver);
    const app = await createTestApp(db.url);
    const http = request(app.getHttpServer());
    const topic = await createTopic(db.pool);
    const webhook = await createWebhook(db.pool, topic.id, receiver.url);
    // Few retries: some deliveries go dead, for the redrives to send again.
    const env = { ...CHAOS_ENV, MAX_RETRIES: '3' };
    for (let i = 0; i < 3; i++) spawn(env);
    let chaos = true;
    const actions = { pause: 0, replay: 0, redrive: 0, terminations: 0 };
    const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
    // As the run goes: a worker SIGKILLed every 150 arrivals, connections terminated every 100.
    const killer = onProgress(
      () => checker.arrivals,
      150,
      () => killAWorker(env),
    );
    const terminator = onProgress(
      () => checker.arrivals,
      100,
      async () => void (actions.terminations += await terminateConnections()),
    );
    // The operator: an action every 700 ms, each an ordinary API call (one may fail on a
    // terminated connection; the next goes on).
    const operator = (async () => {
      for (let round = 0; chaos; round++) {
        await pause(700);
        const partition = `p${1 + Math.floor(Math.random() * PARTITIONS)}`;
        const from = Math.max(1, Math.floor(Math.random() * checker.highest('a', partition)));
        const action = round % 3;
        if (action === 0) {
          const paused = await http.patch(`/webhooks/${webhook.id}`).send({ status: 'paused' });
          await pause(300);
          const resumed = await http.patch(`/webhooks/${webhook.id}`).send({ status: 'active' });
          if (paused.status === 200 && resumed.status === 200) actions.pause++;
        } else if (action === 1) {
          const res = await http
            .post(`/webhooks/${webhook.id}/replay`)
            .send({ partition_key: partition, from_sequence: from });
          if (res.status === 200) actions.replay++;
        } else {
          const res = await http.post('/dead-letter/redrive').send({ webhook_id: webhook.id });
          if (res.status === 200) actions.redrive++;
        }
      }
    })();
    try {
      await publish(topic.id);
      await eventually(() => allArrived(checker, ['a']), {
        timeoutMs: 120_000,
        intervalMs: 200,
        what: 'every message tried at least once',
      });
      await pause(5000);
    } finally {
      chaos = false;
      await Promise.all([killer.stop(), terminator.stop(), operator]);
    }
    try {
      expect(actions.pause).toBeGreaterThan(0);
      expect(actions.replay).toBeGreaterThan(0);
      expect(actions.redrive).toBeGreaterThan(0);
      expect(killer.times).toBeGreaterThan(0);
      expect(actions.terminations).toBeGreaterThan(0);
      await http.patch(`/webhooks/${webhook.id}`).send({ status: 'active' }).expect(200);
      // What is still dead goes again until everything is delivered.
      await eventually(
        async () => {
          await http.post('/dead-letter/redrive').send({ webhook_id: webhook.id }).expect(200);
          const { rows } = await db.pool.query(
            `SELECT count(*)::int AS n FROM deliveries WHERE status <> 'delivered'`,
          );
          return rows[0].n === 0;
        },
        { timeoutMs: 60_000, intervalMs: 1000, what: 'every delivery delivered' },
      );
    } finally {
      await app.close();
    }
    expect(checker.violations).toEqual([]);
    for (let p = 1; p <= PARTITIONS; p++) {
      for (let n = 1; n <= MESSAGES; n++) expect(acknowledged.has(`p${p}/${n}`)).toBe(true);
    }
    await expectAllDelivered(1);
  }, 240_000);

  it('exits 0 on SIGTERM after finishing its in-flight request, leaving nothing leased', async () => {
    let release: () => void = () => undefined;
    const held = new Promise<void>((r) => (release = r));
    const receiver = await Receiver.start(async () => {
      await held;
      return { status: 200 };
    });
    receivers.push(receiver);
    const topic = await createTopic(db.pool);
    await createWebhook(db.pool, topic.id, receiver.url);
    const worker = spawn({ DELIVERY_TIMEOUT_MS: '3000' });
    await db.pool.query(
      `INSERT INTO messages (topic_id, partition_key, payload) VALUES ($1, 'k', '{}')`,
      [topic.id],
    );
    await eventually(() => receiver.arrivals.length === 1, { what: 'request in flight' });
    worker.kill('SIGTERM');
    setTimeout(release, 300);
    const exit = await worker.exited;
    expect(exit).toEqual({ code: 0, signal: null });
    const { rows } = await db.pool.query(
      `SELECT d.status, l.lease_token, l.next_attempt_at FROM deliveries d
       JOIN delivery_lines l USING (webhook_id, partition_key)`,
    );
    expect(rows).toEqual([{ status: 'delivered', lease_token: null, next_attempt_at: null }]);
  });

  it('exits at once on a second SIGTERM, and the lapsed lease lets another worker finish', async () => {
    let hang = true;
    const receiver = await Receiver.start(() => (hang ? 'hang' : { status: 200 }));
    receivers.push(receiver);
    const topic = await createTopic(db.pool);
    await createWebhook(db.pool, topic.id, receiver.url);
    // A 10 s grace period the test will not wait for.
    const worker = spawn({ DELIVERY_TIMEOUT_MS: '10000' });
    await db.pool.query(
      `INSERT INTO messages (topic_id, partition_key, payload) VALUES ($1, 'k', '{}')`,
      [topic.id],
    );
    await eventually(() => receiver.arrivals.length === 1, { what: 'request in flight' });
    worker.kill('SIGTERM');
    await eventually(() => /stopping: 1 deliveries in flight/.test(worker.output), {
      what: 'graceful stop begun',
    });
    worker.kill('SIGTERM');
    const exit = await eventually(() => (worker.running ? false : worker.exited), {
      timeoutMs: 3000,
      what: 'exit well before the grace period ends',
    });
    expect(exit).toEqual({ code: 1, signal: null });
    // SIGKILL-like: the lease is still held and lapses; then any worker takes the line over.
    hang = false;
    await db.pool.query(`UPDATE delivery_lines SET next_attempt_at = now()`);
    spawn();
    await eventually(
      async () =>
        (await db.pool.query(`SELECT 1 FROM deliveries WHERE status = 'delivered'`)).rowCount === 1,
      { what: 'another worker delivers it' },
    );
  });

  it('never lets a stalled worker record a stale result or let n+1 overtake n', async () => {
    const checker = new OrderChecker();
    let holdFirst = true;
    let releaseFirst: () => void = () => undefined;
    const firstHeld = new Promise<void>((r) => (releaseFirst = r));
    const receiver = await Receiver.start(async (a) => {
      checker.observe('w', 'k', Number(a.headers['webhook-sequence']));
      if (holdFirst) {
        holdFirst = false;
        await firstHeld;
      }
      return { status: 200 };
    });
    receivers.push(receiver);
    const topic = await createTopic(db.pool);
    const webhook = await createWebhook(db.pool, topic.id, receiver.url);
    const env = { DELIVERY_TIMEOUT_MS: '1000' };
    const stalled = spawn(env);
    await db.pool.query(
      `INSERT INTO messages (topic_id, partition_key, payload) VALUES ($1, 'k', '{"n":1}'), ($1, 'k', '{"n":2}')`,
      [topic.id],
    );
    await eventually(() => receiver.arrivals.length === 1, { what: 'first request held' });
    stalled.kill('SIGSTOP');
    const rescuer = spawn(env);
    // The stalled worker's lease lapses; the rescuer delivers 1 again, then 2.
    await eventually(() => receiver.where('webhook-sequence', '2').length === 1, {
      timeoutMs: 15_000,
      what: 'the rescuer delivers both',
    });
    releaseFirst();
    stalled.kill('SIGCONT');
    await eventually(() => /result dropped, lease lost/.test(stalled.output), {
      what: 'the stalled worker drops its result',
    });
    expect(checker.violations).toEqual([]);
    expect(receiver.arrivals.map((a) => a.headers['webhook-sequence'])).toEqual(['1', '1', '2']);
    const { rows } = await db.pool.query(
      `SELECT d.sequence::int, d.status, d.attempts, count(a.id)::int AS recorded
       FROM deliveries d LEFT JOIN delivery_attempts a ON a.delivery_id = d.id
       WHERE d.webhook_id = $1 GROUP BY d.id ORDER BY d.sequence`,
      [webhook.id],
    );
    expect(rows).toEqual([
      { sequence: 1, status: 'delivered', attempts: 1, recorded: 1 },
      { sequence: 2, status: 'delivered', attempts: 1, recorded: 1 },
    ]);
    rescuer.kill('SIGTERM');
    stalled.kill('SIGTERM');
    expect((await rescuer.exited).code).toBe(0);
    expect((await stalled.exited).code).toBe(0);
  });
});

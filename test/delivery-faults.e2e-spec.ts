import { RECORD_ATTEMPT } from '../src/delivery/delivery.sql.js';
import { createTestDatabase, TestDatabase } from './helpers/db.js';
import { eventually } from './helpers/eventually.js';
import { createTopic, createWebhook } from './helpers/factories.js';
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
    proxy.cutAfterReply(RECORD_ATTEMPT);
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
});

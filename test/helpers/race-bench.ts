import type { INestApplicationContext } from '@nestjs/common';
import type { NestExpressApplication } from '@nestjs/platform-express';
import pg from 'pg';
import request from 'supertest';
import { createTestApp } from './app.js';
import { createTestDatabase, TestDatabase } from './db.js';
import { eventually } from './eventually.js';
import { createTopic, createWebhook, insertMessage } from './factories.js';
import { deliveryAt, sequences } from './queue-state.js';
import { Arrival, Receiver, Reply } from './receiver.js';
import { startInProcessWorker } from './worker.js';

/**
 * The bench of the operator-race tests: an API, in-process workers, receivers that hold a
 * request until told, and transactions that hold a line's row lock, with waits on
 * pg_stat_activity / pg_locks until the other side is waiting. Call it inside a describe: it
 * registers the hooks that start the API and close what each test opened. `db` and `http` are
 * there once the describe's beforeAll ran.
 */
export function raceBench() {
  let db!: TestDatabase;
  let app!: NestExpressApplication;
  let http!: ReturnType<typeof request>;
  const workers: INestApplicationContext[] = [];
  const receivers: Receiver[] = [];
  const clients: pg.PoolClient[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
    app = await createTestApp(db.url, { WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true' });
    http = request(app.getHttpServer());
  });
  afterEach(async () => {
    for (const client of clients.splice(0)) client.release(true);
    await Promise.all(workers.splice(0).map((w) => w.close()));
    await Promise.all(receivers.splice(0).map((r) => r.close()));
  });
  afterAll(async () => {
    await app.close();
    await db.drop();
  });

  async function worker(env: Record<string, string> = {}) {
    const w = await startInProcessWorker(db.url, env);
    workers.push(w);
    return w;
  }

  /**
   * A receiver that holds the requests `hold` names (`key:sequence`, first attempt only unless
   * listed again) until released with a reply; everything else gets `answer`.
   */
  async function gatedReceiver(answer: (a: Arrival) => Reply = () => ({ status: 200 })) {
    const holds = new Map<
      string,
      { arrived: boolean; reply: Promise<Reply>; set: (r: Reply) => void }
    >();
    const r = await Receiver.start(async (a) => {
      const id = `${a.headers['webhook-partition-key']}:${a.headers['webhook-sequence']}`;
      const hold = holds.get(id);
      if (hold && !hold.arrived) {
        hold.arrived = true;
        return hold.reply;
      }
      return answer(a);
    });
    receivers.push(r);
    const hold = (id: string) => {
      let set: (reply: Reply) => void = () => undefined;
      const reply = new Promise<Reply>((resolve) => (set = resolve));
      holds.set(id, { arrived: false, reply, set });
      return {
        arrived: () => eventually(() => holds.get(id)!.arrived, { what: `${id} to arrive` }),
        release: (answerWith: Reply = { status: 200 }) => holds.get(id)!.set(answerWith),
      };
    };
    return { receiver: r, hold };
  }

  async function publish(topicId: number, key: string, count: number) {
    for (let i = 0; i < count; i++) await insertMessage(db.pool, topicId, key);
  }

  async function connection() {
    const client = await db.pool.connect();
    clients.push(client);
    return client;
  }

  /** A transaction holding a line's row lock, as a producer's open INSERT on it does. */
  async function holdLine(webhookId: number, key: string) {
    const client = await connection();
    await client.query('BEGIN');
    await client.query(
      `SELECT 1 FROM delivery_lines WHERE webhook_id = $1 AND partition_key = $2
       FOR NO KEY UPDATE`,
      [webhookId, key],
    );
    return { pid: await pidOf(client), release: () => client.query('COMMIT') };
  }

  async function pidOf(client: pg.PoolClient): Promise<number> {
    return (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid;
  }

  /**
   * Sessions waiting, directly or behind another waiter (a tuple lock's queue), for a lock held
   * by `pid`, whose statement contains `text`.
   */
  async function waitersOn(pid: number, text: string): Promise<number> {
    const { rows } = await db.pool.query<{ n: number }>(
      `WITH waiting AS (
         SELECT pid, pg_blocking_pids(pid) AS blockers, query FROM pg_stat_activity
         WHERE datname = current_database() AND wait_event_type = 'Lock'
       ), direct AS (SELECT pid FROM waiting WHERE $1 = ANY (blockers))
       SELECT count(*)::int AS n FROM waiting
       WHERE ($1 = ANY (blockers) OR blockers && ARRAY(SELECT pid FROM direct))
         AND query LIKE '%' || $2 || '%'`,
      [pid, text],
    );
    return rows[0].n;
  }

  async function untilWaiting(pid: number, text: string, count = 1) {
    await eventually(async () => (await waitersOn(pid, text)) >= count, {
      what: `${count} session(s) running "${text}" to wait for ${pid}`,
    });
  }

  async function lineRow(webhookId: number, key: string) {
    const { rows } = await db.pool.query(
      `SELECT head_sequence::int AS head, tail_sequence::int AS tail, blocked, lease_token,
              next_attempt_at, next_attempt_at <= clock_timestamp() AS due_now,
              next_attempt_at > clock_timestamp() + interval '10 seconds' AS due_later
       FROM delivery_lines WHERE webhook_id = $1 AND partition_key = $2`,
      [webhookId, key],
    );
    return rows[0];
  }

  async function setup(url: string, webhook: Record<string, string> = {}) {
    const topic = await createTopic(db.pool);
    const hook = await createWebhook(db.pool, topic.id, url);
    if (webhook.on_exhausted) {
      await db.pool.query(`UPDATE webhooks SET on_exhausted = $2 WHERE id = $1`, [
        hook.id,
        webhook.on_exhausted,
      ]);
    }
    return { topic, hook };
  }

  return {
    get db() {
      return db;
    },
    get http() {
      return http;
    },
    worker,
    gatedReceiver,
    sequences,
    publish,
    connection,
    holdLine,
    pidOf,
    waitersOn,
    untilWaiting,
    lineRow,
    delivery: (webhookId: number, key: string, sequence: number) =>
      deliveryAt(db.pool, webhookId, key, sequence),
    setup,
  };
}

export type RaceBench = ReturnType<typeof raceBench>;

import type { INestApplicationContext } from '@nestjs/common';
import type { NestExpressApplication } from '@nestjs/platform-express';
import pg from 'pg';
import request from 'supertest';
import { createTestApp } from './helpers/app.js';
import { createTestDatabase, TestDatabase } from './helpers/db.js';
import { eventually } from './helpers/eventually.js';
import { createTopic, createWebhook, insertMessage } from './helpers/factories.js';
import { Arrival, Receiver, Reply } from './helpers/receiver.js';
import { startInProcessWorker } from './helpers/worker.js';
import { ClaimLoop } from '../src/delivery/claim-loop.js';

/**
 * Operator actions and open transactions racing with the workers (DESIGN §3's snapshot trap, §7
 * "Operator actions race with everything else"). Each test forces its interleaving: a
 * transaction holding a line's row lock (as a producer's open INSERT does), waits on
 * pg_stat_activity / pg_locks until the other side is waiting, and a receiver that holds a
 * request until told.
 */
describe('operator actions and open transactions race with delivery', () => {
  let db: TestDatabase;
  let app: NestExpressApplication;
  let http: ReturnType<typeof request>;
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

  function sequences(r: Receiver, key: string): number[] {
    return r.where('webhook-partition-key', key).map((a) => Number(a.headers['webhook-sequence']));
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

  async function delivery(webhookId: number, key: string, sequence: number) {
    const { rows } = await db.pool.query(
      `SELECT id::int, status, attempts FROM deliveries
       WHERE webhook_id = $1 AND partition_key = $2 AND sequence = $3`,
      [webhookId, key, sequence],
    );
    return rows[0] as { id: number; status: string; attempts: number };
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

  it('1. a resume committed while a 410 disable parks the lines leaves none parked', async () => {
    const { receiver, hold } = await gatedReceiver();
    const { topic, hook } = await setup(receiver.url);
    const gone = hold('gone:1');
    await publish(topic.id, 'gone', 1);
    await worker({ WORKER_CONCURRENCY: '1' });
    await gone.arrived();
    // Behind it, waiting: lines a, b, c (one slot, taken by `gone`).
    for (const key of ['a', 'b', 'c']) await publish(topic.id, key, 2);
    const b = await holdLine(hook.id, 'b');
    gone.release({ status: 410 });
    // The disable committed; its parking waits for line b.
    await eventually(async () => {
      const { rows } = await db.pool.query(`SELECT status FROM webhooks WHERE id = $1`, [hook.id]);
      return rows[0].status === 'disabled';
    });
    await untilWaiting(b.pid, 'delivery_lines');
    const resumed = http
      .patch(`/webhooks/${hook.id}`)
      .send({ status: 'active' })
      .then((r) => r);
    await eventually(async () => {
      const { rows } = await db.pool.query(`SELECT status FROM webhooks WHERE id = $1`, [hook.id]);
      return rows[0].status === 'active';
    });
    await b.release();
    expect((await resumed).status).toBe(200);
    // Every line flows again: the kept backlog arrives, in order.
    await eventually(
      () => ['a', 'b', 'c'].every((key) => sequences(receiver, key).join() === '1,2'),
      { what: 'lines a, b, c delivered after the resume' },
    );
  });

  it('2a. a redrive racing with the record of a failed head keeps a blocked line blocked, in order', async () => {
    const fails = new Set(['k:2', 'k:3']);
    const { receiver, hold } = await gatedReceiver((a) => {
      const id = `${a.headers['webhook-partition-key']}:${a.headers['webhook-sequence']}`;
      if (fails.has(id)) {
        fails.delete(id);
        return { status: 500 };
      }
      return { status: 200 };
    });
    const { topic, hook } = await setup(receiver.url, { on_exhausted: 'block' });
    await publish(topic.id, 'k', 4);
    await worker({ MAX_RETRIES: '1' });
    // 2 fails and blocks the line; skipping it moves the line on to 3.
    await eventually(async () => (await lineRow(hook.id, 'k')).blocked);
    const third = hold('k:3');
    fails.delete('k:3');
    await http.post(`/webhooks/${hook.id}/lines/k/skip`).expect(200);
    await third.arrived();
    const line = await holdLine(hook.id, 'k');
    third.release({ status: 500 }); // 3 is dead too: the line must block at 3
    await untilWaiting(line.pid, 'pgwq_record_attempts');
    const two = await delivery(hook.id, 'k', 2);
    const redrive = http
      .post('/dead-letter/redrive')
      .send({ delivery_ids: [two.id] })
      .then((r) => r);
    await untilWaiting(line.pid, '', 2); // the record and the redrive
    await line.release();
    expect((await redrive).status).toBe(200);
    // Redriven 2 (and 3 with it, dead at the head of a blocked line), then 4: never 4 while 3
    // is dead.
    await eventually(() => sequences(receiver, 'k').includes(4), { what: '4 delivered' });
    expect(sequences(receiver, 'k')).toEqual([1, 2, 3, 2, 3, 4]);
  });

  it('2b. a replay racing with the record of the head in flight sends that head again too', async () => {
    const { receiver, hold } = await gatedReceiver();
    const { topic, hook } = await setup(receiver.url);
    const six = hold('p:6');
    await publish(topic.id, 'p', 7);
    await worker();
    await six.arrived();
    const line = await holdLine(hook.id, 'p');
    six.release();
    await untilWaiting(line.pid, 'pgwq_record_attempts');
    const replay = http
      .post(`/webhooks/${hook.id}/replay`)
      .send({ partition_key: 'p', from_sequence: 2 })
      .then((r) => r);
    await untilWaiting(line.pid, '', 2); // the record and the replay
    await line.release();
    expect((await replay).status).toBe(200);
    await eventually(
      async () =>
        (await lineRow(hook.id, 'p')).head > 7 && !(await lineRow(hook.id, 'p')).lease_token,
      { what: 'the line done' },
    );
    const arrived = sequences(receiver, 'p');
    expect(arrived.slice(arrived.lastIndexOf(2))).toEqual([2, 3, 4, 5, 6, 7]);
  });

  it('3. a skip waiting behind a replay moves to the replayed deliveries, not past them', async () => {
    const { topic, hook } = await setup('http://127.0.0.1:9/unused', { on_exhausted: 'block' });
    await publish(topic.id, 'q', 6);
    // The line as a redrive of 3 and its second death leave it: blocked at 3, with 4–6
    // delivered before and nothing pending after it.
    await db.pool.query(
      `UPDATE deliveries SET status = CASE WHEN sequence = 3 THEN 'dead' ELSE 'delivered' END
       WHERE webhook_id = $1`,
      [hook.id],
    );
    await db.pool.query(
      `UPDATE delivery_lines SET head_sequence = 3, blocked = true, next_attempt_at = NULL
       WHERE webhook_id = $1`,
      [hook.id],
    );
    const line = await holdLine(hook.id, 'q');
    const replay = http
      .post(`/webhooks/${hook.id}/replay`)
      .send({ partition_key: 'q', from_sequence: 4 })
      .then((r) => r);
    await untilWaiting(line.pid, 'delivery_lines');
    const skip = http.post(`/webhooks/${hook.id}/lines/q/skip`).then((r) => r);
    await untilWaiting(line.pid, '', 2); // the replay and the skip
    await line.release();
    expect((await replay).body).toEqual({ replayed: 3 });
    expect((await skip).status).toBe(200);
    // The skip's next head is the replayed 4, read after the replay committed.
    expect(await lineRow(hook.id, 'q')).toMatchObject({ head: 4, blocked: false, due_now: true });
  });

  it('4. a producer holding one line does not hold up the worker’s other lines', async () => {
    const { receiver, hold } = await gatedReceiver();
    const { topic } = await setup(receiver.url);
    const a1 = hold('a:1');
    await publish(topic.id, 'a', 1);
    await worker();
    await a1.arrived();
    const producer = await connection();
    await producer.query('BEGIN');
    await insertMessage(producer, topic.id, 'a');
    a1.release();
    await untilWaiting(await pidOf(producer), 'pgwq_record_attempts');
    // While the producer's transaction stays open, line b flows.
    await publish(topic.id, 'b', 5);
    await eventually(() => sequences(receiver, 'b').length === 5, {
      timeoutMs: 3000,
      what: 'b delivered while a is held',
    });
    expect(await waitersOn(await pidOf(producer), 'pgwq_record_attempts')).toBe(1);
    await producer.query('COMMIT');
    await eventually(() => sequences(receiver, 'a').join() === '1,2', { what: 'a goes on' });
  });

  it('5. a record of several lines never deadlocks with a producer locking them in another order', async () => {
    const { receiver, hold } = await gatedReceiver();
    const { topic, hook } = await setup(receiver.url);
    const held = ['a:1', 'b:1', 'c:1'].map(hold);
    for (const key of ['a', 'b', 'c']) await publish(topic.id, key, 1);
    const recorder = (await worker()).get(ClaimLoop)['recording']['recorder'] as unknown as {
      waiting: unknown[];
    };
    for (const h of held) await h.arrived();
    // c's record waits on a lock, so a's and b's results queue up and go together.
    const c = await holdLine(hook.id, 'c');
    held[2].release();
    await untilWaiting(c.pid, 'pgwq_record_attempts');
    const producer = await connection();
    await producer.query('BEGIN');
    await producer.query(`SET LOCAL deadlock_timeout = '100ms'`);
    await insertMessage(producer, topic.id, 'b');
    held[0].release();
    held[1].release();
    // Both results handed to the recorder: queued behind c's record, or (not waiting for c)
    // a's recorded already.
    await eventually(
      async () =>
        recorder.waiting.length === 2 || (await delivery(hook.id, 'a', 1)).status === 'delivered',
      { what: 'the results of a and b' },
    );
    await c.release();
    await untilWaiting(await pidOf(producer), 'pgwq_record_attempts');
    // The producer's second partition, in the opposite order: no deadlock, it commits.
    await expect(insertMessage(producer, topic.id, 'a')).resolves.toBeDefined();
    await producer.query('COMMIT');
    await eventually(() => ['a', 'b'].every((key) => sequences(receiver, key).join() === '1,2'), {
      what: 'a and b go on',
    });
  });

  it('6. pausing a webhook with 20,000 fresh lines answers, and parks them all', async () => {
    const { topic, hook } = await setup('http://127.0.0.1:9/unused');
    // Statistics from before the lines existed, as on a fresh webhook before autovacuum came.
    await db.pool.query(`ALTER TABLE delivery_lines SET (autovacuum_enabled = false)`);
    await db.pool.query(`ANALYZE delivery_lines`);
    await db.pool.query(
      `INSERT INTO messages (topic_id, partition_key, payload)
       SELECT $1, 'k' || n, '{}' FROM generate_series(1, 20000) n`,
      [topic.id],
    );
    await http.patch(`/webhooks/${hook.id}`).send({ status: 'paused' }).expect(200);
    const { rows } = await db.pool.query(
      `SELECT count(*)::int AS n FROM delivery_lines
       WHERE webhook_id = $1 AND next_attempt_at IS NOT NULL`,
      [hook.id],
    );
    expect(rows[0].n).toBe(0);
    await http.patch(`/webhooks/${hook.id}`).send({ status: 'active' }).expect(200);
    const woken = await db.pool.query(
      `SELECT count(*)::int AS n FROM delivery_lines
       WHERE webhook_id = $1 AND next_attempt_at IS NOT NULL`,
      [hook.id],
    );
    expect(woken.rows[0].n).toBe(20000);
    await db.pool.query(`UPDATE webhooks SET deleted_at = now() WHERE id = $1`, [hook.id]);
    await db.pool.query(`ALTER TABLE delivery_lines RESET (autovacuum_enabled)`);
  });

  it('7. a pause committed while a record waits stops the line being kept', async () => {
    const { receiver, hold } = await gatedReceiver();
    const { topic, hook } = await setup(receiver.url);
    const first = hold('s:1');
    await publish(topic.id, 's', 2);
    await worker();
    await first.arrived();
    const line = await holdLine(hook.id, 's');
    first.release();
    await untilWaiting(line.pid, 'pgwq_record_attempts');
    const paused = http
      .patch(`/webhooks/${hook.id}`)
      .send({ status: 'paused' })
      .then((r) => r);
    await eventually(async () => {
      const { rows } = await db.pool.query(`SELECT status FROM webhooks WHERE id = $1`, [hook.id]);
      return rows[0].status === 'paused';
    });
    await line.release();
    expect((await paused).status).toBe(200);
    await eventually(
      async () =>
        sequences(receiver, 's').includes(2) ||
        ((await delivery(hook.id, 's', 1)).status === 'delivered' &&
          !(await lineRow(hook.id, 's')).lease_token),
      { what: '1 recorded and the line let go' },
    );
    expect(sequences(receiver, 's')).toEqual([1]);
    await http.patch(`/webhooks/${hook.id}`).send({ status: 'active' }).expect(200);
    await eventually(() => sequences(receiver, 's').join() === '1,2', { what: '2 after resume' });
  });

  it('8. a publish that deadlocks every time answers 503 with a retry message', async () => {
    const topic = await createTopic(db.pool);
    await db.pool.query(`
      CREATE FUNCTION test_deadlock() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        RAISE EXCEPTION 'deadlock detected' USING ERRCODE = '40P01';
      END $$;
      CREATE TRIGGER messages_deadlock BEFORE INSERT ON messages
        FOR EACH ROW WHEN (NEW.partition_key = 'deadlock') EXECUTE FUNCTION test_deadlock();`);
    try {
      const res = await http
        .post(`/topics/${topic.name}/messages`)
        .send({ partition_key: 'deadlock', payload: {} });
      expect(res.status).toBe(503);
      expect(res.body.message).toMatch(/deadlock.*try again/);
    } finally {
      await db.pool.query(
        `DROP TRIGGER messages_deadlock ON messages; DROP FUNCTION test_deadlock();`,
      );
    }
  });

  it('suspected: a success ends a run of failures that began after its claim', async () => {
    const { receiver, hold } = await gatedReceiver((a) =>
      a.headers['webhook-partition-key'] === 'bad' ? { status: 500 } : { status: 200 },
    );
    const { topic, hook } = await setup(receiver.url);
    const ok = hold('ok:1');
    await publish(topic.id, 'ok', 1);
    await worker({ BACKOFF_FACTOR: '60', BACKOFF_MAX_SECONDS: '600' });
    await ok.arrived(); // claimed while the webhook had no failures
    await publish(topic.id, 'bad', 1);
    await eventually(async () => {
      const { rows } = await db.pool.query(`SELECT failing_since FROM webhooks WHERE id = $1`, [
        hook.id,
      ]);
      return rows[0].failing_since !== null;
    });
    ok.release();
    await eventually(
      async () => {
        const { rows } = await db.pool.query(`SELECT failing_since FROM webhooks WHERE id = $1`, [
          hook.id,
        ]);
        return rows[0].failing_since === null;
      },
      { what: 'the success to end the run of failures' },
    );
  });

  it('suspected: a kept line let go on a paused webhook is due at once, not a lease later', async () => {
    const { receiver, hold } = await gatedReceiver();
    const { topic, hook } = await setup(receiver.url);
    const first = hold('t:1');
    await publish(topic.id, 't', 3);
    await worker({ DELIVERY_TIMEOUT_MS: '10000' });
    await first.arrived();
    await http.patch(`/webhooks/${hook.id}`).send({ status: 'paused' }).expect(200);
    first.release();
    await eventually(async () => (await delivery(hook.id, 't', 1)).status === 'delivered');
    expect(await lineRow(hook.id, 't')).toMatchObject({
      head: 2,
      lease_token: null,
      due_now: true,
    });
  });

  it('suspected: a replayed head in flight starts again with a fresh retry budget', async () => {
    const { receiver, hold } = await gatedReceiver((a) =>
      a.headers['webhook-sequence'] === '2' ? { status: 500 } : { status: 200 },
    );
    const { topic, hook } = await setup(receiver.url);
    const second = hold('u:2');
    await publish(topic.id, 'u', 3);
    await worker({ BACKOFF_FACTOR: '60', BACKOFF_MAX_SECONDS: '600' });
    await second.arrived();
    await http
      .post(`/webhooks/${hook.id}/replay`)
      .send({ partition_key: 'u', from_sequence: 1 })
      .expect(200);
    second.release({ status: 500 });
    // The rewound line sends 1 again, then 2: its first attempt of a new budget.
    const attempts = async () =>
      (
        await db.pool.query<{ attempt: number }>(
          `SELECT attempt FROM delivery_attempts WHERE delivery_id = $1 ORDER BY id`,
          [(await delivery(hook.id, 'u', 2)).id],
        )
      ).rows.map((row) => row.attempt);
    await eventually(async () => (await attempts()).length === 2, { what: '2 tried again' });
    expect(await attempts()).toEqual([1, 1]);
  });

  it('suspected: a failed head whose line has a later rewind waits out its backoff', async () => {
    const { receiver, hold } = await gatedReceiver((a) =>
      a.headers['webhook-sequence'] === '1' ? { status: 500 } : { status: 200 },
    );
    const { topic, hook } = await setup(receiver.url);
    const first = hold('v:1');
    await publish(topic.id, 'v', 3);
    await db.pool.query(
      `UPDATE deliveries SET status = 'dead', dead_at = now() WHERE webhook_id = $1 AND sequence = 3`,
      [hook.id],
    );
    await worker({ BACKOFF_FACTOR: '60', BACKOFF_MAX_SECONDS: '600' });
    await first.arrived();
    const three = await delivery(hook.id, 'v', 3);
    await http
      .post('/dead-letter/redrive')
      .send({ delivery_ids: [three.id] })
      .expect(200);
    first.release({ status: 500 });
    await eventually(async () => (await delivery(hook.id, 'v', 1)).attempts === 1);
    expect(await lineRow(hook.id, 'v')).toMatchObject({
      head: 1,
      lease_token: null,
      due_later: true,
    });
  });

  it('suspected: shutdown gives back a line its last record kept', async () => {
    const { receiver, hold } = await gatedReceiver();
    const { topic, hook } = await setup(receiver.url);
    const first = hold('w:1');
    await publish(topic.id, 'w', 3);
    const w = await startInProcessWorker(db.url);
    await first.arrived();
    const line = await holdLine(hook.id, 'w');
    first.release();
    await untilWaiting(line.pid, 'pgwq_record_attempts');
    const closed = w.close();
    // Shutdown waits for the request in flight, gives up, and releases the line (fenced on
    // head 1), which waits behind the record.
    await untilWaiting(line.pid, '', 2); // the record and the release
    await line.release();
    await closed;
    expect(await lineRow(hook.id, 'w')).toMatchObject({
      head: 2,
      lease_token: null,
      due_now: true,
    });
  });
});

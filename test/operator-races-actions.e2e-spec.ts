import type request from 'supertest';
import type { TestDatabase } from './helpers/db.js';
import { eventually } from './helpers/eventually.js';
import { raceBench } from './helpers/race-bench.js';

/**
 * Operator actions (resume, disable, redrive, replay, skip, pause) racing with the workers' records
 * (DESIGN §3's snapshot trap, §7 "Operator actions race with everything else"): each test forces
 * its interleaving with a transaction holding a line's row lock, or a receiver holding a request.
 */
describe('operator actions and open transactions race with delivery', () => {
  const bench = raceBench();
  const {
    worker,
    gatedReceiver,
    sequences,
    publish,
    holdLine,
    untilWaiting,
    lineRow,
    delivery,
    setup,
  } = bench;
  let db: TestDatabase;
  let http: ReturnType<typeof request>;
  beforeAll(() => {
    ({ db, http } = bench);
  });

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
      `UPDATE deliveries SET status = CASE WHEN sequence = 3 THEN 'dead' ELSE 'delivered' END,
         dead_at = CASE WHEN sequence = 3 THEN now() END
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
});

import type request from 'supertest';
import type { TestDatabase } from './helpers/db.js';
import { eventually } from './helpers/eventually.js';
import { createTopic, createWebhook } from './helpers/factories.js';
import { operationsBench } from './helpers/operations-bench.js';

/**
 * DESIGN §7 with real `node dist/worker.js` processes and real receivers: redrive and replay
 * (operations.e2e-spec.ts has the rest of operating the queue).
 */
describe('operating the queue: rewinds', () => {
  const bench = operationsBench();
  const { spawnWorker, receiver, sequences, range, publish, lines, line, delivery } = bench;
  let db: TestDatabase;
  let http: ReturnType<typeof request>;
  beforeEach(() => {
    ({ db, http } = bench);
  });

  it('redrive by webhook: each partition sends its redriven messages in order, before what waits behind them', async () => {
    const topic = await createTopic(db.pool);
    let down = true;
    const hook = await receiver(() => ({ status: down ? 503 : 200 }));
    const webhook = await createWebhook(db.pool, topic.id, hook.url);
    spawnWorker({ MAX_RETRIES: '2' });
    for (const key of ['p1', 'p2', 'p3']) await publish(topic.id, key, 3);
    await eventually(
      async () => (await http.get(`/dead-letter/count?webhook_id=${webhook.id}`)).body.count === 9,
      { what: 'nine dead' },
    );
    // More waits behind them: paused, so it cannot go first by accident either.
    await http.patch(`/webhooks/${webhook.id}`).send({ status: 'paused' }).expect(200);
    for (const key of ['p1', 'p2', 'p3']) await publish(topic.id, key, 2);
    down = false;
    const before = hook.arrivals.length;
    const res = await http
      .post('/dead-letter/redrive')
      .send({ webhook_id: webhook.id })
      .expect(200);
    expect(res.body).toEqual({ redriven: 9 });
    expect((await lines(webhook.id)).map((l) => [l.head_sequence, l.pending])).toEqual([
      [1, 5],
      [1, 5],
      [1, 5],
    ]);
    await http.patch(`/webhooks/${webhook.id}`).send({ status: 'active' }).expect(200);
    await eventually(() => hook.arrivals.length === before + 15, { what: 'all fifteen' });
    for (const key of ['p1', 'p2', 'p3']) {
      expect(sequences(hook, key).slice(-5)).toEqual([1, 2, 3, 4, 5]);
    }
    await eventually(async () => (await lines(webhook.id)).every((l) => l.state === 'idle'), {
      what: 'every result recorded',
    });
    const { rows } = await db.pool.query(
      `SELECT status, attempts, count(*)::int AS n FROM deliveries WHERE webhook_id = $1
       GROUP BY status, attempts ORDER BY attempts`,
      [webhook.id],
    );
    expect(rows).toEqual([{ status: 'delivered', attempts: 1, n: 15 }]);
    // The attempts before the redrive stay in the log.
    const log = await db.pool.query(
      `SELECT count(*)::int AS n FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id
       WHERE d.webhook_id = $1`,
      [webhook.id],
    );
    expect(log.rows[0].n).toBe(9 * 2 + 15);
  });

  it('redrive by ids, by partition and by time range', async () => {
    const topic = await createTopic(db.pool);
    let down = true;
    const hook = await receiver(() => ({ status: down ? 500 : 200 }));
    const webhook = await createWebhook(db.pool, topic.id, hook.url);
    spawnWorker({ MAX_RETRIES: '1' });
    const deadCount = async () =>
      (await http.get(`/dead-letter/count?webhook_id=${webhook.id}`)).body.count as number;
    await publish(topic.id, 'p1', 1);
    await eventually(async () => (await deadCount()) === 1, { what: 'p1 dead' });
    const { rows: t } = await db.pool.query(`SELECT clock_timestamp() AS at`);
    const between = (t[0].at as Date).toISOString();
    await publish(topic.id, 'p2', 1);
    await publish(topic.id, 'p3', 1);
    await eventually(async () => (await deadCount()) === 3, { what: 'three dead' });
    down = false;

    const byPartition = await http
      .post('/dead-letter/redrive')
      .send({ webhook_id: webhook.id, partition_key: 'p2' })
      .expect(200);
    expect(byPartition.body).toEqual({ redriven: 1 });
    await eventually(() => sequences(hook, 'p2').length === 2, { what: 'p2 again' });

    const byTime = await http
      .post('/dead-letter/redrive')
      .send({ topic_id: topic.id, until: between })
      .expect(200);
    expect(byTime.body).toEqual({ redriven: 1 });
    await eventually(() => sequences(hook, 'p1').length === 2, { what: 'p1 again' });
    expect(
      (await http.post('/dead-letter/redrive').send({ since: new Date().toISOString() })).body,
    ).toEqual({ redriven: 0 });

    const p3 = await delivery(webhook.id, 'p3', 1);
    const byIds = await http.post('/dead-letter/redrive').send({ delivery_ids: [p3.id] });
    expect(byIds.body).toEqual({ redriven: 1 });
    await eventually(() => sequences(hook, 'p3').length === 2, { what: 'p3 again' });
    expect(await deadCount()).toBe(0);
  });

  it('replay from a sequence while the line is busy, and since a time: again in order, then the new ones', async () => {
    const topic = await createTopic(db.pool);
    const hook = await receiver(async () => {
      await new Promise((r) => setTimeout(r, 20));
      return { status: 200 };
    });
    const webhook = await createWebhook(db.pool, topic.id, hook.url);
    spawnWorker();
    spawnWorker();
    await publish(topic.id, 'r', 40);
    await eventually(() => sequences(hook, 'r').length >= 10, { what: 'the line busy' });
    const res = await http
      .post(`/webhooks/${webhook.id}/replay`)
      .send({ partition_key: 'r', from_sequence: 3 })
      .expect(200);
    expect(res.body.replayed).toBeGreaterThanOrEqual(7);
    await publish(topic.id, 'r', 5);
    await eventually(async () => (await line(webhook.id, 'r'))?.state === 'idle', {
      timeoutMs: 20_000,
      what: 'the line done',
    });
    const arrived = sequences(hook, 'r');
    // After the replay request: from 3 on, every message once more, in order, then the new ones.
    const rewindAt = arrived.indexOf(3, 3);
    expect(arrived.slice(rewindAt)).toEqual(range(3, 45));
    expect(arrived.slice(0, rewindAt)).toEqual(range(1, rewindAt));
    expect(rewindAt).toBeGreaterThanOrEqual(10);

    const since = (await db.pool.query(`SELECT clock_timestamp() AS at`)).rows[0].at as Date;
    await publish(topic.id, 'r', 2);
    await publish(topic.id, 's', 2);
    await eventually(() => sequences(hook, 's').length === 2, { what: 's' });
    await eventually(async () => (await lines(webhook.id)).every((l) => l.state === 'idle'), {
      what: 'r and s recorded',
    });
    const rBefore = sequences(hook, 'r').length;
    const replayed = await http
      .post(`/webhooks/${webhook.id}/replay`)
      .send({ since: since.toISOString() })
      .expect(200);
    expect(replayed.body).toEqual({ replayed: 4 });
    await eventually(() => sequences(hook, 's').length === 4, { what: 's again' });
    await eventually(() => sequences(hook, 'r').length === rBefore + 2, { what: 'r again' });
    expect(sequences(hook, 's')).toEqual([1, 2, 1, 2]);
    expect(sequences(hook, 'r').slice(-4)).toEqual([46, 47, 46, 47]);

    // Every POST is in the attempts, a replayed delivery's first success included (it was kept on
    // the delivery until the replay moved it to the log), each delivery's in the order made.
    await eventually(async () => (await lines(webhook.id)).every((l) => l.state === 'idle'), {
      what: 'the replays recorded',
    });
    const { rows: counts } = await db.pool.query(
      `SELECT d.partition_key, count(*)::int AS n FROM delivery_attempts a
       JOIN deliveries d ON d.id = a.delivery_id
       WHERE d.webhook_id = $1 GROUP BY d.partition_key ORDER BY 1`,
      [webhook.id],
    );
    expect(counts).toEqual([
      { partition_key: 'r', n: sequences(hook, 'r').length },
      { partition_key: 's', n: 4 },
    ]);
    const { rows: s1 } = await db.pool.query(
      `SELECT id FROM deliveries WHERE webhook_id = $1 AND partition_key = 's' AND sequence = 1`,
      [webhook.id],
    );
    const attempts = (await http.get(`/deliveries/${s1[0].id}/attempts`).expect(200)).body as {
      id: number;
      attempt: number;
      status_code: number;
      started_at: string;
    }[];
    expect(attempts.map((a) => [a.attempt, a.status_code])).toEqual([
      [1, 200],
      [1, 200],
    ]);
    expect(attempts[0].id).toBeLessThan(attempts[1].id);
    expect(Date.parse(attempts[0].started_at)).toBeLessThan(Date.parse(attempts[1].started_at));
  });
});

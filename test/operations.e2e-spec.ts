import type request from 'supertest';
import type { TestDatabase } from './helpers/db.js';
import { eventually } from './helpers/eventually.js';
import { createTopic, createWebhook } from './helpers/factories.js';
import { operationsBench } from './helpers/operations-bench.js';

/**
 * DESIGN §7 with real `node dist/worker.js` processes and real receivers: pause and resume,
 * auto-disable, on_exhausted = block with redrive and skip, line states (redrive and replay:
 * operations-rewind.e2e-spec.ts).
 */
describe('operating the queue', () => {
  const bench = operationsBench();
  const {
    spawnWorker,
    receiver,
    sequences,
    range,
    publish,
    webhookJson,
    lines,
    line,
    delivery,
    workersAreClaiming,
  } = bench;
  let db: TestDatabase;
  let http: ReturnType<typeof request>;
  beforeEach(() => {
    ({ db, http } = bench);
  });

  it('pause: nothing is sent, the backlog grows and is not due; resume sends it all in order', async () => {
    const topic = await createTopic(db.pool);
    let release: () => void = () => undefined;
    const held = new Promise<void>((r) => (release = r));
    const hook = await receiver(async (a) => {
      if (a.headers['webhook-partition-key'] === 'held' && a.headers['webhook-sequence'] === '1') {
        await held;
      }
      return { status: 200 };
    });
    const probe = await receiver();
    const webhook = await createWebhook(db.pool, topic.id, hook.url);
    const probeTopic = await createTopic(db.pool);
    await createWebhook(db.pool, probeTopic.id, probe.url);
    spawnWorker();

    await publish(topic.id, 'a', 3);
    await publish(topic.id, 'held', 2);
    await eventually(() => sequences(hook, 'a').length === 3 && sequences(hook, 'held').length, {
      what: 'first messages, one held in flight',
    });

    const paused = await http.patch(`/webhooks/${webhook.id}`).send({ status: 'paused' });
    expect(paused.status).toBe(200);
    expect(paused.body).toMatchObject({ id: webhook.id, status: 'paused', disabled_reason: null });
    // The attempt in flight at pause time finishes and is recorded.
    release();
    await eventually(async () => (await delivery(webhook.id, 'held', 1)).status === 'delivered', {
      what: 'the in-flight attempt recorded',
    });
    const { rows: attempts } = await db.pool.query(
      `SELECT a.status_code FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id
       WHERE d.webhook_id = $1 AND d.partition_key = 'held'`,
      [webhook.id],
    );
    expect(attempts).toEqual([{ status_code: 200 }]);

    await publish(topic.id, 'a', 4);
    await publish(topic.id, 'b', 5);
    await workersAreClaiming(probeTopic.id, probe);
    await workersAreClaiming(probeTopic.id, probe);
    expect(sequences(hook, 'a')).toEqual([1, 2, 3]);
    expect(sequences(hook, 'b')).toEqual([]);
    expect(sequences(hook, 'held')).toEqual([1]);
    // Not due: no worker spends a claim on them. (The line in flight at pause time was released
    // due by its record, and the claims pass over it: its next message was not sent.)
    const { rows: due } = await db.pool.query(
      `SELECT count(*)::int AS n FROM delivery_lines
       WHERE webhook_id = $1 AND next_attempt_at IS NOT NULL AND partition_key <> 'held'`,
      [webhook.id],
    );
    expect(due[0].n).toBe(0);
    expect(await lines(webhook.id)).toEqual([
      expect.objectContaining({
        partition_key: 'a',
        state: 'paused',
        head_sequence: 4,
        pending: 4,
      }),
      expect.objectContaining({
        partition_key: 'b',
        state: 'paused',
        head_sequence: 1,
        pending: 5,
      }),
      expect.objectContaining({ partition_key: 'held', state: 'paused', pending: 1 }),
    ]);

    const resumed = await http.patch(`/webhooks/${webhook.id}`).send({ status: 'active' });
    expect(resumed.body.status).toBe('active');
    await eventually(
      () =>
        sequences(hook, 'a').length === 7 &&
        sequences(hook, 'b').length === 5 &&
        sequences(hook, 'held').length === 2,
      { what: 'the backlog after resume' },
    );
    expect(sequences(hook, 'a')).toEqual(range(1, 7));
    expect(sequences(hook, 'b')).toEqual(range(1, 5));
    expect(sequences(hook, 'held')).toEqual([1, 2]);
    await eventually(async () => (await lines(webhook.id)).every((l) => l.state === 'idle'), {
      what: 'every line idle',
    });
  });

  it('410 Gone disables at once; re-enabling sends the kept backlog in order', async () => {
    const topic = await createTopic(db.pool);
    let gone = true;
    const hook = await receiver(() => ({ status: gone ? 410 : 200 }));
    const webhook = await createWebhook(db.pool, topic.id, hook.url);
    spawnWorker();
    await publish(topic.id, 'k', 3);
    await eventually(async () => (await webhookJson(topic.id, webhook.id)).status === 'disabled', {
      what: 'disabled',
    });
    const disabled = await webhookJson(topic.id, webhook.id);
    expect(disabled).toMatchObject({ disabled_reason: 'gone', disabled_at: expect.any(String) });
    expect(hook.arrivals).toHaveLength(1);
    expect(await delivery(webhook.id, 'k', 1)).toMatchObject({ status: 'pending', attempts: 1 });
    await publish(topic.id, 'k', 2);
    expect(await line(webhook.id, 'k')).toMatchObject({ state: 'paused', pending: 5 });

    gone = false;
    const enabled = await http.patch(`/webhooks/${webhook.id}`).send({ status: 'active' });
    expect(enabled.body).toMatchObject({
      status: 'active',
      disabled_reason: null,
      disabled_at: null,
    });
    await eventually(() => sequences(hook, 'k').length === 6, { what: 'the backlog' });
    expect(sequences(hook, 'k')).toEqual([1, 1, 2, 3, 4, 5]);
  });

  it('WEBHOOK_DISABLE_AFTER_SECONDS disables a webhook whose attempts only fail', async () => {
    const topic = await createTopic(db.pool);
    let failing = true;
    const hook = await receiver(() => ({ status: failing ? 500 : 200 }));
    const webhook = await createWebhook(db.pool, topic.id, hook.url);
    // A second, healthy webhook on the same topic stays active.
    const healthy = await receiver();
    const other = await createWebhook(db.pool, topic.id, healthy.url);
    spawnWorker({ WEBHOOK_DISABLE_AFTER_SECONDS: '2', MAX_RETRIES: '1000', BACKOFF_FACTOR: '0.2' });
    await publish(topic.id, 'k', 3);
    const started = Date.now();
    await eventually(async () => (await webhookJson(topic.id, webhook.id)).status === 'disabled', {
      timeoutMs: 15_000,
      what: 'disabled for failing',
    });
    expect(Date.now() - started).toBeGreaterThanOrEqual(2000);
    expect((await webhookJson(topic.id, webhook.id)).disabled_reason).toBe('failing');
    expect((await webhookJson(topic.id, other.id)).status).toBe('active');
    expect(sequences(healthy, 'k')).toEqual([1, 2, 3]);
    expect(new Set(sequences(hook, 'k'))).toEqual(new Set([1]));
    const attemptsAtDisable = hook.arrivals.length;
    expect(attemptsAtDisable).toBeGreaterThan(1);

    failing = false;
    await http.patch(`/webhooks/${webhook.id}`).send({ status: 'active' }).expect(200);
    await eventually(() => sequences(hook, 'k').at(-1) === 3, { what: 'the backlog' });
    expect(sequences(hook, 'k').slice(attemptsAtDisable)).toEqual([1, 2, 3]);
  });

  it('block: a dead head stops its line only; redrive sends it and the line goes on; skip moves past it', async () => {
    const topic = await createTopic(db.pool);
    const failing = new Set<string>(['bad/2']);
    const hook = await receiver((a) => {
      const id = `${a.headers['webhook-partition-key']}/${a.headers['webhook-sequence']}`;
      return { status: failing.has(id) ? 500 : 200 };
    });
    const webhook = await createWebhook(db.pool, topic.id, hook.url);
    await http.patch(`/webhooks/${webhook.id}`).send({ on_exhausted: 'block' }).expect(200);
    spawnWorker({ MAX_RETRIES: '2' });
    await publish(topic.id, 'bad', 3);
    await publish(topic.id, 'good', 3);
    await eventually(async () => (await line(webhook.id, 'bad'))?.state === 'blocked', {
      what: 'the bad line blocked',
    });
    await eventually(() => sequences(hook, 'good').length === 3, { what: 'the good line' });
    expect(await line(webhook.id, 'bad')).toMatchObject({
      head_sequence: 2,
      tail_sequence: 3,
      pending: 2,
      next_attempt_at: null,
    });
    expect((await lines(webhook.id, '?state=blocked')).map((l) => l.partition_key)).toEqual([
      'bad',
    ]);
    const dead = await delivery(webhook.id, 'bad', 2);
    expect(dead.status).toBe('dead');
    const metrics = await http.get('/metrics').expect(200);
    expect(metrics.text).toMatch(
      new RegExp(`pgwq_webhook_blocked_lines\\{webhook_id="${webhook.id}"[^}]*\\} 1\\n`),
    );
    await publish(topic.id, 'bad', 1);
    await publish(topic.id, 'good', 1);
    await eventually(() => sequences(hook, 'good').length === 4, { what: 'the good line' });
    expect(sequences(hook, 'bad')).toEqual([1, 2, 2]);

    // Redrive the blocked head: sent again, and the line continues after it.
    failing.clear();
    const redriven = await http
      .post('/dead-letter/redrive')
      .send({ delivery_ids: [dead.id] })
      .expect(200);
    expect(redriven.body).toEqual({ redriven: 1 });
    await eventually(() => sequences(hook, 'bad').length === 6, { what: 'the rest of bad' });
    expect(sequences(hook, 'bad')).toEqual([1, 2, 2, 2, 3, 4]);
    await eventually(async () => (await line(webhook.id, 'bad'))?.state === 'idle', {
      what: 'bad idle',
    });

    // Skip: the head stays dead and the line moves on.
    failing.add('bad/5');
    await publish(topic.id, 'bad', 2);
    await eventually(async () => (await line(webhook.id, 'bad'))?.state === 'blocked', {
      what: 'blocked again',
    });
    const skipped = await http.post(`/webhooks/${webhook.id}/lines/bad/skip`).expect(200);
    expect(skipped.body.partition_key).toBe('bad');
    expect(skipped.body.state).not.toBe('blocked');
    await eventually(() => sequences(hook, 'bad').at(-1) === 6, { what: 'the one after' });
    expect(sequences(hook, 'bad').slice(6)).toEqual([5, 5, 6]);
    expect((await delivery(webhook.id, 'bad', 5)).status).toBe('dead');
    await http.post(`/webhooks/${webhook.id}/lines/bad/skip`).expect(409);
  });

  it('lines API: idle, due, in_flight, retrying, paused and lag order', async () => {
    const topic = await createTopic(db.pool);
    let release: () => void = () => undefined;
    const held = new Promise<void>((r) => (release = r));
    const hook = await receiver(async (a) => {
      const key = a.headers['webhook-partition-key'];
      if (key === 'fails') return { status: 500 };
      if (key === 'flight') await held;
      return { status: 200 };
    });
    const webhook = await createWebhook(db.pool, topic.id, hook.url);
    await publish(topic.id, 'due', 2);
    expect(await line(webhook.id, 'due')).toMatchObject({
      state: 'due',
      head_sequence: 1,
      tail_sequence: 2,
      pending: 2,
      oldest_pending_at: expect.any(String),
    });
    spawnWorker({ BACKOFF_FACTOR: '30', MAX_RETRIES: '5' });
    await publish(topic.id, 'fails', 1);
    await publish(topic.id, 'flight', 1);
    await eventually(async () => (await line(webhook.id, 'due'))?.state === 'idle', {
      what: 'idle',
    });
    expect(await line(webhook.id, 'due')).toMatchObject({
      head_sequence: null,
      pending: 0,
      oldest_pending_at: null,
      next_attempt_at: null,
    });
    await eventually(async () => (await line(webhook.id, 'fails'))?.state === 'retrying', {
      what: 'retrying',
    });
    await eventually(async () => (await line(webhook.id, 'flight'))?.state === 'in_flight', {
      what: 'in flight',
    });
    // Most behind first: 'fails' and 'flight' have pending heads, idle 'due' comes last.
    const byLag = await lines(webhook.id, '?order=lag');
    expect(byLag.map((l) => l.partition_key)).toEqual(['fails', 'flight', 'due']);
    expect((await lines(webhook.id, '?order=lag&limit=1')).map((l) => l.partition_key)).toEqual([
      'fails',
    ]);
    expect((await lines(webhook.id, '?after=due')).map((l) => l.partition_key)).toEqual([
      'fails',
      'flight',
    ]);
    await http.patch(`/webhooks/${webhook.id}`).send({ status: 'paused' }).expect(200);
    expect(await line(webhook.id, 'fails')).toMatchObject({ state: 'paused', pending: 1 });
    expect(await line(webhook.id, 'flight')).toMatchObject({ state: 'in_flight' });
    release();
    await eventually(async () => (await line(webhook.id, 'flight'))?.state === 'idle', {
      what: 'in flight finished',
    });
  });
});

import type { INestApplicationContext } from '@nestjs/common';
import type { NestExpressApplication } from '@nestjs/platform-express';
import request from 'supertest';
import { createTestApp, expectErrorResponse } from './helpers/app.js';
import { createTestDatabase, TestDatabase } from './helpers/db.js';
import { eventually } from './helpers/eventually.js';
import { createTopic, createWebhook, insertMessage } from './helpers/factories.js';
import { Receiver } from './helpers/receiver.js';
import { startInProcessWorker } from './helpers/worker.js';

/**
 * DESIGN §10 "Per-webhook settings" and "Refused addresses are not the receiver's fault": the
 * settings on POST and PATCH alike, static headers whose values never come back, the retry
 * overrides, and a refused address that disables the webhook and keeps its backlog.
 */
describe('webhook manners', () => {
  const SECRET_VALUE = 'Bearer very-secret-token-42';
  let db: TestDatabase;
  let app: NestExpressApplication;
  let http: ReturnType<typeof request>;
  let receiver: Receiver;
  let topicId: number;

  beforeAll(async () => {
    db = await createTestDatabase();
    app = await createTestApp(db.url, { WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true' });
    http = request(app.getHttpServer());
    receiver = await Receiver.start();
    topicId = (await createTopic(db.pool)).id;
  });
  afterAll(async () => {
    await app?.close();
    await receiver?.close();
    await db?.drop();
  });

  const deliveries = async (webhookId: number) =>
    (
      await db.pool.query<{ sequence: string; status: string; attempts: number }>(
        `SELECT sequence, status, attempts FROM deliveries WHERE webhook_id = $1 ORDER BY sequence`,
        [webhookId],
      )
    ).rows;

  it('takes the settings on POST and PATCH alike, returns them, and never a header value', async () => {
    const created = await http
      .post('/webhooks')
      .send({
        topic_id: topicId,
        url: 'https://example.com/manners',
        on_exhausted: 'block',
        headers: { Authorization: SECRET_VALUE, 'X-Tenant': 'acme' },
        max_in_flight: 3,
        rate_limit_per_second: 2.5,
        max_retries: 7,
        backoff_factor: 1.5,
      })
      .expect(201);
    expect(created.body).toMatchObject({
      on_exhausted: 'block',
      header_names: ['authorization', 'x-tenant'],
      max_in_flight: 3,
      rate_limit_per_second: 2.5,
      max_retries: 7,
      backoff_factor: 1.5,
      disabled_detail: null,
    });
    const id = created.body.id as number;
    const limits = await db.pool.query('SELECT tokens FROM webhook_limits WHERE webhook_id = $1', [
      id,
    ]);
    expect(limits.rows).toEqual([{ tokens: 2.5 }]);

    const patched = await http
      .patch(`/webhooks/${id}`)
      .send({
        headers: { Authorization: SECRET_VALUE },
        max_in_flight: null,
        rate_limit_per_second: null,
        max_retries: 2,
      })
      .expect(200);
    expect(patched.body).toMatchObject({
      on_exhausted: 'block',
      header_names: ['authorization'],
      max_in_flight: null,
      rate_limit_per_second: null,
      max_retries: 2,
      backoff_factor: 1.5,
    });
    // No limits left: no bucket for the claim to lock.
    expect(
      (await db.pool.query('SELECT 1 FROM webhook_limits WHERE webhook_id = $1', [id])).rowCount,
    ).toBe(0);
    const list = await http.get(`/topics/${topicId}/webhooks`).expect(200);
    const audit = await http.get(`/audit-log?target=webhook:${id}`).expect(200);
    expect(audit.body[0].parameters).toMatchObject({ headers: ['Authorization'] });
    for (const body of [created.body, patched.body, list.body, audit.body]) {
      expect(JSON.stringify(body)).not.toContain('very-secret-token');
    }
    const { rows } = await db.pool.query('SELECT parameters::text AS p FROM audit_log');
    for (const row of rows) expect(row.p).not.toContain('very-secret-token');

    const cleared = await http.patch(`/webhooks/${id}`).send({ headers: null }).expect(200);
    expect(cleared.body.header_names).toEqual([]);
    const back = await http.patch(`/webhooks/${id}`).send({ on_exhausted: null }).expect(200);
    expect(back.body.on_exhausted).toBe('dead_letter');
  });

  it.each([
    [{ 'Content-Type': 'text/plain' }, /content-type.*may not be set/i],
    [{ host: 'evil.example' }, /host.*may not be set/],
    [{ 'Webhook-Signature': 'x' }, /Webhook-Signature.*may not be set/],
    [{ 'transfer-encoding': 'chunked' }, /transfer-encoding.*may not be set/],
    [{ Connection: 'close' }, /Connection.*may not be set/],
    [{ 'Content-Length': '5' }, /Content-Length.*may not be set/],
    [{ 'bad name': 'x' }, /not a valid HTTP header name/],
    [{ 'X-A': 'one', 'x-a': 'two' }, /given twice/],
    [{ 'X-A': 'line\r\nX-Injected: 1' }, /cannot carry/],
    [{ 'X-A': 5 }, /must be a string/],
    [Object.fromEntries(Array.from({ length: 21 }, (_, k) => [`x-h${k}`, 'v'])), /at most 20/],
  ])('refuses the headers %j with a clear 400, on POST and PATCH', async (headers, message) => {
    const before = await db.pool.query('SELECT count(*) FROM webhooks');
    expectErrorResponse(
      await http
        .post('/webhooks')
        .send({ topic_id: topicId, url: 'https://example.com/r', headers }),
      400,
      message,
    );
    const id = (await createWebhook(db.pool, topicId, `https://example.com/${Math.random()}`)).id;
    expectErrorResponse(await http.patch(`/webhooks/${id}`).send({ headers }), 400, message);
    const after = await db.pool.query('SELECT count(*) FROM webhooks');
    expect(Number(after.rows[0].count)).toBe(Number(before.rows[0].count) + 1);
  });

  it('refuses out-of-range limits and retry settings', async () => {
    for (const body of [
      { max_in_flight: 0 },
      { max_in_flight: 1.5 },
      { rate_limit_per_second: 0 },
      { rate_limit_per_second: 'fast' },
      { max_retries: 0 },
      { backoff_factor: -1 },
    ]) {
      expectErrorResponse(
        await http
          .post('/webhooks')
          .send({ topic_id: topicId, url: 'https://example.com/x', ...body }),
        400,
      );
    }
  });

  describe('with a worker', () => {
    let worker: INestApplicationContext;
    beforeAll(async () => {
      worker = await startInProcessWorker(db.url, { MAX_RETRIES: '5', BACKOFF_FACTOR: '0.01' });
    });
    afterAll(async () => {
      await worker?.close();
    });

    it('sends the static headers on every attempt, beside its own', async () => {
      const topic = await createTopic(db.pool);
      const res = await http
        .post('/webhooks')
        .send({ topic_id: topic.id, url: receiver.url, headers: { Authorization: SECRET_VALUE } })
        .expect(201);
      let calls = 0;
      receiver.handler = () => (++calls === 1 ? { status: 500 } : { status: 204 });
      await insertMessage(db.pool, topic.id, 'h');
      const arrivals = await eventually(
        () => {
          const mine = receiver.arrivals.filter((a) => a.headers['webhook-topic'] === topic.name);
          return mine.length === 2 && mine;
        },
        { what: 'two attempts' },
      );
      for (const arrival of arrivals) {
        expect(arrival.headers.authorization).toBe(SECRET_VALUE);
        expect(arrival.headers['content-type']).toBe('application/json');
      }
      expect(arrivals.map((a) => a.headers['webhook-attempt'])).toEqual(['1', '2']);
      await eventually(async () => (await deliveries(res.body.id))[0]?.status === 'delivered');
    });

    it('max_retries overrides MAX_RETRIES, backoff_factor overrides BACKOFF_FACTOR', async () => {
      const topic = await createTopic(db.pool);
      const res = await http
        .post('/webhooks')
        .send({ topic_id: topic.id, url: receiver.url, max_retries: 3, backoff_factor: 1.25 })
        .expect(201);
      receiver.handler = (a) =>
        a.headers['webhook-topic'] === topic.name ? { status: 500 } : { status: 204 };
      await insertMessage(db.pool, topic.id, 'r');
      await eventually(async () => (await deliveries(res.body.id))[0]?.status === 'dead', {
        timeoutMs: 15_000,
        what: 'dead after 3 attempts',
      });
      const { rows } = await db.pool.query<{ started_at: Date; duration_ms: number }>(
        `SELECT a.started_at, a.duration_ms FROM delivery_attempts a
         JOIN deliveries d ON d.id = a.delivery_id WHERE d.webhook_id = $1 ORDER BY a.attempt`,
        [res.body.id],
      );
      expect(rows).toHaveLength(3); // not MAX_RETRIES=5
      // After failure n: 1.25^n s ±10 % (the global 0.01^n would be a few milliseconds).
      for (const [n, expected] of [
        [1, 1.25],
        [2, 1.5625],
      ]) {
        const gap =
          rows[n].started_at.getTime() - rows[n - 1].started_at.getTime() - rows[n - 1].duration_ms;
        expect(gap).toBeGreaterThanOrEqual(expected * 900 - 5);
        expect(gap).toBeLessThan(expected * 1100 + 1000);
      }
    });
  });

  it('a refused address disables the webhook, spends no retry, keeps the backlog; active resumes it in order', async () => {
    let strict: INestApplicationContext | undefined = await startInProcessWorker(db.url, {
      WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'false',
    });
    let resumed: INestApplicationContext | undefined;
    try {
      const topic = await createTopic(db.pool);
      // Registered while private networks were allowed (or by SQL): the worker is stricter.
      const webhook = await createWebhook(db.pool, topic.id, receiver.url);
      receiver.handler = () => ({ status: 204 });
      for (let k = 0; k < 3; k++) await insertMessage(db.pool, topic.id, 'p');
      const disabled = await eventually(
        async () => {
          const res = await http.get(`/topics/${topic.id}/webhooks`).expect(200);
          return res.body[0].status === 'disabled' && res.body[0];
        },
        { what: 'the webhook disabled' },
      );
      expect(disabled.disabled_reason).toBe('refused');
      expect(disabled.disabled_detail).toMatch(/127\.0\.0\.1.*loopback.*WEBHOOK_ALLOW_PRIVATE/);
      await strict.close();
      strict = undefined;
      expect(receiver.where('webhook-topic', topic.name)).toHaveLength(0);
      expect(await deliveries(webhook.id)).toEqual([
        { sequence: '1', status: 'pending', attempts: 0 },
        { sequence: '2', status: 'pending', attempts: 0 },
        { sequence: '3', status: 'pending', attempts: 0 },
      ]);
      const attempts = await db.pool.query(
        `SELECT 1 FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id
         WHERE d.webhook_id = $1`,
        [webhook.id],
      );
      expect(attempts.rowCount).toBe(0);

      resumed = await startInProcessWorker(db.url);
      const res = await http
        .patch(`/webhooks/${webhook.id}`)
        .send({ status: 'active' })
        .expect(200);
      expect(res.body).toMatchObject({
        status: 'active',
        disabled_reason: null,
        disabled_detail: null,
      });
      await eventually(() => receiver.where('webhook-topic', topic.name).length === 3, {
        what: 'the backlog after the resume',
      });
      expect(
        receiver.where('webhook-topic', topic.name).map((a) => a.headers['webhook-sequence']),
      ).toEqual(['1', '2', '3']);
    } finally {
      await strict?.close();
      await resumed?.close();
    }
  });
});

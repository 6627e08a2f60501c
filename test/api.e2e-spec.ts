import type { NestExpressApplication } from '@nestjs/platform-express';
import { randomBytes } from 'node:crypto';
import request from 'supertest';
import { createTestApp, expectErrorResponse as expectError } from './helpers/app.js';
import { createTestDatabase, TestDatabase } from './helpers/db.js';

const SECRET = 'whsec_' + randomBytes(24).toString('base64');

describe('REST API', () => {
  let db: TestDatabase;
  let app: NestExpressApplication;
  let http: ReturnType<typeof request>;

  beforeAll(async () => {
    db = await createTestDatabase();
    app = await createTestApp(db.url, { MAX_PAYLOAD_BYTES: '2048' });
    http = request(app.getHttpServer());
  });
  afterAll(async () => {
    await app.close();
    await db.drop();
  });

  /** Row counts of every table: a rejected request must leave them as they were. */
  async function counts() {
    const { rows } = await db.pool.query(
      `SELECT (SELECT count(*) FROM topics) t, (SELECT count(*) FROM webhooks) w,
              (SELECT count(*) FROM messages) m, (SELECT count(*) FROM deliveries) d,
              (SELECT count(*) FROM delivery_lines) l`,
    );
    return rows[0];
  }

  describe('the walk-through: topic, webhook, message, deliveries', () => {
    it('stores a published message in order with one delivery per webhook', async () => {
      const topic = await http.post('/topics').send({ name: 'orders' }).expect(201);
      expect(topic.body).toEqual({
        id: expect.any(Number),
        name: 'orders',
        created_at: expect.any(String),
      });

      const webhook = await http
        .post('/webhooks')
        .send({ topic_id: topic.body.id, url: 'https://example.com/hook' })
        .expect(201);
      expect(webhook.body).toEqual({
        id: expect.any(Number),
        topic_id: topic.body.id,
        url: 'https://example.com/hook',
        secret: expect.stringMatching(/^whsec_[A-Za-z0-9+/]{43}=$/),
        created_at: expect.any(String),
        status: 'active',
        disabled_reason: null,
        disabled_detail: null,
        disabled_at: null,
        on_exhausted: 'dead_letter',
        header_names: [],
        max_in_flight: null,
        rate_limit_per_second: null,
        max_retries: null,
        backoff_factor: null,
        event_types: null,
      });

      const m1 = await http
        .post('/topics/orders/messages')
        .send({ partition_key: 'user-42', payload: { event: 'order.created' } })
        .expect(201);
      const m2 = await http
        .post('/topics/orders/messages')
        .send({ partition_key: 'user-42', payload: [1, 'two', null] })
        .expect(201);
      expect(m1.body).toEqual({
        id: expect.any(Number),
        topic_id: topic.body.id,
        partition_key: 'user-42',
        sequence: 1,
        created_at: expect.any(String),
        idempotency_key: null,
        event_type: null,
      });
      expect(m2.body.sequence).toBe(2);

      const deliveries = await http.get(`/webhooks/${webhook.body.id}/deliveries`).expect(200);
      expect(deliveries.body).toHaveLength(2);
      expect(deliveries.body[0]).toEqual({
        id: expect.any(Number),
        message_id: m1.body.id,
        webhook_id: webhook.body.id,
        topic_id: topic.body.id,
        partition_key: 'user-42',
        sequence: 1,
        previous_sequence: null,
        event_type: null,
        status: 'pending',
        attempts: 0,
        next_attempt_at: expect.any(String),
        last_status_code: null,
        last_error: null,
        created_at: expect.any(String),
        delivered_at: null,
        dead_at: null,
      });
      const pending = await http
        .get(`/webhooks/${webhook.body.id}/deliveries?status=pending&limit=1`)
        .expect(200);
      expect(pending.body).toHaveLength(1);

      const stored = await db.pool.query('SELECT payload FROM messages WHERE id = $1', [
        m2.body.id,
      ]);
      expect(stored.rows[0].payload).toEqual([1, 'two', null]);
    });
  });

  describe('topics', () => {
    it('refuses a taken name with 409 and invalid names with 400', async () => {
      await http.post('/topics').send({ name: 'dup' }).expect(201);
      const before = await counts();
      expectError(await http.post('/topics').send({ name: 'dup' }), 409, /already exists/);
      for (const name of [
        '',
        ' ',
        'a b',
        '-x',
        'x'.repeat(201),
        'ünïcode',
        'a/b',
        42,
        null,
        ['a'],
      ]) {
        expectError(await http.post('/topics').send({ name }), 400);
      }
      expectError(await http.post('/topics').send({}), 400);
      expectError(await http.post('/topics').send({ name: 'ok', extra: 1 }), 400, /extra/);
      expect(await counts()).toEqual(before);
    });

    it('pages with limit and after in ascending id order', async () => {
      for (const name of ['page-a', 'page-b', 'page-c']) {
        await http.post('/topics').send({ name }).expect(201);
      }
      const all = (await http.get('/topics?limit=1000').expect(200)).body as { id: number }[];
      const ids = all.map((t) => t.id);
      expect(ids).toEqual([...ids].sort((a, b) => a - b));
      const page = await http.get(`/topics?after=${ids[0]}&limit=2`).expect(200);
      expect(page.body.map((t: { id: number }) => t.id)).toEqual(ids.slice(1, 3));
      for (const q of [
        'limit=0',
        'limit=1001',
        'limit=abc',
        'after=-1',
        'after=1.5',
        'unknown=1',
      ]) {
        expectError(await http.get(`/topics?${q}`), 400);
      }
    });
  });

  describe('webhooks', () => {
    let topicId: number;
    beforeAll(async () => {
      topicId = (await http.post('/topics').send({ name: 'hooks' }).expect(201)).body.id;
    });

    it('refuses bad URLs, secrets and topics without writing anything', async () => {
      const before = await counts();
      for (const url of [
        'ftp://example.com/x',
        'not a url',
        'https://user:pass@example.com/',
        `https://example.com/${'a'.repeat(2048)}`,
        '',
      ]) {
        expectError(await http.post('/webhooks').send({ topic_id: topicId, url }), 400);
      }
      for (const secret of [
        'whsec_short',
        'nope',
        'whsec_' + Buffer.alloc(16).toString('base64'),
      ]) {
        expectError(
          await http.post('/webhooks').send({ topic_id: topicId, url: 'https://e.com', secret }),
          400,
          /secret/,
        );
      }
      expectError(await http.post('/webhooks').send({ topic_id: '1', url: 'https://e.com' }), 400);
      expectError(
        await http.post('/webhooks').send({ topic_id: 999999, url: 'https://e.com' }),
        404,
      );
      expect(await counts()).toEqual(before);
    });

    it('lists without secrets, shows and rotates the secret, deletes', async () => {
      const created = await http
        .post('/webhooks')
        .send({ topic_id: topicId, url: 'https://example.com/a', secret: SECRET })
        .expect(201);
      expect(created.body.secret).toBe(SECRET);
      const list = await http.get(`/topics/${topicId}/webhooks`).expect(200);
      expect(list.body.length).toBeGreaterThan(0);
      for (const w of list.body) expect(w).not.toHaveProperty('secret');

      const id = created.body.id;
      expect((await http.get(`/webhooks/${id}/secret`).expect(200)).body).toEqual({
        secret: SECRET,
      });
      const rotated = await http.post(`/webhooks/${id}/secret/rotate`).expect(200);
      expect(rotated.body.secret).toMatch(/^whsec_/);
      expect(rotated.body.secret).not.toBe(SECRET);
      const row = await db.pool.query(
        'SELECT previous_secret, previous_secret_expires_at > now() AS valid FROM webhooks WHERE id = $1',
        [id],
      );
      expect(row.rows[0]).toEqual({ previous_secret: SECRET, valid: true });

      await http.delete(`/webhooks/${id}`).expect(204);
      expectError(await http.delete(`/webhooks/${id}`), 404);
      expectError(await http.get(`/webhooks/${id}/secret`), 404);
      expectError(await http.post(`/webhooks/${id}/secret/rotate`), 404);
      expectError(await http.get(`/topics/999999/webhooks`), 404);
    });

    it('answers 400 to ids that are not positive integers', async () => {
      for (const id of ['abc', '1.5', '1e3', '0x10', '-1', '0', '99999999999999999999']) {
        expectError(await http.get(`/webhooks/${id}/secret`), 400, /id/);
        expectError(await http.delete(`/webhooks/${id}`), 400);
        // A topic segment that is not digits is a name (404 when there is none).
        expectError(await http.get(`/topics/${id}/webhooks`), /^[0-9]+$/.test(id) ? 400 : 404);
        expectError(await http.get(`/webhooks/${id}/deliveries`), 400);
      }
    });
  });

  describe('messages', () => {
    beforeAll(async () => {
      await http.post('/topics').send({ name: 'msgs' }).expect(201);
    });

    it('refuses bad messages with a clear 4xx and writes nothing', async () => {
      const before = await counts();
      const bad: [unknown, number][] = [
        [{ partition_key: 'k' }, 400],
        [{ payload: {} }, 400],
        [{ partition_key: '', payload: {} }, 400],
        [{ partition_key: 'has space', payload: {} }, 400],
        [{ partition_key: 'k'.repeat(256), payload: {} }, 400],
        [{ partition_key: 7, payload: {} }, 400],
        [{ partition_key: 'k', payload: {}, extra: true }, 400],
        [{ partition_key: 'k', payload: { s: 'nul \u0000 inside' } }, 400],
        [{ partition_key: 'k', payload: { big: 'x'.repeat(3000) } }, 413],
      ];
      for (const [body, status] of bad) {
        expectError(await http.post('/topics/msgs/messages').send(body as object), status);
      }
      expectError(
        await http.post('/topics/nope/messages').send({ partition_key: 'k', payload: {} }),
        404,
      );
      expect(await counts()).toEqual(before);
    });

    it('answers malformed JSON with 400 and a body far over the limit with 413', async () => {
      const before = await counts();
      const malformed = await http
        .post('/topics/msgs/messages')
        .set('content-type', 'application/json')
        .send('{"partition_key": "k", "payload": ');
      expectError(malformed, 400, /JSON/);
      const huge = await http
        .post('/topics/msgs/messages')
        .set('content-type', 'application/json')
        .send(JSON.stringify({ partition_key: 'k', payload: 'y'.repeat(64 * 1024) }));
      expectError(huge, 413);
      expect(await counts()).toEqual(before);
    });
  });

  describe('deliveries and dead letters', () => {
    it('lists dead letters with their message ids and counts them, filtered', async () => {
      const topic = (await http.post('/topics').send({ name: 'dl' }).expect(201)).body;
      const hook = (
        await http
          .post('/webhooks')
          .send({ topic_id: topic.id, url: 'https://e.com/x' })
          .expect(201)
      ).body;
      const msg = (
        await http
          .post('/topics/dl/messages')
          .send({ partition_key: 'p', payload: { v: 1 } })
          .expect(201)
      ).body;
      // Dead-lettering is the worker's job; here the row is put in that state directly.
      await db.pool.query(
        `UPDATE deliveries SET status = 'dead', attempts = 5, dead_at = now(),
         last_status_code = 500, last_error = 'HTTP 500' WHERE message_id = $1`,
        [msg.id],
      );
      const list = await http.get(`/dead-letter?topic_id=${topic.id}`).expect(200);
      expect(list.body).toHaveLength(1);
      expect(list.body[0]).toMatchObject({
        webhook_id: hook.id,
        status: 'dead',
        attempts: 5,
        last_status_code: 500,
        message_id: msg.id,
        topic_id: topic.id,
        partition_key: 'p',
        sequence: 1,
      });
      expect(list.body[0]).not.toHaveProperty('payload');
      expect((await http.get(`/messages/${msg.id}`).expect(200)).body).toMatchObject({
        id: msg.id,
        payload: { v: 1 },
      });
      expect((await http.get(`/dead-letter/count?webhook_id=${hook.id}`).expect(200)).body).toEqual(
        {
          count: 1,
        },
      );
      expect((await http.get('/dead-letter/count?topic_id=999999').expect(200)).body).toEqual({
        count: 0,
      });
      expectError(await http.get('/dead-letter?topic_id=abc'), 400);
      expectError(await http.get('/dead-letter/count?webhook_id=-3'), 400);

      const delivery = list.body[0].id;
      expect((await http.get(`/deliveries/${delivery}/attempts`).expect(200)).body).toEqual([]);
      expectError(await http.get('/deliveries/999999/attempts'), 404);
      expectError(await http.get(`/webhooks/${hook.id}/deliveries?status=lost`), 400);
    });
  });

  describe('OpenAPI', () => {
    it('serves the UI at /docs and a valid OpenAPI 3 document with every route at /docs-json', async () => {
      const ui = await http.get('/docs').redirects(1).expect(200);
      expect(ui.text).toMatch(/swagger/i);
      const doc = (await http.get('/docs-json').expect(200)).body;
      expect(doc.openapi).toMatch(/^3\./);
      const routes = Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(
        ([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`),
      );
      expect(routes.sort()).toEqual(
        [
          'POST /topics',
          'GET /topics',
          'POST /webhooks',
          'GET /topics/{topic}',
          'GET /topics/{topic}/webhooks',
          'DELETE /webhooks/{id}',
          'GET /webhooks/{id}/secret',
          'POST /webhooks/{id}/secret/rotate',
          'POST /topics/{topic}/messages',
          'POST /topics/{topic}/messages/batch',
          'GET /webhooks/{id}/deliveries',
          'GET /deliveries/{id}/attempts',
          'GET /dead-letter',
          'GET /dead-letter/count',
          'GET /messages/{id}',
          'GET /health',
          'GET /metrics',
          'PATCH /webhooks/{id}',
          'GET /webhooks/{id}/lines',
          'POST /webhooks/{id}/lines/{partition_key}/skip',
          'POST /webhooks/{id}/replay',
          'POST /dead-letter/redrive',
          'GET /messages',
          'GET /messages/{id}/deliveries',
          'GET /deliveries/{id}',
          'GET /webhook-health',
          'GET /audit-log',
        ].sort(),
      );
      for (const [path, ops] of Object.entries(
        doc.paths as Record<
          string,
          Record<string, { responses: Record<string, unknown>; requestBody?: unknown }>
        >,
      )) {
        for (const [method, op] of Object.entries(ops)) {
          const statuses = Object.keys(op.responses);
          expect(statuses.some((s) => s.startsWith('2'))).toBe(true);
          // Every route but those without input can answer 400.
          if (!['/health', '/metrics'].includes(path)) expect(statuses).toContain('400');
          if (method === 'post' && !/(rotate|skip)$/.test(path))
            expect(op.requestBody).toBeDefined();
        }
      }
      expect(doc.components.schemas.ErrorDto.required).toEqual(
        expect.arrayContaining(['status_code', 'error', 'message']),
      );
    });
  });
});

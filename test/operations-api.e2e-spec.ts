import type { NestExpressApplication } from '@nestjs/platform-express';
import request from 'supertest';
import { createTestApp, expectErrorResponse } from './helpers/app.js';
import { createTestDatabase, TestDatabase } from './helpers/db.js';
import { createTopic, createWebhook, insertMessage } from './helpers/factories.js';

/** DESIGN §7 routes: shapes, the OpenAPI document, and a clear 4xx that changes nothing. */
describe('operations API', () => {
  let db: TestDatabase;
  let app: NestExpressApplication;
  let http: ReturnType<typeof request>;
  let topicId: number;
  let webhookId: number;

  beforeAll(async () => {
    db = await createTestDatabase();
    app = await createTestApp(db.url);
    http = request(app.getHttpServer());
    topicId = (await createTopic(db.pool, 'orders')).id;
    webhookId = (await createWebhook(db.pool, topicId, 'https://example.com/a')).id;
    await createWebhook(db.pool, topicId, 'https://example.com/b');
    await insertMessage(db.pool, topicId, 'k');
  });
  afterAll(async () => {
    await app.close();
    await db.drop();
  });

  /** Everything an operator action could change. */
  async function state() {
    const { rows } = await db.pool.query(
      `SELECT (SELECT json_agg(w ORDER BY id) FROM webhooks w) AS webhooks,
              (SELECT json_agg(l ORDER BY webhook_id, partition_key) FROM delivery_lines l) AS lines,
              (SELECT json_agg(d ORDER BY id) FROM deliveries d) AS deliveries`,
    );
    return rows[0];
  }

  async function expectError(req: request.Test, status: number, message?: RegExp) {
    const before = await state();
    expectErrorResponse(await req, status, message);
    expect(await state()).toEqual(before);
  }

  it('PATCH /webhooks/{id} answers the webhook with its §7 fields', async () => {
    const res = await http
      .patch(`/webhooks/${webhookId}`)
      .send({ on_exhausted: 'block', status: 'paused' })
      .expect(200);
    expect(res.body).toEqual({
      id: webhookId,
      topic_id: topicId,
      url: 'https://example.com/a',
      created_at: expect.any(String),
      status: 'paused',
      disabled_reason: null,
      disabled_detail: null,
      disabled_at: null,
      on_exhausted: 'block',
      header_names: [],
      max_in_flight: null,
      rate_limit_per_second: null,
      max_retries: null,
      backoff_factor: null,
      event_types: null,
    });
    const moved = await http
      .patch(`/webhooks/${webhookId}`)
      .send({ url: 'https://example.com/c', status: 'active', on_exhausted: 'dead_letter' })
      .expect(200);
    expect(moved.body).toMatchObject({ url: 'https://example.com/c', status: 'active' });
    const listed = await http.get(`/topics/${topicId}/webhooks`).expect(200);
    expect(listed.body[0]).toMatchObject({ url: 'https://example.com/c', status: 'active' });
  });

  it('PATCH refuses bad input with 400, an unknown webhook with 404, a taken URL with 409', async () => {
    const patch = (id: number | string, body: unknown) =>
      http.patch(`/webhooks/${id}`).send(body as object);
    await expectError(patch(webhookId, {}), 400, /at least one/);
    await expectError(patch(webhookId, { status: 'disabled' }), 400);
    await expectError(patch(webhookId, { status: 'stopped' }), 400);
    await expectError(patch(webhookId, { on_exhausted: 'drop' }), 400);
    await expectError(patch(webhookId, { url: 'ftp://example.com/x' }), 400, /http/);
    await expectError(patch(webhookId, { url: 'http://127.0.0.1/hook' }), 400);
    await expectError(patch(webhookId, { url: 'https://example.com/x', colour: 'red' }), 400);
    await expectError(patch('x1', { status: 'paused' }), 400);
    await expectError(patch(999999, { status: 'paused' }), 404);
    await expectError(patch(webhookId, { url: 'https://example.com/b' }), 409);
  });

  it('GET /webhooks/{id}/lines: shape, and 400/404', async () => {
    const res = await http.get(`/webhooks/${webhookId}/lines?order=lag`).expect(200);
    expect(res.body).toEqual([
      {
        partition_key: 'k',
        head_sequence: 1,
        tail_sequence: 1,
        pending: 1,
        oldest_pending_at: expect.any(String),
        next_attempt_at: expect.any(String),
        state: 'due',
      },
    ]);
    expect((await http.get(`/webhooks/${webhookId}/lines?state=blocked`)).body).toEqual([]);
    await expectError(http.get(`/webhooks/999999/lines`), 404);
    await expectError(http.get(`/webhooks/${webhookId}/lines?state=stuck`), 400);
    await expectError(http.get(`/webhooks/${webhookId}/lines?order=age`), 400);
    await expectError(http.get(`/webhooks/${webhookId}/lines?limit=0`), 400);
    await expectError(http.get(`/webhooks/${webhookId}/lines?order=lag&after=k`), 400);
  });

  it('skip: 409 on a line that is not blocked, 404 on no line or no webhook', async () => {
    await expectError(http.post(`/webhooks/${webhookId}/lines/k/skip`), 409, /not blocked/);
    await expectError(http.post(`/webhooks/${webhookId}/lines/nope/skip`), 404);
    await expectError(http.post(`/webhooks/999999/lines/k/skip`), 404);
  });

  it('redrive: 400 without a filter or with bad ones; 200 {redriven: 0} when nothing matches', async () => {
    const redrive = (body: unknown) => http.post('/dead-letter/redrive').send(body as object);
    await expectError(redrive({}), 400, /at least one/);
    await expectError(redrive({ delivery_ids: [] }), 400);
    await expectError(redrive({ delivery_ids: ['1'] }), 400);
    await expectError(redrive({ webhook_id: 0 }), 400);
    await expectError(redrive({ since: 'yesterday' }), 400);
    await expectError(redrive({ partition_key: '' }), 400);
    await expectError(redrive({ topic_id: 1, everything: true }), 400);
    expect((await redrive({ webhook_id: webhookId }).expect(200)).body).toEqual({ redriven: 0 });
  });

  it('replay: 400 with both forms or neither, 404 for an unknown webhook', async () => {
    const replay = (id: number, body: unknown) =>
      http.post(`/webhooks/${id}/replay`).send(body as object);
    await expectError(replay(webhookId, {}), 400, /either/);
    await expectError(
      replay(webhookId, { partition_key: 'k', from_sequence: 1, since: '2026-01-01T00:00:00Z' }),
      400,
      /either/,
    );
    await expectError(replay(webhookId, { partition_key: 'k' }), 400, /together/);
    await expectError(replay(webhookId, { from_sequence: 1 }), 400, /together/);
    await expectError(replay(webhookId, { partition_key: 'k', from_sequence: 0 }), 400);
    await expectError(replay(999999, { since: '2026-01-01T00:00:00Z' }), 404);
    // Nothing delivered yet: nothing to send again.
    const res = await replay(webhookId, { partition_key: 'k', from_sequence: 1 }).expect(200);
    expect(res.body).toEqual({ replayed: 0 });
  });

  it('documents the §7 routes with examples', async () => {
    const doc = (await http.get('/docs-json').expect(200)).body;
    expect(doc.paths['/webhooks/{id}'].patch.requestBody).toBeDefined();
    for (const schema of ['UpdateWebhookDto', 'RedriveDto', 'ReplayDto', 'LineDto']) {
      const properties = Object.values(doc.components.schemas[schema].properties) as {
        example?: unknown;
        enum?: unknown;
      }[];
      expect(properties.some((p) => p.example !== undefined)).toBe(true);
    }
    expect(doc.components.schemas.LineDto.properties.state.enum).toEqual([
      'idle',
      'due',
      'in_flight',
      'retrying',
      'blocked',
      'paused',
    ]);
  });
});

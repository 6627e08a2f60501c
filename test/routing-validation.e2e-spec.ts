import type { NestExpressApplication } from '@nestjs/platform-express';
import request from 'supertest';
import { createTestApp, expectErrorResponse } from './helpers/app.js';
import { createTestDatabase, TestDatabase } from './helpers/db.js';

/** Bad event types and event_types filters are refused, by the API and by the database. */
describe('event type validation', () => {
  let db: TestDatabase;
  let app: NestExpressApplication;
  let http: ReturnType<typeof request>;
  let topicId: number;
  let all: number;

  beforeAll(async () => {
    db = await createTestDatabase();
    app = await createTestApp(db.url, { WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true' });
    http = request(app.getHttpServer());
    topicId = (await http.post('/topics').send({ name: 'shop' })).body.id;
    for (const path of ['all', 'orders', 'users']) {
      const res = await http
        .post('/webhooks')
        .send({ topic_id: topicId, url: `http://127.0.0.1:9/${path}` });
      if (path === 'all') all = res.body.id;
    }
  });
  afterAll(async () => {
    await app?.close();
    await db?.drop();
  });

  it('refuses bad event types on publish and bad event_types on webhooks, changing nothing', async () => {
    for (const eventType of ['', 'a b', 'x'.repeat(129), 'é', 42, null]) {
      const res = await http
        .post('/topics/shop/messages')
        .send({ partition_key: 'bad', payload: {}, event_type: eventType });
      expectErrorResponse(res, 400, /event_type must be 1-128 characters/);
    }
    const batch = await http.post('/topics/shop/messages/batch').send({
      messages: [
        { partition_key: 'bad', payload: {}, event_type: 'ok' },
        { partition_key: 'bad', payload: {}, event_type: 'not ok' },
      ],
    });
    expectErrorResponse(batch, 400, /messages\[1\]\.event_type/);
    const refused: unknown[] = [
      [],
      ['a b'],
      ['order.**'],
      ['*'],
      ['a', 'a'],
      Array.from({ length: 101 }, (_, i) => `t${i}`),
      'order.*',
      [1],
    ];
    for (const eventTypes of refused) {
      const res = await http
        .post('/webhooks')
        .send({ topic_id: topicId, url: 'http://127.0.0.1:9/refused', event_types: eventTypes });
      expectErrorResponse(res, 400, /event_types/);
      const patch = await http.patch(`/webhooks/${all}`).send({ event_types: eventTypes });
      expectErrorResponse(patch, 400, /event_types/);
    }
    const { rows } = await db.pool.query(
      `SELECT (SELECT count(*)::int FROM messages WHERE partition_key = 'bad') AS messages,
              (SELECT count(*)::int FROM webhooks) AS webhooks,
              (SELECT event_types FROM webhooks WHERE id = $1) AS all_types`,
      [all],
    );
    expect(rows[0]).toEqual({ messages: 0, webhooks: 3, all_types: null });
    // 100 entries of 128 characters are fine (a prefix entry too).
    const most = Array.from({ length: 99 }, (_, i) => `${i}`.padEnd(128, 'x')).concat(
      `${'p'.repeat(126)}.*`,
    );
    const res = await http
      .post('/webhooks')
      .send({ topic_id: topicId, url: 'http://127.0.0.1:9/most', event_types: most });
    expect(res.status).toBe(201);
    expect(res.body.event_types).toEqual(most);
    expect((await http.delete(`/webhooks/${res.body.id}`)).status).toBe(204);
  });

  it('refuses a bad event_type from SQL with an error that says what is allowed', async () => {
    await expect(
      db.pool.query(
        `INSERT INTO messages (topic_id, partition_key, payload, event_type)
         VALUES ($1, 'bad', $2::jsonb, 'no spaces please')`,
        [topicId, JSON.stringify({ big: 'x'.repeat(10_000) })],
      ),
    ).rejects.toMatchObject({
      code: '23514',
      constraint: 'messages_event_type_check',
      message:
        'message refused: event_type must be 1-128 characters of A-Z a-z 0-9 _ . : / - (got "no spaces please")',
    });
    await expect(
      db.pool.query(`SELECT pgwq_publish('shop', 'bad', '{}', '')`),
    ).rejects.toMatchObject({ code: '23514' });
    await expect(
      db.pool.query(`UPDATE webhooks SET event_types = '{"a b"}' WHERE id = $1`, [all]),
    ).rejects.toMatchObject({ code: '23514', constraint: 'webhooks_event_types_check' });
  });
});

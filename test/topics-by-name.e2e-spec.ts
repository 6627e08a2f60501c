import type { NestExpressApplication } from '@nestjs/platform-express';
import request from 'supertest';
import { createTestApp, expectErrorResponse } from './helpers/app.js';
import { createTestDatabase, TestDatabase } from './helpers/db.js';

/**
 * Topics as tenants: every route that takes a topic takes its name or its id (digits only = an
 * id), and 100,000 topics page, look up by name and narrow by prefix on indexes.
 */
describe('topics by name or id', () => {
  let db: TestDatabase;
  let app: NestExpressApplication;
  let http: ReturnType<typeof request>;
  let acme: { id: number; name: string };

  beforeAll(async () => {
    db = await createTestDatabase();
    app = await createTestApp(db.url, { WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true' });
    http = request(app.getHttpServer());
    acme = (await http.post('/topics').send({ name: 'acme.orders' })).body;
    await http
      .post('/webhooks')
      .send({ topic_id: acme.id, url: 'http://127.0.0.1:9/acme' })
      .expect(201);
  });
  afterAll(async () => {
    await app?.close();
    await db?.drop();
  });

  it('refuses a topic name of digits only, which would read as an id', async () => {
    expectErrorResponse(await http.post('/topics').send({ name: '123' }), 400, /digits only/);
    expect((await http.post('/topics').send({ name: '123a' })).status).toBe(201);
    expect((await http.post('/topics').send({ name: '0.5' })).status).toBe(201);
  });

  it('GET /topics/{topic} by name and by id', async () => {
    for (const ref of [acme.name, String(acme.id)]) {
      const res = await http.get(`/topics/${ref}`);
      expect(res.status).toBe(200);
      expect(res.body).toEqual({
        id: acme.id,
        name: 'acme.orders',
        created_at: expect.any(String),
      });
    }
    expectErrorResponse(await http.get('/topics/nope'), 404, /topic "nope" does not exist/);
    expectErrorResponse(await http.get('/topics/999999'), 404, /topic 999999 does not exist/);
    expectErrorResponse(await http.get('/topics/99999999999'), 400, /name or its id/);
    expectErrorResponse(await http.get('/topics/0'), 400, /name or its id/);
  });

  it('publishes, publishes a batch and lists webhooks by name or id', async () => {
    for (const ref of [acme.name, String(acme.id)]) {
      const one = await http
        .post(`/topics/${ref}/messages`)
        .send({ partition_key: 'k', payload: {} });
      expect(one.status).toBe(201);
      expect(one.body.topic_id).toBe(acme.id);
      const batch = await http
        .post(`/topics/${ref}/messages/batch`)
        .send({ messages: [{ partition_key: 'k', payload: {} }] });
      expect(batch.status).toBe(201);
      expect(batch.body.messages[0].topic_id).toBe(acme.id);
      const hooks = await http.get(`/topics/${ref}/webhooks`);
      expect(hooks.status).toBe(200);
      expect(hooks.body).toHaveLength(1);
    }
    const sequences = await db.pool.query(
      `SELECT sequence::int FROM messages WHERE topic_id = $1 ORDER BY sequence`,
      [acme.id],
    );
    expect(sequences.rows.map((r) => r.sequence)).toEqual([1, 2, 3, 4]);
    for (const path of ['messages', 'messages/batch', 'webhooks']) {
      const method = path === 'webhooks' ? 'get' : 'post';
      const body =
        path === 'messages'
          ? { partition_key: 'k', payload: {} }
          : { messages: [{ partition_key: 'k', payload: {} }] };
      expectErrorResponse(
        await http[method](`/topics/nope/${path}`).send(body),
        404,
        /topic "nope"/,
      );
      expectErrorResponse(
        await http[method](`/topics/424242/${path}`).send(body),
        404,
        /topic 424242/,
      );
    }
  });

  it('reads a segment of digits as an id, even where SQL created a topic named so', async () => {
    const { rows } = await db.pool.query<{ id: number }>(
      `INSERT INTO topics (name) VALUES ($1) RETURNING id`,
      [String(acme.id)],
    );
    const byDigits = await http.get(`/topics/${acme.id}`);
    expect(byDigits.body.name).toBe('acme.orders');
    const sqlMade = await http.get(`/topics/${rows[0].id}`);
    expect(sqlMade.body.name).toBe(String(acme.id));
    const byQuery = await http.get(`/messages?topic=${acme.id}`);
    expect(byQuery.status).toBe(200);
    expect(byQuery.body).toEqual([]);
  });

  describe('with 100,000 topics', () => {
    beforeAll(async () => {
      await db.pool.query(
        `INSERT INTO topics (name) SELECT 'tenant-' || g FROM generate_series(1, 100000) g`,
      );
      await db.pool.query('ANALYZE topics');
    });

    it('pages through all of them in id order', async () => {
      let after = 0;
      let seen = 0;
      let pages = 0;
      for (;;) {
        const res = await http.get(`/topics?limit=1000&after=${after}`);
        expect(res.status).toBe(200);
        if (res.body.length === 0) break;
        const ids = res.body.map((t: { id: number }) => t.id);
        expect(ids).toEqual([...ids].sort((a, b) => a - b));
        expect(ids[0]).toBeGreaterThan(after);
        seen += ids.length;
        after = ids[ids.length - 1];
        pages += 1;
      }
      const { rows } = await db.pool.query('SELECT count(*)::int AS n FROM topics');
      expect(seen).toBe(rows[0].n);
      expect(pages).toBeGreaterThanOrEqual(100);
    });

    it('finds one by name, and by prefix, on indexes', async () => {
      const one = await http.get('/topics/tenant-77777');
      expect(one.body.name).toBe('tenant-77777');
      const published = await http
        .post('/topics/tenant-77777/messages')
        .send({ partition_key: 'k', payload: {}, event_type: 'order.created' });
      expect(published.status).toBe(201);

      const prefixed = await http.get('/topics?name_prefix=tenant-7777&limit=20');
      expect(prefixed.body.map((t: { name: string }) => t.name).sort()).toEqual(
        ['tenant-7777', ...Array.from({ length: 10 }, (_, i) => `tenant-7777${i}`)].sort(),
      );
      // "_" and "%" are taken literally.
      expect((await http.get('/topics?name_prefix=tenant_7')).body).toEqual([]);
      expectErrorResponse(await http.get('/topics?name_prefix=a%25'), 400, /name_prefix/);

      const plan = async (sql: string, value: string) =>
        (await db.pool.query(`EXPLAIN ${sql}`, [value])).rows
          .map((r) => r['QUERY PLAN'])
          .join('\n');
      expect(await plan('SELECT t.id FROM topics t WHERE t.name = $1', 'tenant-5')).toMatch(
        /Index Scan using topics_name_(key|pattern_idx)/,
      );
      expect(
        await plan(
          `SELECT t.id FROM topics t WHERE t.id > 0 AND t.name LIKE $1 ESCAPE '\\' ORDER BY t.id LIMIT 20`,
          'tenant-7777%',
        ),
      ).toMatch(/topics_name_pattern_idx/);
    });
  });
});

import type { NestExpressApplication } from '@nestjs/platform-express';
import fc from 'fast-check';
import request from 'supertest';
import { createTestApp } from './helpers/app.js';
import { createTestDatabase, TestDatabase } from './helpers/db.js';
import { createTopic, createWebhook, insertMessage } from './helpers/factories.js';

/**
 * Hostile input at every route (DESIGN §5: bad input gets a clear 4xx and changes nothing):
 * random and malformed JSON, wrong types, huge numbers, unicode, NUL bytes, deep nesting, SQL and
 * path fragments. Every answer must be a 4xx in the error shape or a success in the documented
 * shape, never a 5xx, and a refused request must leave every table as it was.
 */
describe('hostile input', () => {
  let db: TestDatabase;
  let app: NestExpressApplication;
  let seed: { topicId: number; topicName: string; webhookId: number };

  beforeAll(async () => {
    db = await createTestDatabase();
    app = await createTestApp(db.url, { MAX_PAYLOAD_BYTES: '65536' });
    const topic = await createTopic(db.pool, 'seed');
    const webhook = await createWebhook(db.pool, topic.id, 'https://93.184.215.14/hook');
    await insertMessage(db.pool, topic.id, 'k', { n: 1 });
    seed = { topicId: topic.id, topicName: topic.name, webhookId: webhook.id };
  });
  afterAll(async () => {
    await app?.close();
    await db?.drop();
  });

  /** Every row of every table, as one digest: a refused request must not change it. */
  async function checksum(): Promise<string> {
    const tables = ['topics', 'webhooks', 'messages', 'deliveries', 'delivery_attempts'];
    const parts = await Promise.all(
      tables.map(async (t) => {
        const { rows } = await db.pool.query(
          `SELECT count(*) AS n, md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) AS h
           FROM ${t} x`,
        );
        return `${t}:${rows[0].n}:${rows[0].h}`;
      }),
    );
    return parts.join(' ');
  }

  const nasty = [
    "'; DROP TABLE topics; --",
    "1' OR '1'='1",
    '1; SELECT pg_sleep(10)',
    '$1',
    '../../etc/passwd',
    '..%2f..%2fhealth',
    '%00',
    '\u0000',
    'a\u0000b',
    '\uD800',
    '\uFEFF',
    '１２３',
    '𝔘𝔫𝔦𝔠𝔬𝔡𝔢',
    '<script>alert(1)</script>',
    '${jndi:ldap://x}',
    '__proto__',
    'constructor',
    '9'.repeat(400),
    '-1',
    '0',
    '0x10',
    '1e3',
    ' 7',
    'NaN',
    'Infinity',
    '2147483648',
    '9007199254740993',
    '',
    ' ',
  ];
  const hostileString = fc.oneof(
    fc.constantFrom(...nasty),
    fc.string({ maxLength: 40 }),
    fc.string({ unit: 'grapheme', maxLength: 20 }),
    fc.string({ unit: 'binary', maxLength: 20 }),
  );
  const hugeNumber = fc.constantFrom(
    1e308,
    -1e308,
    2 ** 53 + 2,
    -(2 ** 31) - 1,
    2 ** 31,
    -0,
    0.5,
    Number.MAX_SAFE_INTEGER,
    Number.MIN_VALUE,
  );
  /** Deep nesting as JSON text (fast-check could not print a deep object counterexample). */
  const deepText = fc
    .tuple(fc.integer({ min: 50, max: 5000 }), fc.boolean(), fc.boolean())
    .map(([depth, arrays, wrapped]) => {
      const inner = arrays
        ? '['.repeat(depth) + '1' + ']'.repeat(depth)
        : '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);
      return wrapped ? `{"partition_key":"k","name":"x","topic_id":1,"payload":${inner}}` : inner;
    });
  const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
    hostileString,
    hugeNumber,
    fc.integer(),
    fc.boolean(),
    fc.constant(null),
    fc.jsonValue({ maxDepth: 3 }),
    fc.array(hostileString, { maxLength: 3 }),
    fc.dictionary(hostileString, hostileString, { maxKeys: 3 }),
  );
  /** Bodies: objects with the real field names holding anything, plus junk. */
  const hostileBody = fc.oneof(
    fc.record(
      {
        name: hostileValue,
        topic_id: hostileValue,
        url: fc.oneof(
          hostileValue,
          hostileString.map((s) => `http://${s}/`),
        ),
        secret: hostileValue,
        partition_key: hostileValue,
        payload: hostileValue,
        extra: hostileValue,
      },
      { requiredKeys: [] },
    ),
    hostileValue,
  );
  /** Raw texts sent as application/json, most of them not JSON at all. */
  const rawBody = fc.oneof(
    fc.constantFrom(
      '{',
      '{"name":',
      '[]',
      'null',
      '"x"',
      '1e999',
      '{"payload":1e999,"partition_key":"k"}',
      '{"partition_key":"k","payload":"\\u0000"}',
      '{"partition_key":"k","payload":{"\\u0000":1}}',
      '{"__proto__":{"admin":true}}',
      '{"name":"a","name":"b"}',
      '\uFEFF{}',
      '['.repeat(10000),
      '{"a":'.repeat(3000) + '1' + '}'.repeat(3000),
      '{"partition_key":"k","payload":' + '['.repeat(3000) + ']'.repeat(3000) + '}',
    ),
    fc.string({ maxLength: 60 }),
    deepText,
  );
  /**
   * Integers of every size as text: 32-bit ones, the whole safe range, and 64- and 128-bit ones,
   * with the boundaries of PostgreSQL's integer and bigint columns (fast-check's integer() alone
   * stays within 32 bits, which is how `after=2147483648` answering 500 went unnoticed).
   */
  const anyInteger = fc
    .oneof(
      fc.integer(),
      fc.maxSafeInteger(),
      fc.bigInt({ min: -(2n ** 64n), max: 2n ** 64n }),
      fc.bigInt({ min: -(2n ** 128n), max: 2n ** 128n }),
      fc
        .constantFrom(2n ** 31n, 2n ** 32n, 2n ** 53n, 2n ** 63n, 2n ** 64n)
        .chain((edge) => fc.constantFrom(edge - 1n, edge, edge + 1n, -edge)),
    )
    .map(String);
  const idLike = fc.oneof(
    fc.constant(''),
    hostileString,
    fc.integer({ min: -5, max: 5 }).map(String),
    anyInteger,
    fc.constantFrom('1', '2', '99999999999', '1.5', '%ZZ', '..', '%2e%2e'),
  );
  const query = fc.dictionary(
    fc.constantFrom('limit', 'after', 'status', 'topic_id', 'webhook_id', 'x'),
    fc.oneof(
      { arbitrary: anyInteger, weight: 3 },
      hostileString,
      fc.array(fc.constant('1'), { maxLength: 2 }),
    ),
    { maxKeys: 3 },
  );

  type Route = { method: 'get' | 'post' | 'delete'; path: (id: string) => string; list?: boolean };
  /** Every UTF-8 byte percent-encoded, except raw fragments such as "%ZZ" and "..". */
  const enc = (s: string) =>
    /^%|^\.\.$/.test(s)
      ? s
      : [...Buffer.from(s, 'utf8')].map((b) => '%' + b.toString(16).padStart(2, '0')).join('');
  const routes: Route[] = [
    { method: 'post', path: () => '/topics' },
    { method: 'get', path: () => '/topics', list: true },
    { method: 'post', path: () => '/webhooks' },
    { method: 'get', path: (id) => `/topics/${enc(id)}/webhooks`, list: true },
    { method: 'delete', path: (id) => `/webhooks/${enc(id)}` },
    { method: 'get', path: (id) => `/webhooks/${enc(id)}/secret` },
    { method: 'post', path: (id) => `/webhooks/${enc(id)}/secret/rotate` },
    { method: 'post', path: (id) => `/topics/${enc(id)}/messages` },
    { method: 'get', path: (id) => `/webhooks/${enc(id)}/deliveries`, list: true },
    { method: 'get', path: (id) => `/deliveries/${enc(id)}/attempts`, list: true },
    { method: 'get', path: () => '/dead-letter', list: true },
    { method: 'get', path: () => '/dead-letter/count' },
    { method: 'get', path: (id) => `/messages/${enc(id)}` },
    { method: 'get', path: () => '/health' },
  ];

  async function send(route: Route, id: string, q: object, body: unknown, raw?: string) {
    let req = request(app.getHttpServer())
      [route.method](route.path(id))
      .query(q as never);
    // Always sent as text: superagent would refuse a bare number or boolean.
    const text = raw ?? (body === undefined ? undefined : JSON.stringify(body));
    if (text !== undefined) req = req.set('content-type', 'application/json').send(text);
    return req;
  }

  function expectSane(res: request.Response, route: Route) {
    const where = `${route.method.toUpperCase()} ${(res as request.Response & { req: { path: string } }).req.path} -> ${res.status} ${res.text.slice(0, 200)}`;
    expect([where, res.status < 500]).toEqual([where, true]);
    if (res.status >= 400) {
      expect(res.body).toEqual({
        status_code: res.status,
        error: expect.any(String),
        message: expect.any(String),
      });
    } else if (route.list) {
      expect(Array.isArray(res.body)).toBe(true);
    } else if (res.status !== 204) {
      expect(typeof res.body).toBe('object');
    }
  }

  it('answers every route with a 4xx or a documented success, and a 4xx changes nothing', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...routes),
        fc.oneof(idLike, fc.constant('1')),
        query,
        fc.oneof(
          hostileBody.map((body) => ({ body, raw: undefined })),
          rawBody.map((raw) => ({ body: undefined, raw })),
        ),
        async (route, id, q, { body, raw }) => {
          const before = await checksum();
          const res = await send(route, id, q, body, raw);
          expectSane(res, route);
          if (res.status >= 400) expect(await checksum()).toBe(before);
        },
      ),
      { numRuns: 400 },
    );
  });

  it('answers every list with a 2xx or a 4xx, whatever integers its cursor and page size get', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...routes.filter((r) => r.list)),
        fc.oneof(anyInteger, fc.constant('1')),
        fc.record(
          {
            after: anyInteger,
            limit: fc.oneof(fc.integer({ min: 1, max: 1000 }).map(String), anyInteger),
          },
          { requiredKeys: ['after'] },
        ),
        async (route, id, q) => expectSane(await send(route, id, q, undefined), route),
      ),
      { numRuns: 300 },
    );
  });

  it('bounds list cursors to their id columns: after past 2^31 on an integer id is a 400', async () => {
    for (const path of ['/topics', `/topics/${seed.topicId}/webhooks`]) {
      for (const after of ['2147483648', '9007199254740991', '99999999999999999999']) {
        const res = await request(app.getHttpServer()).get(`${path}?after=${after}`);
        expect([path, after, res.status]).toEqual([path, after, 400]);
        expect(res.body.message).toMatch(/after/);
      }
      await request(app.getHttpServer()).get(`${path}?after=2147483647`).expect(200, []);
    }
  });

  it('answers deep nesting and NUL bytes with a 400, at the publish route', async () => {
    const publish = (body: unknown, text = JSON.stringify(body)) =>
      request(app.getHttpServer())
        .post(`/topics/${seed.topicName}/messages`)
        .set('content-type', 'application/json')
        .send(text);
    const deepPayload = '['.repeat(5000) + ']'.repeat(5000);
    for (const text of [
      `{"partition_key":"k","payload":${deepPayload}}`,
      `{"partition_key":"k","payload":${'{"a":'.repeat(65)}1${'}'.repeat(65)}}`,
      JSON.stringify({ partition_key: 'k', payload: 'a\u0000b' }),
      JSON.stringify({ partition_key: 'k', payload: { 'k\u0000': 1 } }),
    ]) {
      const before = await checksum();
      const res = await publish(undefined, text);
      expect([text.slice(0, 60), res.status]).toEqual([text.slice(0, 60), 400]);
      expect(await checksum()).toBe(before);
    }
    // Nesting within the limit is stored as sent.
    let ok: unknown = 1;
    for (let i = 0; i < 30; i++) ok = { a: ok };
    await publish({ partition_key: 'k', payload: ok }).expect(201);
  });
});

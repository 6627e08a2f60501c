import type { NestExpressApplication } from '@nestjs/platform-express';
import request from 'supertest';
import { createTestApp, expectErrorResponse } from './helpers/app.js';
import { createTestDatabase, TestDatabase } from './helpers/db.js';
import { createTopic, createWebhook } from './helpers/factories.js';
import { scanJson } from '../src/common/json-scan.js';

const LIMIT = 65536;

/**
 * Requests built to cost the server far more than they cost the client: payloads that print to
 * far more than they are sent as (an exponent bomb), a batch of millions of items, bodies in
 * another charset, partition keys PostgreSQL refuses, and the OpenAPI page in a frame.
 */
describe('security: hostile requests', () => {
  let db: TestDatabase;
  let app: NestExpressApplication;
  let topic: { id: number; name: string };
  let webhookId: number;

  beforeAll(async () => {
    db = await createTestDatabase();
    app = await createTestApp(db.url, { MAX_PAYLOAD_BYTES: String(LIMIT) });
    topic = await createTopic(db.pool, 'hostile');
    webhookId = (await createWebhook(db.pool, topic.id)).id;
  });
  afterAll(async () => {
    await app?.close();
    await db?.drop();
  });

  const http = () => request(app.getHttpServer());
  const post = (path: string, text: string, type = 'application/json') =>
    http().post(path).set('content-type', type).send(text);
  const messageCount = async () =>
    Number((await db.pool.query(`SELECT count(*) AS n FROM messages`)).rows[0].n);

  describe('payloads are measured as PostgreSQL prints them', () => {
    const samples = [
      '1e131071',
      '[1e60000, -2.5e-3, 0e-16383, -0e-3, 0.00e2, 1.50e1, 12.5e-1, 123e-5, -5e2, -0, 0, 7]',
      '{"a": "\\u00e9\\/\\u0001\\"x\\n", "b": [], "c": {}, "d": [true, false, null]}',
      '"\\ud83d\\ude00 é 😀 \\u001f \\u007f \\u0022 \\u005c \\u000a"',
      '{"k":1,"l":[1,[2,[3]]],"m":{"n":{"o":"p"}}}',
      '123456789012345678901234567890.000100e-10',
      '  [ 1 ,\n 2 ]  ',
    ];
    it('counts the bytes of payload::text, exactly, for numbers, strings and containers', async () => {
      for (const text of samples) {
        const { rows } = await db.pool.query(`SELECT octet_length($1::jsonb::text) AS n`, [text]);
        const scanned = scanJson(text, { maxDepth: 64, keepDepth: 0 });
        expect([text.slice(0, 40), scanned.printedBytes]).toEqual([text.slice(0, 40), rows[0].n]);
      }
    });

    it('refuses a payload that prints over MAX_PAYLOAD_BYTES with a 413, and stores nothing', async () => {
      const before = await messageCount();
      const bomb = `[${Array(10).fill('1e131071').join(',')}]`;
      const res = await post(
        `/topics/${topic.name}/messages`,
        `{"partition_key":"k","payload":${bomb}}`,
      );
      expectErrorResponse(res, 413, /prints to 1310\d+ bytes.*MAX_PAYLOAD_BYTES=65536/);
      // A zero with a huge scale prints every one of its zeros too.
      const zeros = `[${Array(5).fill('0e-16383').join(',')}]`;
      const single = await post(
        `/topics/${topic.name}/messages`,
        `{"partition_key":"k","payload":${zeros}}`,
      );
      expectErrorResponse(single, 413, /prints to 819\d\d bytes/);
      const batch = await post(
        `/topics/${topic.name}/messages/batch`,
        `{"messages":[{"partition_key":"k","payload":1},{"partition_key":"k","payload":${bomb}}]}`,
      );
      expectErrorResponse(batch, 413, /^messages\[1\]\.payload prints to/);
      expect(await messageCount()).toBe(before);
      // Just under the limit as printed: stored, and printed as promised.
      const fits = await post(
        `/topics/${topic.name}/messages`,
        '{"partition_key":"k","payload":[1e65530]}',
      ).expect(201);
      const { rows } = await db.pool.query(
        `SELECT octet_length(payload::text) AS n FROM messages WHERE id = $1`,
        [fits.body.id],
      );
      expect(rows[0].n).toBe(65533);
    });
  });

  it('stops reading a batch at its 1,001st item, without building the rest', async () => {
    // 8,000,015 bytes: within the batch body limit (8 MiB), so only the item count refuses it.
    const items = 4_000_000;
    const body = `{"messages":[${Array(items).fill('1').join(',')}]}`;
    const res = await post(`/topics/${topic.name}/messages/batch`, body);
    expectErrorResponse(res, 400, /messages must be an array of 1 to 1000 messages \(got more\)/);
    // The scanner gives up at the item after the limit: its position, not the body's end.
    expect(() => scanJson(body, { maxDepth: 64, keepDepth: 3, maxKeptItems: 1000 })).toThrow(
      /more than 1000 items at position 2013\b/,
    );
  });

  it('answers a partition key PostgreSQL would refuse with a 400 on every route that takes one', async () => {
    for (const key of ['%00', '%20', 'a%0Ab', 'x'.repeat(256), '%C3%A9']) {
      const res = await http().post(`/webhooks/${webhookId}/lines/${key}/skip`);
      expect([key.slice(0, 20), res.status]).toEqual([key.slice(0, 20), 400]);
      expectErrorResponse(res, 400, /partition_key must be 1-255 printable ASCII/);
    }
    // A valid key reaches the route: no such blocked line.
    expect((await http().post(`/webhooks/${webhookId}/lines/user-1/skip`)).status).not.toBe(400);
  });

  it('takes request bodies in UTF-8 only: any other charset is a 415 before the body is read', async () => {
    const before = await messageCount();
    const text = '{"partition_key":"k","payload":"+ADw-script+AD4-"}';
    for (const charset of ['utf-7', 'UTF-16LE', 'latin1', 'iso-8859-1', '"utf-7"']) {
      const res = await post(
        `/topics/${topic.name}/messages`,
        text,
        `application/json; charset=${charset}`,
      );
      expectErrorResponse(res, 415, /UTF-8/);
    }
    await post('/topics', '{"name":"x"}', 'application/json; charset=utf-7').expect(415);
    expect(await messageCount()).toBe(before);
    for (const type of ['application/json; charset=utf-8', 'application/json;charset="UTF-8"']) {
      await post(`/topics/${topic.name}/messages`, text, type).expect(201);
    }
  });

  it('serves /docs unframeable and without keeping the key, and every answer with nosniff', async () => {
    for (const path of ['/docs', '/docs/swagger-ui-init.js', '/topics', '/nope']) {
      const res = await http().get(path);
      expect([path, res.headers['x-frame-options']]).toEqual([path, 'DENY']);
      expect([path, res.headers['x-content-type-options']]).toEqual([path, 'nosniff']);
      expect([path, res.headers['content-security-policy']]).toEqual([
        path,
        expect.stringContaining("frame-ancestors 'none'"),
      ]);
    }
    const init = await http().get('/docs/swagger-ui-init.js').expect(200);
    expect(init.text).toMatch(/"persistAuthorization": false/);
  });
});

import type { NestExpressApplication } from '@nestjs/platform-express';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { createTestApp } from './helpers/app.js';
import { createTestDatabase, TestDatabase } from './helpers/db.js';
import { createTopic, createWebhook } from './helpers/factories.js';

const KEY_A = 'key-a-0123456789abcdef';
const KEY_B = 'key-b-fedcba9876543210';
const SECRET = 'whsec_' + Buffer.alloc(32, 1).toString('base64');

describe('security: exposing the API', () => {
  let db: TestDatabase;
  let guarded: NestExpressApplication; // API_KEYS set, private networks refused (production)
  let open: NestExpressApplication; // no API_KEYS, private networks allowed (npm start)

  beforeAll(async () => {
    db = await createTestDatabase();
    guarded = await createTestApp(db.url, {
      API_KEYS: `${KEY_A}, ${KEY_B}`,
      MAX_PAYLOAD_BYTES: '1024',
      WEBHOOK_SECRET_GRACE_SECONDS: '600',
    });
    open = await createTestApp(db.url, { WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true' });
  });
  afterAll(async () => {
    await guarded?.close();
    await open?.close();
    await db?.drop();
  });

  const api = () => request(guarded.getHttpServer());
  const auth = { Authorization: `Bearer ${KEY_A}` };

  describe('API keys', () => {
    it('refuses a request without a key or with a wrong one: 401 in the usual shape', async () => {
      for (const header of [undefined, 'Bearer nope-nope-nope-nope', `Basic ${KEY_A}`, 'Bearer']) {
        const req = api().get('/topics');
        if (header) req.set('Authorization', header);
        const res = await req.expect(401);
        expect(res.body).toEqual({
          status_code: 401,
          error: 'Unauthorized',
          message: expect.stringMatching(/API key/),
        });
        expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
      }
      // A key that is a prefix of, or longer than, a real one is just as wrong.
      await api()
        .get('/topics')
        .set('Authorization', `Bearer ${KEY_A.slice(0, -1)}`)
        .expect(401);
      await api().get('/topics').set('Authorization', `Bearer ${KEY_A}x`).expect(401);
    });

    it('accepts any configured key, with the scheme in any case', async () => {
      await api().get('/topics').set(auth).expect(200);
      await api().get('/topics').set('Authorization', `bearer ${KEY_B}`).expect(200);
    });

    it('guards a refused request before it changes anything', async () => {
      await api().post('/topics').send({ name: 'not-created' }).expect(401);
      const { rows } = await db.pool.query("SELECT 1 FROM topics WHERE name = 'not-created'");
      expect(rows).toHaveLength(0);
    });

    it('leaves /health, /docs and /docs-json open', async () => {
      await api().get('/health').expect(200, { status: 'ok' });
      await api().get('/docs-json').expect(200);
      const docs = await api().get('/docs/').redirects(1);
      expect(docs.status).toBe(200);
      expect(docs.text).toMatch(/swagger/i);
    });

    it('declares the bearer scheme in the OpenAPI document, on every route but /health', async () => {
      const { body: doc } = await api().get('/docs-json').expect(200);
      expect(doc.components.securitySchemes['api-key']).toMatchObject({
        type: 'http',
        scheme: 'bearer',
      });
      expect(doc.paths['/health'].get.security).toEqual([]);
      const operations = Object.entries(doc.paths).flatMap(([path, item]) =>
        Object.entries(item as Record<string, { security?: unknown; responses: object }>).map(
          ([method, op]) => ({ path, method, op }),
        ),
      );
      expect(operations.length).toBeGreaterThan(10);
      for (const { path, op } of operations.filter((o) => o.path !== '/health')) {
        expect([path, op.security]).toEqual([path, [{ 'api-key': [] }]]);
        expect(op.responses).toHaveProperty('401');
      }
    });

    it('is open when API_KEYS is unset', async () => {
      await request(open.getHttpServer()).get('/topics').expect(200);
    });
  });

  describe('SSRF guard at registration', () => {
    let topicId: number;
    beforeAll(async () => {
      topicId = (await createTopic(db.pool)).id;
    });
    const register = (url: string, app = guarded) =>
      request(app.getHttpServer()).post('/webhooks').set(auth).send({ topic_id: topicId, url });

    it.each([
      ['http://localhost:8080/hook', 'loopback'],
      ['http://127.0.0.1/', 'loopback'],
      ['http://127.1/', 'loopback'],
      ['http://2130706433/', 'loopback'], // decimal
      ['http://0177.0.0.1/', 'loopback'], // octal
      ['http://0x7f.1/', 'loopback'], // hex, short
      ['http://0x7f000001/', 'loopback'],
      ['https://[::1]/', 'loopback'],
      ['http://[::ffff:127.0.0.1]/', 'loopback'],
      ['http://[::ffff:7f00:1]/', 'loopback'],
      ['http://[64:ff9b::7f00:1]/', 'loopback'], // NAT64
      ['http://[2002:7f00:1::]/', 'loopback'], // 6to4
      ['http://10.0.0.1/', 'private'],
      ['http://10.1/', 'private'],
      ['http://172.16.5.4/', 'private'],
      ['http://192.168.0.1:3000/', 'private'],
      ['http://169.254.169.254/latest/meta-data/', 'cloud metadata'],
      ['http://[::ffff:169.254.169.254]/', 'cloud metadata'],
      ['http://169.254.1.1/', 'link-local'],
      ['http://[fe80::1]/', 'link-local'],
      ['http://[fd00::1]/', 'unique-local'],
      ['http://224.0.0.1/', 'multicast'],
      ['http://[ff02::1]/', 'multicast'],
      ['http://0.0.0.0/', 'unspecified'],
      ['http://0/', 'unspecified'],
      ['http://[::]/', 'unspecified'],
      ['http://255.255.255.255/', 'broadcast'],
      ['http://240.0.0.1/', 'reserved'],
      ['http://100.64.0.1/', 'shared \\(CGNAT\\)'],
    ])('refuses %s (%s)', async (url, kind) => {
      const res = await register(url).expect(400);
      expect(res.body.message).toMatch(
        new RegExp(
          `^refused: webhook host resolves to an? ${kind} address \\S+ \\(WEBHOOK_ALLOW_PRIVATE_NETWORKS=false\\)$`,
        ),
      );
    });

    it.each(
      [
        ['ftp://example.com/', /http or https/],
        ['file:///etc/passwd', /http or https/],
        ['gopher://127.0.0.1:6379/_INFO', /http or https/],
        ['javascript:alert(1)', /http or https/],
        ['/relative/path', /absolute/],
        ['http://user:pass@example.com/', /user name or password/],
        ['http://user@example.com/', /user name or password/],
        ['http://example.com/a b', /spaces or control/],
        ['http://example.com/\u0000', /spaces or control/],
        [`https://example.com/${'a'.repeat(2048)}`, /2048/],
      ].map(([url, why]) => [url.slice(0, 60), url, why] as const),
    )('refuses %s', async (_label, url, why) => {
      const res = await register(url).expect(400);
      expect(res.body.message).toMatch(why);
    });

    it('accepts a public address, and private ones when WEBHOOK_ALLOW_PRIVATE_NETWORKS=true', async () => {
      await register('https://93.184.215.14/hook').expect(201);
      await register('https://[2606:4700:4700::1111]/hook').expect(201);
      await register('http://no-such-host.invalid/', guarded).expect(201); // checked when sent
      await register('http://localhost:9/hook', open).expect(201);
      await register('http://169.254.169.254/', open).expect(201);
    });
  });

  describe('secrets', () => {
    let topicId: number;
    beforeAll(async () => {
      topicId = (await createTopic(db.pool)).id;
    });

    it('generates whsec_ + base64 of 32 random bytes, shown on creation and at /secret only', async () => {
      const created = await api()
        .post('/webhooks')
        .set(auth)
        .send({ topic_id: topicId, url: 'https://93.184.215.14/a' })
        .expect(201);
      expect(created.body.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
      expect(Buffer.from(created.body.secret.slice(6), 'base64')).toHaveLength(32);
      const other = await api()
        .post('/webhooks')
        .set(auth)
        .send({ topic_id: topicId, url: 'https://93.184.215.14/b' })
        .expect(201);
      expect(other.body.secret).not.toBe(created.body.secret);

      const list = await api().get(`/topics/${topicId}/webhooks`).set(auth).expect(200);
      expect(list.body).toHaveLength(2);
      expect(JSON.stringify(list.body)).not.toMatch(/whsec_|secret/);
      const shown = await api().get(`/webhooks/${created.body.id}/secret`).set(auth).expect(200);
      expect(shown.body).toEqual({ secret: created.body.secret });
    });

    it('takes a valid secret of the user, and refuses a bad one with a 400', async () => {
      const res = await api()
        .post('/webhooks')
        .set(auth)
        .send({ topic_id: topicId, url: 'https://93.184.215.14/c', secret: SECRET })
        .expect(201);
      expect(res.body.secret).toBe(SECRET);
      for (const secret of [
        '',
        'whsec_',
        'hunter2',
        Buffer.alloc(32).toString('base64'), // no prefix
        'whsec_' + Buffer.alloc(23, 1).toString('base64'), // too short
        'whsec_' + Buffer.alloc(65, 1).toString('base64'), // too long
        'whsec_' + '!'.repeat(44),
        'whsec_' + Buffer.alloc(32, 1).toString('base64') + '\u0000',
        42,
      ]) {
        const bad = await api()
          .post('/webhooks')
          .set(auth)
          .send({ topic_id: topicId, url: 'https://93.184.215.14/d', secret })
          .expect(400);
        expect(bad.body.message).toMatch(/secret/);
      }
    });

    it('rotates: a new secret, the old one kept for the grace period', async () => {
      const webhook = await createWebhook(db.pool, topicId, 'https://93.184.215.14/e', SECRET);
      const res = await api().post(`/webhooks/${webhook.id}/secret/rotate`).set(auth).expect(200);
      expect(res.body.secret).toMatch(/^whsec_/);
      expect(res.body.secret).not.toBe(SECRET);
      const { rows } = await db.pool.query(
        `SELECT secret, previous_secret,
                extract(epoch FROM previous_secret_expires_at - now())::int AS left_s
         FROM webhooks WHERE id = $1`,
        [webhook.id],
      );
      expect(rows[0]).toMatchObject({ secret: res.body.secret, previous_secret: SECRET });
      expect(rows[0].left_s).toBeGreaterThan(590);
      expect(rows[0].left_s).toBeLessThanOrEqual(600);
      await api().get(`/webhooks/${webhook.id}/secret`).set(auth).expect(200, res.body);
      await api().post('/webhooks/999999/secret/rotate').set(auth).expect(404);
    });
  });

  describe('limits', () => {
    let topic: { id: number; name: string };
    beforeAll(async () => {
      topic = await createTopic(db.pool);
    });

    async function messageCount() {
      const { rows } = await db.pool.query('SELECT count(*)::int AS n FROM messages');
      return rows[0].n as number;
    }

    it('refuses a payload over MAX_PAYLOAD_BYTES with 413 and says the limit', async () => {
      const res = await api()
        .post(`/topics/${topic.name}/messages`)
        .set(auth)
        .send({ partition_key: 'k', payload: 'x'.repeat(1100) })
        .expect(413);
      expect(res.body.message).toMatch(/MAX_PAYLOAD_BYTES=1024/);
      expect(await messageCount()).toBe(0);
    });

    /** Sends raw requests, so the test controls Content-Length and streaming. */
    function rawPost(
      headers: Record<string, string | number>,
      send: (req: http.ClientRequest) => void,
    ): Promise<{ status: number; body: string; sent: number }> {
      const server = guarded.getHttpServer() as http.Server;
      if (!server.listening) server.listen(0, '127.0.0.1');
      return new Promise((resolve, reject) => {
        const go = () => {
          const { port } = server.address() as AddressInfo;
          let sent = 0;
          const req = http.request(
            {
              host: '127.0.0.1',
              port,
              method: 'POST',
              path: `/topics/${topic.name}/messages`,
              headers: { 'content-type': 'application/json', ...auth, ...headers },
            },
            (res) => {
              let body = '';
              res.on('data', (c) => (body += c));
              res.on('end', () => {
                resolve({ status: res.statusCode!, body, sent });
                req.destroy();
              });
            },
          );
          req.on('error', () => undefined); // the server may close while we still write
          const write = req.write.bind(req);
          req.write = ((chunk: Buffer) => {
            sent += chunk.length;
            return write(chunk);
          }) as typeof req.write;
          send(req);
        };
        if (server.listening) go();
        else server.once('listening', go).once('error', reject);
      });
    }

    it('refuses a Content-Length over the limit before reading the body', async () => {
      // Headers only: the server must answer without waiting for a byte of the body.
      const res = await rawPost({ 'content-length': 50 * 1024 * 1024 }, (req) =>
        req.flushHeaders(),
      );
      expect(res.status).toBe(413);
      expect(JSON.parse(res.body)).toEqual({
        status_code: 413,
        error: 'Payload Too Large',
        message: expect.stringMatching(/^request body is too large/),
      });
    });

    it('stops a streamed (chunked) body as soon as it passes the limit', async () => {
      const chunk = Buffer.from('{"partition_key":"k","payload":"' + 'x'.repeat(8192));
      const res = await rawPost({ 'transfer-encoding': 'chunked' }, (req) => {
        // 64 MiB would be sent if the server read it all; it answers long before.
        let left = 8192;
        const pump = () => {
          while (!req.destroyed && left-- > 0) {
            if (!req.write(chunk)) return void req.once('drain', pump);
          }
          if (!req.destroyed) req.end();
        };
        pump();
      });
      expect(res.status).toBe(413);
      expect(res.sent).toBeLessThan(4 * 1024 * 1024);
      expect(await messageCount()).toBe(0);
    });

    it('documents and enforces the partition key and URL limits', async () => {
      await api()
        .post(`/topics/${topic.name}/messages`)
        .set(auth)
        .send({ partition_key: 'k'.repeat(256), payload: 1 })
        .expect(400);
      await api()
        .post(`/topics/${topic.name}/messages`)
        .set(auth)
        .send({ partition_key: 'k'.repeat(255), payload: 1 })
        .expect(201);
      const { body: doc } = await api().get('/docs-json').expect(200);
      const schemas = doc.components.schemas;
      expect(schemas.PublishMessageDto.properties.partition_key).toMatchObject({
        pattern: expect.any(String),
        maxLength: 255,
      });
      expect(schemas.CreateTopicDto.properties.name.pattern).toBeDefined();
      expect(schemas.CreateWebhookDto.properties.url.maxLength).toBe(2048);
    });
  });
});

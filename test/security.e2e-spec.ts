import type { NestExpressApplication } from '@nestjs/platform-express';
import { jest } from '@jest/globals';
import { Logger } from '@nestjs/common';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { createTestApp } from './helpers/app.js';
import { createTestDatabase, SCHEMA_ENV, TestDatabase } from './helpers/db.js';
import { createTopic, createWebhook } from './helpers/factories.js';

const KEY_A = 'key-a-0123456789abcdefghijklmnopqrs';
const KEY_B = 'key-b-fedcba9876543210ZYXWVUTSRQPO';
const SECRET = 'whsec_' + randomBytes(32).toString('base64');

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
    open = await createTestApp(db.url, {
      WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true',
      MAX_WEBHOOKS_PER_TOPIC: '5',
    });
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
    ])('refuses %s (%s), telling the caller only that it is not public', async (url, kind) => {
      const warn = jest.spyOn(Logger.prototype, 'warn');
      try {
        const res = await register(url).expect(400);
        expect(res.body.message).toBe(
          'refused: webhook host is not a public address (WEBHOOK_ALLOW_PRIVATE_NETWORKS=false)',
        );
        // The detail (what the host resolves to) goes to the log only.
        const logged = warn.mock.calls.map((c) => String(c[0])).join('\n');
        expect(logged).toMatch(new RegExp(`resolves to an? ${kind} address`));
      } finally {
        warn.mockRestore();
      }
    });

    it.each(
      (
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
        ] as [string, RegExp][]
      ).map(([url, why]) => [url.slice(0, 60), url, why] as const),
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
        // Weak: the OpenAPI (Standard Webhooks) example, all zeros, a short pattern repeated.
        'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
        'whsec_' + Buffer.alloc(32).toString('base64'),
        'whsec_' + Buffer.alloc(32, 7).toString('base64'),
        'whsec_' + Buffer.from('password'.repeat(4)).toString('base64'),
        'whsec_' + Buffer.from(Array.from({ length: 32 }, (_, i) => i % 12)).toString('base64'),
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

    it('rotates under concurrency: every rotation answers 200, and they chain', async () => {
      const webhook = await createWebhook(db.pool, topicId, 'https://93.184.215.14/f', SECRET);
      const results = await Promise.all(
        Array.from({ length: 20 }, () =>
          api().post(`/webhooks/${webhook.id}/secret/rotate`).set(auth),
        ),
      );
      expect(results.map((r) => r.status)).toEqual(Array(20).fill(200));
      const secrets = new Set(results.map((r) => r.body.secret as string));
      expect(secrets.size).toBe(20);
      const { rows } = await db.pool.query(
        'SELECT secret, previous_secret FROM webhooks WHERE id = $1',
        [webhook.id],
      );
      // The last rotation's secret signs, beside the one the rotation before it set.
      expect(secrets.has(rows[0].secret)).toBe(true);
      expect(secrets.has(rows[0].previous_secret)).toBe(true);
    });
  });

  describe('fan-out', () => {
    it('refuses a second registration of the same URL on a topic, however many race', async () => {
      const topic = await createTopic(db.pool);
      const url = 'https://93.184.215.14/same';
      const results = await Promise.all(
        Array.from({ length: 20 }, () =>
          api().post('/webhooks').set(auth).send({ topic_id: topic.id, url }),
        ),
      );
      expect(results.filter((r) => r.status === 201)).toHaveLength(1);
      const refused = results.filter((r) => r.status !== 201);
      expect(refused.map((r) => r.status)).toEqual(Array(19).fill(409));
      expect(refused[0].body.message).toMatch(/already has a webhook for this URL/);
      // Another spelling of the same URL is the same receiver.
      await api()
        .post('/webhooks')
        .set(auth)
        .send({ topic_id: topic.id, url: 'HTTPS://93.184.215.14:443/same' })
        .expect(409);
      // Another topic may have it.
      const other = await createTopic(db.pool);
      await api().post('/webhooks').set(auth).send({ topic_id: other.id, url }).expect(201);
    });

    it('caps the webhooks of a topic at MAX_WEBHOOKS_PER_TOPIC, however many race', async () => {
      const topic = await createTopic(db.pool);
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          request(open.getHttpServer())
            .post('/webhooks')
            .send({ topic_id: topic.id, url: `https://93.184.215.14/${i}` }),
        ),
      );
      expect(results.filter((r) => r.status === 201)).toHaveLength(5);
      const refused = results.filter((r) => r.status !== 201);
      expect(refused.map((r) => r.status)).toEqual(Array(15).fill(409));
      expect(refused[0].body.message).toMatch(/MAX_WEBHOOKS_PER_TOPIC=5/);
      const { rows } = await db.pool.query(
        'SELECT count(*)::int AS n FROM webhooks WHERE topic_id = $1',
        [topic.id],
      );
      expect(rows[0].n).toBe(5);
    });
  });

  describe('browsers and hosts', () => {
    const openApi = () => request(open.getHttpServer());
    let webhookId: number;
    beforeAll(async () => {
      const topic = await createTopic(db.pool);
      webhookId = (await createWebhook(db.pool, topic.id, 'https://93.184.215.14/csrf', SECRET)).id;
    });
    const secretNow = async () =>
      (await db.pool.query('SELECT secret FROM webhooks WHERE id = $1', [webhookId])).rows[0]
        .secret as string;

    it('refuses what an HTML form on another site could send: form and text bodies, cross-site requests', async () => {
      const rotate = () => openApi().post(`/webhooks/${webhookId}/secret/rotate`);
      // A form with no fields still sends its content type.
      for (const type of [
        'application/x-www-form-urlencoded',
        'multipart/form-data; boundary=x',
        'text/plain',
      ]) {
        const res = await rotate().set('content-type', type);
        expect([type, res.status]).toEqual([type, 415]);
      }
      await rotate().set('content-type', 'text/plain').send('{"x":1}').expect(415);
      await openApi()
        .post('/topics')
        .set('content-type', 'application/x-www-form-urlencoded')
        .send('name=from-a-form')
        .expect(415);
      // A cross-site fetch, as a browser marks it (Sec-Fetch-Site), or by its Origin.
      await rotate().set('sec-fetch-site', 'cross-site').expect(403);
      await rotate().set('origin', 'https://evil.example').expect(403);
      expect(await secretNow()).toBe(SECRET);
      // What a script or curl sends is fine: no content type, or JSON.
      await rotate().expect(200);
      await rotate().set('content-type', 'application/json').expect(200);
      await openApi().post('/topics').send({ name: 'from-json' }).expect(201);
    });

    it('answers an open API only under a name a web page cannot re-point (DNS rebinding)', async () => {
      for (const host of ['evil.example', 'evil.example:8000', 'attacker.com.']) {
        const res = await openApi().get('/topics').set('host', host);
        expect([host, res.status]).toEqual([host, 403]);
        expect(res.body.message).toMatch(/set API_KEYS/);
      }
      for (const host of [
        'localhost:8000',
        '127.0.0.1:8000',
        '[::1]:8000',
        'api:8000',
        'x.localhost',
      ]) {
        const res = await openApi().get('/topics').set('host', host);
        expect([host, res.status]).toEqual([host, 200]);
      }
      // With API keys, a page has no key to send: any Host is fine.
      await api().get('/topics').set(auth).set('host', 'queue.example.com').expect(200);
    });

    it('keeps the compose file from publishing the API on every interface', () => {
      const compose = readFileSync(new URL('../docker-compose.yml', import.meta.url), 'utf8');
      const ports = [...compose.matchAll(/^\s+- '(.*:8000)'$/gm)].map((m) => m[1]);
      expect(ports).toEqual(['${API_PUBLISH_ADDRESS:-127.0.0.1}:8000:8000']);
    });
  });

  describe('start-up without API keys', () => {
    /** Runs dist/main.js; resolves with its exit code, or 'listening' once it serves. */
    function start(env: Record<string, string>) {
      return new Promise<{ outcome: number | 'listening'; output: string }>((resolve) => {
        const child = spawn(process.execPath, ['dist/main.js'], {
          env: {
            PATH: process.env.PATH ?? '',
            ...SCHEMA_ENV,
            DATABASE_URL: db.url,
            PORT: '0',
            ...env,
          },
          cwd: new URL('..', import.meta.url).pathname,
        });
        let output = '';
        const collect = (d: Buffer) => {
          output += d.toString();
          if (/API listening/.test(output)) child.kill('SIGKILL');
        };
        child.stdout.on('data', collect);
        child.stderr.on('data', collect);
        child.on('exit', (code) =>
          resolve({ outcome: /API listening/.test(output) ? 'listening' : code!, output }),
        );
      });
    }

    it('refuses to serve an open API on every interface, with one clear line', async () => {
      const { outcome, output } = await start({});
      expect(outcome).toBe(1);
      expect(output.trim().split('\n')).toHaveLength(1);
      expect(output).toMatch(/cannot start: API_KEYS is not set.*API_OPEN=true/);
    });

    it('serves an open API on loopback, or anywhere with API_OPEN=true', async () => {
      expect((await start({ API_LISTEN_ADDRESS: '127.0.0.1' })).outcome).toBe('listening');
      expect((await start({ API_OPEN: 'true' })).outcome).toBe('listening');
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

import type { NestExpressApplication } from '@nestjs/platform-express';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import request from 'supertest';
import { SCHEMA_ENV, TestDatabase } from './helpers/db.js';
import { createTopic, createWebhook } from './helpers/factories.js';
import { KEY_A, KEY_B, SECRET, securityApps } from './helpers/security-apps.js';

/**
 * Who may use the API: API keys, the open API at start-up, and what browsers and other hosts can
 * reach.
 */
describe('security: exposing the API', () => {
  const apps = securityApps();
  const { api, auth } = apps;
  let db: TestDatabase;
  let open: NestExpressApplication;
  beforeAll(() => {
    ({ db, open } = apps);
  });

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
});

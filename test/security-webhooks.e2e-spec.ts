import type { NestExpressApplication } from '@nestjs/platform-express';
import { jest } from '@jest/globals';
import { Logger } from '@nestjs/common';
import request from 'supertest';
import { TestDatabase } from './helpers/db.js';
import { createTopic, createWebhook } from './helpers/factories.js';
import { SECRET, securityApps } from './helpers/security-apps.js';

/**
 * What a webhook may be: the SSRF guard at registration, its secrets and their rotation, the fan-
 * out cap.
 */
describe('security: exposing the API', () => {
  const apps = securityApps();
  const { api, auth } = apps;
  let db: TestDatabase;
  let guarded: NestExpressApplication;
  let open: NestExpressApplication;
  beforeAll(() => {
    ({ db, guarded, open } = apps);
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
});

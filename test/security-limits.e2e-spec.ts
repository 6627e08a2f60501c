import type { NestExpressApplication } from '@nestjs/platform-express';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { TestDatabase } from './helpers/db.js';
import { createTopic } from './helpers/factories.js';
import { securityApps } from './helpers/security-apps.js';

/** The size limits of requests: payloads, declared and streamed bodies, partition keys and URLs. */
describe('security: exposing the API', () => {
  const apps = securityApps();
  const { api, auth } = apps;
  let db: TestDatabase;
  let guarded: NestExpressApplication;
  beforeAll(() => {
    ({ db, guarded } = apps);
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

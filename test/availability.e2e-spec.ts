import type { NestExpressApplication } from '@nestjs/platform-express';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { createTestApp } from './helpers/app.js';
import { createTestDatabase, TestDatabase } from './helpers/db.js';
import { eventually } from './helpers/eventually.js';
import { createTopic, insertMessage } from './helpers/factories.js';

const KEY = 'availability-key-5d1c9f0e8b7a6c4d3e2f1a0b';

/** Listens on 127.0.0.1 (supertest would too) and returns the port, for raw sockets. */
async function listen(app: NestExpressApplication): Promise<number> {
  const server = app.getHttpServer() as http.Server;
  if (!server.listening) await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as AddressInfo).port;
}

/** A raw connection that records what the server answers and when it closes the connection. */
function connect(port: number) {
  const socket = net.connect(port, '127.0.0.1');
  const state = { received: '', closed: false };
  socket.on('data', (d) => (state.received += d.toString()));
  socket.on('close', () => (state.closed = true));
  socket.on('error', () => undefined);
  return { socket, state };
}

/**
 * One request, one payload or one slow client must not take the API down (issue 14: 1, 2, 5, 6;
 * issue 8: 11, 12). Each scenario is scaled down from what the review ran, but still far past
 * what the API survived before.
 */
describe('availability under hostile requests', () => {
  let db: TestDatabase;
  let app: NestExpressApplication;

  beforeAll(async () => {
    db = await createTestDatabase();
    app = await createTestApp(db.url, { MAX_PAYLOAD_BYTES: String(2 * 1024 * 1024) });
  });
  afterAll(async () => {
    await app?.close();
    await db?.drop();
  });

  const api = () => request(app.getHttpServer());

  /** `count` webhooks on a topic, in one statement; returns their ids in order. */
  async function createWebhooks(topicId: number, count: number, urlTail: string) {
    const { rows } = await db.pool.query<{ id: number }>(
      `INSERT INTO webhooks (topic_id, url, secret)
       SELECT $1, 'https://e.com/' || i || $3, 'whsec_' || encode(sha256(i::text::bytea), 'base64')
       FROM generate_series(1, $2) i ORDER BY i RETURNING id`,
      [topicId, count, urlTail],
    );
    return rows.map((r) => r.id).sort((a, b) => a - b);
  }

  describe('lists carry no payloads and are bounded by bytes', () => {
    it('lists 200 dead deliveries of one 128 KiB message in a small response; the payload is at GET /messages/{id}', async () => {
      const topic = await createTopic(db.pool);
      await createWebhooks(topic.id, 200, '');
      // Many small keys: each parsed copy of the payload costs far more than its bytes.
      const payload: Record<string, number> = {};
      for (let i = 0; i < 12_000; i++) payload[`k${i}`] = i;
      const message = await insertMessage(db.pool, topic.id, 'p', payload);
      await db.pool.query(
        `UPDATE deliveries SET status = 'dead', dead_at = now(), attempts = 5 WHERE message_id = $1`,
        [message.id],
      );
      const res = await api().get(`/dead-letter?topic_id=${topic.id}&limit=200`).expect(200);
      expect(res.body).toHaveLength(200);
      expect(res.text.length).toBeLessThan(200 * 1024);
      expect(res.body[0]).toMatchObject({
        message_id: message.id,
        topic_id: topic.id,
        partition_key: 'p',
        sequence: 1,
        status: 'dead',
      });
      expect(res.text).not.toMatch(/"k1"/);

      const one = await api().get(`/messages/${message.id}`).expect(200);
      expect(one.headers['content-type']).toMatch(/^application\/json/);
      expect(one.body).toEqual({
        id: message.id,
        topic_id: topic.id,
        partition_key: 'p',
        sequence: 1,
        created_at: expect.any(String),
        idempotency_key: null,
        event_type: null,
        payload,
      });
      await api().get('/messages/999999999').expect(404);
      await api().get('/messages/abc').expect(400);
    });

    it('stops a page at about 1 MiB and links to the next one, whatever the limit', async () => {
      const topic = await createTopic(db.pool);
      const ids = await createWebhooks(topic.id, 700, '/' + 'x'.repeat(2000));
      const seen: number[] = [];
      let next: string | undefined = `/topics/${topic.id}/webhooks?limit=1000`;
      let pages = 0;
      while (next) {
        const res: request.Response = await api().get(next).expect(200);
        expect(Buffer.byteLength(res.text)).toBeLessThanOrEqual(1024 * 1024);
        seen.push(...res.body.map((w: { id: number }) => w.id));
        next = /^<([^>]+)>; rel="next"$/.exec(res.headers.link ?? '')?.[1];
        pages += 1;
        expect(pages).toBeLessThan(10);
      }
      expect(pages).toBeGreaterThan(1);
      expect(seen).toEqual(ids);
    });
  });

  describe('payloads travel as the text that was sent', () => {
    it('stores numbers with every digit, and keys such as __proto__, exactly as the SQL path does', async () => {
      const topic = await createTopic(db.pool);
      const payloadText =
        '{"big": 12345678901234567890, "huge": 1e999, "tiny": 1e-999, "precise": 0.1000000000000000055511151231257827,' +
        ' "__proto__": {"admin": true}, "constructor": 1, "prototype": [2], "dup": 1, "dup": 2, "list": [-0, 1E+2]}';
      const res = await api()
        .post(`/topics/${topic.name}/messages`)
        .set('content-type', 'application/json')
        .send(`{"payload": ${payloadText}, "partition_key": "k"}`)
        .expect(201);
      const { rows } = await db.pool.query(
        `SELECT payload = $2::jsonb AS same, payload::text AS text FROM messages WHERE id = $1`,
        [res.body.id, payloadText],
      );
      expect(rows[0].same).toBe(true);
      expect(rows[0].text).toContain('"big": 12345678901234567890');
      expect(rows[0].text).toContain('"__proto__": {"admin": true}');
      // GET /messages/{id} hands it back exactly as stored.
      const shown = await api().get(`/messages/${res.body.id}`).expect(200);
      expect(shown.text).toMatch(/,"payload":(.*)}$/);
      expect(/,"payload":(.*)}$/.exec(shown.text)![1]).toBe(rows[0].text);
    });

    it('refuses a repeated or unknown envelope field, and a body that is not an object', async () => {
      const topic = await createTopic(db.pool);
      for (const body of [
        '{"partition_key":"k","payload":1,"payload":2}',
        '{"partition_key":"k","partition_key":"j","payload":1}',
        '{"partition_key":"k","payload":1,"__proto__":{}}',
        '[{"partition_key":"k","payload":1}]',
        '"x"',
      ]) {
        const res = await api()
          .post(`/topics/${topic.name}/messages`)
          .set('content-type', 'application/json')
          .send(body);
        expect([body, res.status]).toEqual([body, 400]);
      }
      const { rows } = await db.pool.query(
        'SELECT count(*)::int AS n FROM messages WHERE topic_id = $1',
        [topic.id],
      );
      expect(rows[0].n).toBe(0);
    });

    it('answers a load balancer probe while a 118,000-key payload is being published', async () => {
      const topic = await createTopic(db.pool);
      const keys = 118_000;
      const payload =
        '{' + Array.from({ length: keys }, (_, i) => `"${i.toString(36)}":0`).join(',') + '}';
      const body = `{"partition_key":"k","payload":${payload}}`;
      const port = await listen(app);
      // The test holds the topic's row, so the publish waits in the database after the API has
      // read its body: the probe runs while that publish is in flight.
      const holder = await db.pool.connect();
      await holder.query('BEGIN');
      await holder.query('SELECT 1 FROM topics WHERE id = $1 FOR UPDATE', [topic.id]);
      try {
        const published = new Promise<{ status: number; body: string }>((resolve, reject) => {
          const req = http.request(
            {
              host: '127.0.0.1',
              port,
              method: 'POST',
              path: `/topics/${topic.name}/messages`,
              headers: { 'content-type': 'application/json' },
            },
            (res) => {
              let text = '';
              res.on('data', (c) => (text += c));
              res.on('end', () => resolve({ status: res.statusCode!, body: text }));
            },
          );
          req.on('error', reject);
          req.end(body);
        });
        // A probe with a load balancer's timeout (5 s on AWS): before, the API's event loop was
        // held for 10 s by this one body, and probes failed.
        await eventually(
          async () => {
            const { rows } = await db.pool.query(
              `SELECT 1 FROM pg_locks l JOIN pg_stat_activity a USING (pid)
               WHERE NOT l.granted AND a.datname = current_database()`,
            );
            return rows.length > 0;
          },
          { what: 'the publish to wait on the held row', timeoutMs: 30_000 },
        );
        const probe = await fetch(`http://127.0.0.1:${port}/health`, {
          signal: AbortSignal.timeout(5000),
        });
        expect(probe.status).toBe(200);
        await holder.query('COMMIT');
        const result = await published;
        expect(result.status).toBe(201);
      } finally {
        await holder.query('ROLLBACK').catch(() => undefined);
        holder.release();
      }
      const { rows } = await db.pool.query(
        `SELECT (SELECT count(*)::int FROM jsonb_object_keys(payload)) AS keys FROM messages WHERE topic_id = $1`,
        [topic.id],
      );
      expect(rows[0].keys).toBe(keys);
    });

    it('keeps other bodies small: a 118,000-key object sent to another route is a 413', async () => {
      const body =
        '{"name":"x",' +
        Array.from({ length: 118_000 }, (_, i) => `"${i.toString(36)}":0`).join(',') +
        '}';
      const res = await api().post('/topics').set('content-type', 'application/json').send(body);
      expect(res.status).toBe(413);
    });
  });

  describe('the API key is checked before the body is read', () => {
    let guarded: NestExpressApplication;
    beforeAll(async () => {
      guarded = await createTestApp(db.url, { API_KEYS: KEY });
    });
    afterAll(async () => {
      await guarded?.close();
    });

    it('answers 401 to a request whose body has not even been sent', async () => {
      const port = await listen(guarded);
      // Headers announcing a 1 MiB body, and no body at all: the answer cannot depend on it.
      const { socket, state } = connect(port);
      try {
        socket.write(
          'POST /topics/t/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n' +
            'Content-Type: application/json\r\nContent-Length: 1048576\r\n\r\n',
        );
        await eventually(() => state.received.includes('\r\n\r\n') && state.received, {
          what: 'an answer before the body',
        });
        expect(state.received).toMatch(/^HTTP\/1\.1 401/);
        expect(state.received).toMatch(/connection: close/i);
        await eventually(() => state.closed, { what: 'the connection to be closed' });
      } finally {
        socket.destroy();
      }
    });

    it('refuses a deeply nested body without a key, and takes it with one', async () => {
      const nested = '{"partition_key":"k","payload":' + '['.repeat(60) + ']'.repeat(60) + '}';
      await request(guarded.getHttpServer())
        .post('/topics/none/messages')
        .set('content-type', 'application/json')
        .send(nested)
        .expect(401);
      await request(guarded.getHttpServer())
        .post('/topics/none/messages')
        .set('authorization', 'Bearer wrong-key-wrong-key-wrong-key-wrong')
        .set('content-type', 'application/json')
        .send(nested)
        .expect(401);
      await request(guarded.getHttpServer())
        .post('/topics/none/messages')
        .set('authorization', `Bearer ${KEY}`)
        .set('content-type', 'application/json')
        .send(nested)
        .expect(404);
    });
  });

  describe('slow and idle clients', () => {
    it.each([
      ['headers that never end', 'GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: '],
      [
        'a body that never ends',
        'POST /topics HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n' +
          'Content-Length: 100\r\n\r\n{"name":',
      ],
    ])('closes a connection with %s after API_REQUEST_TIMEOUT_MS', async (_what, sent) => {
      const strict = await createTestApp(db.url, { API_REQUEST_TIMEOUT_MS: '1000' });
      const { socket, state } = connect(await listen(strict));
      try {
        socket.write(sent);
        // Node's defaults held such a connection for 1 minute (headers) or 5 (body).
        await eventually(() => state.closed, { what: 'the server to close the connection' });
      } finally {
        socket.destroy();
        await strict.close();
      }
    });

    it('accepts at most API_MAX_CONNECTIONS connections at once', async () => {
      const capped = await createTestApp(db.url, { API_MAX_CONNECTIONS: '3' });
      const server = capped.getHttpServer() as http.Server;
      const open = () =>
        new Promise<number>((resolve, reject) =>
          server.getConnections((error, count) => (error ? reject(error) : resolve(count))),
        );
      const port = await listen(capped);
      const held = [connect(port), connect(port), connect(port)];
      try {
        await eventually(async () => (await open()) === 3, { what: 'three open connections' });
        const extra = connect(port);
        extra.socket.write('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
        await eventually(() => extra.state.closed, { what: 'the extra connection to be dropped' });
        expect(extra.state.received).toBe('');
        for (const { socket } of held) socket.destroy();
        await eventually(async () => (await open()) === 0, { what: 'the held ones to close' });
        await request(server).get('/health').expect(200);
      } finally {
        for (const { socket } of held) socket.destroy();
        await capped.close();
      }
    });
  });
});

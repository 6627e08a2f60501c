import type { INestApplicationContext, LoggerService } from '@nestjs/common';
import type { NestExpressApplication } from '@nestjs/platform-express';
import request from 'supertest';
import { loadConfig } from '../src/config/app-config.js';
import { Retention } from '../src/maintenance/retention.js';
import { createTestApp, expectErrorResponse } from './helpers/app.js';
import { createTestDatabase, TestDatabase } from './helpers/db.js';
import { eventually } from './helpers/eventually.js';
import { createTopic, createWebhook, insertMessage } from './helpers/factories.js';
import { Receiver, Reply } from './helpers/receiver.js';
import { startInProcessWorker } from './helpers/worker.js';

const ALICE_KEY = 'alice-key-0123456789abcdefghijklmnopqrstuv';
const BOB_KEY = 'bob-key-ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210';

/** Every line any logger of the app writes, at every level. */
class CapturedLogs implements LoggerService {
  readonly lines: string[] = [];
  private add = (...parts: unknown[]) => void this.lines.push(parts.map(String).join(' '));
  log = this.add;
  error = this.add;
  warn = this.add;
  debug = this.add;
  verbose = this.add;
}

/** DESIGN §12: every operator action recorded with who did it, by key name, never the key. */
describe('audit log', () => {
  let db: TestDatabase;
  let app: NestExpressApplication;
  let worker: INestApplicationContext;
  let receiver: Receiver;
  let reply: Reply = { status: 500 };
  const logs = new CapturedLogs();
  let topicId: number;
  let webhookId: number;
  const as = (key: string) => ({ authorization: `Bearer ${key}` });

  beforeAll(async () => {
    db = await createTestDatabase();
    receiver = await Receiver.start(() => reply);
    topicId = (await createTopic(db.pool, 'orders')).id;
    webhookId = (await createWebhook(db.pool, topicId, receiver.url)).id;
    // The worker's retention keeps the audit log: the retention test drives its own.
    worker = await startInProcessWorker(db.url, { MAX_RETRIES: '1', RETENTION_AUDIT_SECONDS: '0' });
    app = await createTestApp(db.url, { API_KEYS: `alice:${ALICE_KEY}, bob:${BOB_KEY}` });
    // Last: every Nest logger of this process (the API's and the worker's) writes here.
    app.useLogger(logs);
  });
  afterAll(async () => {
    await worker?.close();
    await app?.close();
    await receiver?.close();
    await db?.drop();
  });

  it('records every operator action with its actor, action, target and parameters', async () => {
    const http = request(app.getHttpServer());
    await http
      .patch(`/webhooks/${webhookId}`)
      .set(as(ALICE_KEY))
      .send({ on_exhausted: 'block' })
      .expect(200);
    await insertMessage(db.pool, topicId, 'k1');
    await insertMessage(db.pool, topicId, 'k1');
    await eventually(
      async () =>
        (
          await db.pool.query(`SELECT 1 FROM delivery_lines WHERE webhook_id = $1 AND blocked`, [
            webhookId,
          ])
        ).rowCount === 1,
      { what: 'the line blocked at its dead head', timeoutMs: 20_000 },
    );
    reply = { status: 204 };
    await http.post(`/webhooks/${webhookId}/lines/k1/skip`).set(as(BOB_KEY)).expect(200);
    const redrive = await http
      .post('/dead-letter/redrive')
      .set(as(ALICE_KEY))
      .send({ webhook_id: webhookId })
      .expect(200);
    expect(redrive.body).toEqual({ redriven: 1 });
    const replay = await http
      .post(`/webhooks/${webhookId}/replay`)
      .set(as(BOB_KEY))
      .send({ partition_key: 'k1', from_sequence: 2 })
      .expect(200);
    const rotated = await http
      .post(`/webhooks/${webhookId}/secret/rotate`)
      .set(as(ALICE_KEY))
      .expect(200);
    await http
      .post('/dead-letter/redrive')
      .set(as(BOB_KEY))
      .send({ topic_id: topicId, partition_key: 'k1' })
      .expect(200);
    // A failed action changed nothing and is not recorded.
    expectErrorResponse(
      await http.patch('/webhooks/999').set(as(BOB_KEY)).send({ status: 'paused' }),
      404,
    );
    await http.delete(`/webhooks/${webhookId}`).set(as(BOB_KEY)).expect(204);

    const log = await http.get('/audit-log').set(as(BOB_KEY)).expect(200);
    const target = `webhook:${webhookId}`;
    expect(log.body).toEqual([
      entry('bob', 'webhook.delete', target, {}),
      entry('bob', 'dead_letter.redrive', `topic:${topicId}`, {
        topic_id: topicId,
        partition_key: 'k1',
        redriven: 0,
      }),
      entry('alice', 'webhook.rotate_secret', target, {}),
      entry('bob', 'webhook.replay', target, {
        partition_key: 'k1',
        from_sequence: 2,
        replayed: replay.body.replayed,
      }),
      entry('alice', 'dead_letter.redrive', target, { webhook_id: webhookId, redriven: 1 }),
      entry('bob', 'line.skip', target, { partition_key: 'k1' }),
      entry('alice', 'webhook.update', target, { on_exhausted: 'block' }),
    ]);
    expect(log.body.map((e: { id: number }) => e.id)).toEqual(
      log.body.map((e: { id: number }) => e.id).sort((a: number, b: number) => b - a),
    );

    // The keys and the new secret are nowhere: not in the table, not in any log line.
    const { rows } = await db.pool.query(`SELECT a::text AS row FROM audit_log a`);
    const table = rows.map((r) => r.row).join('\n');
    for (const secret of [ALICE_KEY, BOB_KEY, rotated.body.secret]) {
      expect(table).not.toContain(secret);
      expect(logs.lines.join('\n')).not.toContain(secret);
    }
    // Each action is a log line too.
    const audited = logs.lines.filter((line) => /^(alice|bob) [a-z_.]+ /.test(line));
    expect(audited).toHaveLength(7);
    expect(audited).toContain(`bob line.skip ${target} {"partition_key":"k1"} Audit`);
  });

  it('pages newest first, filters by target, and pages oldest first on request', async () => {
    const http = request(app.getHttpServer());
    const byTarget = await http
      .get(`/audit-log?target=webhook:${webhookId}&limit=2`)
      .set(as(ALICE_KEY))
      .expect(200);
    expect(byTarget.body.map((e: { action: string }) => e.action)).toEqual([
      'webhook.delete',
      'webhook.rotate_secret',
    ]);
    const next = /<([^>]+)>; rel="next"/.exec(byTarget.headers.link)![1];
    const older = await http.get(next).set(as(ALICE_KEY)).expect(200);
    expect(older.body.map((e: { action: string }) => e.action)).toEqual([
      'webhook.replay',
      'dead_letter.redrive',
    ]);
    const oldest = await http.get('/audit-log?order=asc&limit=1').set(as(ALICE_KEY)).expect(200);
    expect(oldest.body[0].action).toBe('webhook.update');
    expect((await http.get('/audit-log?target=nothing').set(as(ALICE_KEY))).body).toEqual([]);
    expectErrorResponse(await http.get('/audit-log?order=sideways').set(as(ALICE_KEY)), 400);
    expectErrorResponse(await http.get('/audit-log'), 401);
  });

  it('names the actor local when the API has no keys', async () => {
    const open = await createTestApp(db.url);
    try {
      const topic = await createTopic(db.pool, 'open');
      const hook = await createWebhook(db.pool, topic.id);
      await request(open.getHttpServer())
        .patch(`/webhooks/${hook.id}`)
        .send({ status: 'paused' })
        .expect(200);
      const [latest] = (await request(open.getHttpServer()).get('/audit-log').expect(200)).body;
      expect(latest).toMatchObject({ actor: 'local', action: 'webhook.update' });
    } finally {
      await open.close();
    }
  });

  it('retention deletes entries older than RETENTION_AUDIT_SECONDS, and none when 0', async () => {
    await db.pool.query(
      `INSERT INTO audit_log (at, actor, action, target) VALUES
         (now() - interval '400 days', 'alice', 'webhook.update', 'webhook:old')`,
    );
    const client = await db.pool.connect();
    try {
      const keep = new Retention(loadConfig({ RETENTION_AUDIT_SECONDS: '0' }));
      while (await keep.runBatch(client));
      const count = async () =>
        Number((await client.query(`SELECT count(*) FROM audit_log`)).rows[0].count);
      const before = await count();
      expect(
        (await client.query(`SELECT 1 FROM audit_log WHERE target = 'webhook:old'`)).rowCount,
      ).toBe(1);
      const year = new Retention(loadConfig({}));
      while (await year.runBatch(client));
      expect(
        (await client.query(`SELECT 1 FROM audit_log WHERE target = 'webhook:old'`)).rowCount,
      ).toBe(0);
      expect(await count()).toBe(before - 1);
    } finally {
      client.release();
    }
  });
});

function entry(actor: string, action: string, target: string, parameters: object) {
  return { id: expect.any(Number), at: expect.any(String), actor, action, target, parameters };
}

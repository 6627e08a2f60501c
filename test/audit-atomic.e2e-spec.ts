import type { NestExpressApplication } from '@nestjs/platform-express';
import request from 'supertest';
import { createTestApp } from './helpers/app.js';
import { createTestDatabase, TestDatabase } from './helpers/db.js';
import { eventually } from './helpers/eventually.js';
import { createTopic, createWebhook, insertMessage } from './helpers/factories.js';
import { Receiver } from './helpers/receiver.js';
import { startInProcessWorker } from './helpers/worker.js';

const KEY = 'alice-key-0123456789abcdefghijklmnopqrstuv';

/**
 * DESIGN §12: an operator action and its audit log row commit together or not at all. The test
 * makes one side fail with a trigger of its own, on the audit log or on the action's table.
 */
describe('audit log: an action and its record commit together', () => {
  let db: TestDatabase;
  let app: NestExpressApplication;
  let receiver: Receiver;
  let http: ReturnType<typeof request>;
  let webhookId: number;
  const auth = { authorization: `Bearer ${KEY}` };

  beforeAll(async () => {
    db = await createTestDatabase();
    // Partition `bad` is refused and blocks at its dead head; `good` is delivered.
    receiver = await Receiver.start((a) =>
      a.headers['webhook-partition-key'] === 'bad' ? { status: 500 } : { status: 200 },
    );
    const topic = await createTopic(db.pool);
    webhookId = (await createWebhook(db.pool, topic.id, receiver.url)).id;
    await db.pool.query(`UPDATE webhooks SET on_exhausted = 'block' WHERE id = $1`, [webhookId]);
    const worker = await startInProcessWorker(db.url, {
      MAX_RETRIES: '1',
      BACKOFF_MAX_SECONDS: '0',
    });
    app = await createTestApp(db.url, { API_KEYS: `alice:${KEY}` });
    http = request(app.getHttpServer());
    await insertMessage(db.pool, topic.id, 'bad');
    await insertMessage(db.pool, topic.id, 'bad');
    await insertMessage(db.pool, topic.id, 'good');
    await eventually(async () => (await state()).blocked && (await state()).delivered === 1, {
      what: 'line bad blocked at its dead head, good delivered',
      timeoutMs: 20_000,
    });
    // From here on only the actions change anything.
    await worker.close();
    await db.pool.query(`
      CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION 'refused by the test'; END $$`);
  });
  afterAll(async () => {
    await app?.close();
    await receiver?.close();
    await db?.drop();
  });

  /** What the actions change, and how many audit rows there are. */
  async function state() {
    const { rows } = await db.pool.query(
      `SELECT w.status, w.secret, w.deleted_at IS NOT NULL AS deleted,
              (SELECT blocked FROM delivery_lines
               WHERE webhook_id = w.id AND partition_key = 'bad') AS blocked,
              (SELECT count(*)::int FROM deliveries
               WHERE webhook_id = w.id AND status = 'dead') AS dead,
              (SELECT count(*)::int FROM deliveries
               WHERE webhook_id = w.id AND status = 'delivered') AS delivered,
              (SELECT count(*)::int FROM audit_log) AS audited
       FROM webhooks w WHERE w.id = $1`,
      [webhookId],
    );
    return rows[0] as {
      status: string;
      secret: string;
      deleted: boolean;
      blocked: boolean;
      dead: number;
      delivered: number;
      audited: number;
    };
  }

  /** Every operator action on the webhook, each answered with its status code. */
  async function actions() {
    const id = webhookId;
    return {
      pause: (await http.patch(`/webhooks/${id}`).set(auth).send({ status: 'paused' })).status,
      rotate: (await http.post(`/webhooks/${id}/secret/rotate`).set(auth)).status,
      skip: (await http.post(`/webhooks/${id}/lines/bad/skip`).set(auth)).status,
      redrive: (await http.post('/dead-letter/redrive').set(auth).send({ webhook_id: id })).status,
      replay: (
        await http
          .post(`/webhooks/${id}/replay`)
          .set(auth)
          .send({ partition_key: 'good', from_sequence: 1 })
      ).status,
      delete: (await http.delete(`/webhooks/${id}`).set(auth)).status,
    };
  }

  it('undoes the action when its record cannot be written, and answers an error', async () => {
    const before = await state();
    expect(before).toMatchObject({ status: 'active', blocked: true, dead: 1, delivered: 1 });
    await db.pool.query(
      `CREATE TRIGGER refuse_audit BEFORE INSERT OR UPDATE ON audit_log
       FOR EACH ROW EXECUTE FUNCTION refuse()`,
    );
    try {
      expect(await actions()).toEqual({
        pause: 500,
        rotate: 500,
        skip: 500,
        redrive: 500,
        replay: 500,
        delete: 500,
      });
      expect(await state()).toEqual(before);
    } finally {
      await db.pool.query('DROP TRIGGER refuse_audit ON audit_log');
    }
  });

  it('records nothing when the action itself fails to commit', async () => {
    // Checked at COMMIT, after the action wrote its record in the same transaction.
    await db.pool.query(
      `CREATE CONSTRAINT TRIGGER refuse_pause AFTER UPDATE ON webhooks
       DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
       WHEN (NEW.status = 'paused') EXECUTE FUNCTION refuse()`,
    );
    try {
      const before = await state();
      const pause = await http.patch(`/webhooks/${webhookId}`).set(auth).send({ status: 'paused' });
      expect(pause.status).toBe(500);
      expect(await state()).toEqual(before);
    } finally {
      await db.pool.query('DROP TRIGGER refuse_pause ON webhooks');
    }
  });

  it('records each action with what it did once both can commit', async () => {
    const before = await state();
    expect(await actions()).toEqual({
      pause: 200,
      rotate: 200,
      skip: 200,
      redrive: 200,
      replay: 200,
      delete: 204,
    });
    const after = await state();
    expect(after).toMatchObject({ status: 'paused', deleted: true });
    expect(after.secret).not.toBe(before.secret);
    expect(after.audited).toBe(before.audited + 6);
    const { rows } = await db.pool.query(`SELECT action, parameters FROM audit_log ORDER BY id`);
    expect(rows).toEqual([
      { action: 'webhook.update', parameters: { status: 'paused' } },
      { action: 'webhook.rotate_secret', parameters: {} },
      { action: 'line.skip', parameters: { partition_key: 'bad' } },
      { action: 'dead_letter.redrive', parameters: { webhook_id: webhookId, redriven: 1 } },
      {
        action: 'webhook.replay',
        parameters: { partition_key: 'good', from_sequence: 1, replayed: 1 },
      },
      { action: 'webhook.delete', parameters: {} },
    ]);
  });
});

import type { INestApplicationContext } from '@nestjs/common';
import type { NestExpressApplication } from '@nestjs/platform-express';
import pg from 'pg';
import request from 'supertest';
import { createTestApp, expectErrorResponse } from './helpers/app.js';
import { createTestDatabase, TEST_SCHEMA, TestDatabase } from './helpers/db.js';
import { eventually } from './helpers/eventually.js';
import { createTopic, createWebhook } from './helpers/factories.js';
import { Receiver } from './helpers/receiver.js';
import { startInProcessWorker } from './helpers/worker.js';
import { searchPathOption } from '../src/database/schema.js';

/** A payload of `n` numbers that jsonb stores in ~22 bytes each and prints as 131,072 digits. */
const bomb = (n: number) => `[${Array(n).fill('1e131071').join(',')}]`;

/**
 * Rows that a SQL producer can write and the API would refuse: a payload that prints to more
 * than a delivery may carry, to more than V8 can hold in one string (512 MB), or to more than
 * PostgreSQL can build (1 GB). Each takes only its own line down, never the claim of others.
 */
describe('security: payloads written with SQL', () => {
  let db: TestDatabase;
  let receiver: Receiver;
  let worker: INestApplicationContext | undefined;
  let app: NestExpressApplication;

  beforeAll(async () => {
    db = await createTestDatabase();
    receiver = await Receiver.start();
    app = await createTestApp(db.url);
  });
  afterAll(async () => {
    await worker?.close();
    await app?.close();
    await receiver?.close();
    await db?.drop();
  });

  const insert = (topicId: number, key: string, payload: string) =>
    db.pool
      .query<{ id: string }>(
        `INSERT INTO messages (topic_id, partition_key, payload) VALUES ($1, $2, $3::jsonb)
         RETURNING id`,
        [topicId, key, payload],
      )
      .then(({ rows }) => Number(rows[0].id));

  it('refuses at insert a payload that prints to more than 64 MiB, and takes one just under', async () => {
    const topic = await createTopic(db.pool, 'insert-check');
    // 513 numbers print to 67,240,962 bytes, 511 to 66,978,814: 64 MiB is 67,108,864.
    await expect(insert(topic.id, 'k', bomb(513))).rejects.toMatchObject({
      code: '23514',
      constraint: 'messages_payload_printable',
      message: expect.stringMatching(/^message refused: the payload prints to more than 67108864/),
    });
    await expect(insert(topic.id, 'k', bomb(10_000))).rejects.toMatchObject({ code: '23514' });
    await insert(topic.id, 'k', bomb(511));
  });

  it('numbers a statement of many new partitions with index lookups, even on tables analyzed empty', async () => {
    const own = await createTestDatabase();
    const client = new pg.Client({ connectionString: own.url, ...searchPathOption(TEST_SCHEMA) });
    await client.connect();
    try {
      const topic = await createTopic(own.pool, 'many-partitions');
      await createWebhook(own.pool, topic.id);
      await client.query('VACUUM ANALYZE');
      const plans: string[] = [];
      client.on('notice', (notice) => plans.push(notice.message ?? ''));
      await client.query(`LOAD 'auto_explain'`);
      await client.query(`SET auto_explain.log_min_duration = 0`);
      await client.query(`SET auto_explain.log_nested_statements = on`);
      await client.query(`SET auto_explain.log_level = notice`);
      // Past the fifth call PL/pgSQL keeps a generic plan: every row after uses it.
      await client.query(
        `INSERT INTO messages (topic_id, partition_key, payload)
         SELECT $1, 'p' || g, '{}' FROM generate_series(1, 20) g`,
        [topic.id],
      );
      // The sequence trigger's two statements (the fan-out's runs once per statement).
      const lookups = plans.filter((plan) => plan.includes('max(m.sequence) FROM messages m'));
      expect(lookups.length).toBeGreaterThan(20);
      expect(
        lookups.filter((plan) =>
          /Seq Scan on (messages|partition_sequences|delivery_lines)/.test(plan),
        ),
      ).toEqual([]);
    } finally {
      await client.end();
      await own.drop();
    }
  });

  it('dead-letters (or blocks) only the line of a payload that cannot be delivered', async () => {
    // Rows written before the check existed (or with it dropped): the claim must cope.
    await db.pool.query(`DROP TRIGGER IF EXISTS messages_payload_printable ON messages`);
    const topic = await createTopic(db.pool, 'bombs');
    const dead = await createWebhook(db.pool, topic.id, receiver.url);
    const blocking = await createWebhook(db.pool, topic.id, receiver.url);
    await db.pool.query(`UPDATE webhooks SET on_exhausted = 'block' WHERE id = $1`, [blocking.id]);
    const over1g = await insert(topic.id, 'over-1g', bomb(10_000)); // PostgreSQL cannot print it
    const overV8 = await insert(topic.id, 'over-v8', bomb(5_000)); // 655 MB: over V8's strings
    // Zeros with the largest scale: 60,000 print to 983 MB, each "0." and 16,383 zeros.
    const zeros = await insert(topic.id, 'over-zeros', `[${Array(60_000).fill('0e-16383')}]`);
    for (let i = 0; i < 5; i++) await insert(topic.id, `ok-${i}`, `{"n": ${i}}`);
    await insert(topic.id, 'over-1g', '{"after": "the bomb"}');
    // A bomb behind a good message: the record that keeps the line hands it over, not the claim.
    await insert(topic.id, 'kept-bomb', '{"before": "the bomb"}');
    const keptBomb = await insert(topic.id, 'kept-bomb', bomb(10_000));

    worker = await startInProcessWorker(db.url, { WORKER_CONCURRENCY: '4' });
    // Every good message reaches both webhooks; the one behind a bomb only the dead-letter one.
    await eventually(() => receiver.arrivals.length >= 13, { timeoutMs: 60_000, what: '13 POSTs' });
    const bombs = [over1g, overV8, zeros, keptBomb];
    await eventually(
      async () =>
        (
          await db.pool.query(
            `SELECT 1 FROM deliveries WHERE message_id = ANY($1::bigint[]) AND status = 'pending'`,
            [bombs],
          )
        ).rowCount === 0,
      { timeoutMs: 30_000, what: 'every bomb recorded' },
    );
    const { rows } = await db.pool.query<{
      message_id: string;
      webhook_id: number;
      status: string;
      last_error: string | null;
    }>(
      `SELECT message_id, webhook_id, status, last_error FROM deliveries
       WHERE message_id = ANY($1::bigint[]) ORDER BY message_id, webhook_id`,
      [bombs],
    );
    expect(rows).toEqual(
      bombs.flatMap((id) =>
        [dead.id, blocking.id].map((webhookId) => ({
          message_id: String(id),
          webhook_id: webhookId,
          status: 'dead',
          last_error: expect.stringMatching(/^not sent: the payload prints to more than/),
        })),
      ),
    );
    // One attempt each, nothing sent; the blocking webhook's lines wait on their dead head.
    const attempts = await db.pool.query(
      `SELECT count(*)::int AS n FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id
       WHERE d.message_id = ANY($1::bigint[])`,
      [bombs],
    );
    expect(attempts.rows[0].n).toBe(8);
    const lines = await db.pool.query(
      `SELECT partition_key, blocked FROM delivery_lines
       WHERE webhook_id = $1 AND partition_key LIKE 'over-%' ORDER BY partition_key`,
      [blocking.id],
    );
    expect(lines.rows).toEqual([
      { partition_key: 'over-1g', blocked: true },
      { partition_key: 'over-v8', blocked: true },
      { partition_key: 'over-zeros', blocked: true },
    ]);
    expect(receiver.where('webhook-partition-key', 'over-1g').map((a) => a.body)).toEqual([
      '{"after": "the bomb"}',
    ]);

    // GET /messages/{id} answers 422 with the reason, never 500 after building a gigabyte.
    for (const id of [over1g, overV8, zeros]) {
      const res = await request(app.getHttpServer()).get(`/messages/${id}`);
      expectErrorResponse(res, 422, /prints to more than/);
    }
  }, 120_000);
});

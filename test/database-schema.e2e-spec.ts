import type { NestExpressApplication } from '@nestjs/platform-express';
import pg from 'pg';
import request from 'supertest';
import { runMigrations } from '../src/database/migrate.js';
import { createTestApp } from './helpers/app.js';
import { createTestDatabase, TestDatabase } from './helpers/db.js';
import { eventually } from './helpers/eventually.js';
import { Receiver } from './helpers/receiver.js';
import { FAST_WORKER_ENV } from './helpers/worker.js';

/**
 * DATABASE_SCHEMA=pgwq: the queue's tables, functions and triggers in their own schema, beside an
 * application that has a `messages` table of its own in public.
 */
describe('DATABASE_SCHEMA', () => {
  let db: TestDatabase;
  let app: NestExpressApplication;
  let receiver: Receiver;
  /** A connection with the default search_path: the application's. */
  let appClient: pg.Client;

  beforeAll(async () => {
    db = await createTestDatabase({ empty: true });
    appClient = new pg.Client({ connectionString: db.url });
    await appClient.connect();
    await appClient.query(
      `CREATE TABLE public.messages (id serial PRIMARY KEY, body text NOT NULL, sent boolean);
       INSERT INTO public.messages (body, sent) VALUES ('hello from the app', false);`,
    );
    await runMigrations(db.url, undefined, 'pgwq');
    receiver = await Receiver.start();
    app = await createTestApp(
      db.url,
      { ...FAST_WORKER_ENV, DATABASE_SCHEMA: 'pgwq' },
      { withWorker: true },
    );
  });
  afterAll(async () => {
    await app?.close();
    await receiver?.close();
    await appClient?.end();
    await db?.drop();
  });

  it('puts every table, function and trigger of the queue in the schema, none in public', async () => {
    const { rows } = await appClient.query<{ schema: string; kind: string; n: number }>(
      `SELECT n.nspname AS schema, c.relkind::text AS kind, count(*)::int AS n
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname IN ('public', 'pgwq') AND c.relkind IN ('r', 'S')
       GROUP BY 1, 2 ORDER BY 1, 2`,
    );
    expect(rows.find((r) => r.schema === 'public' && r.kind === 'r')).toEqual({
      schema: 'public',
      kind: 'r',
      n: 1, // the application's messages
    });
    const tables = await appClient.query<{ name: string }>(
      `SELECT tablename AS name FROM pg_tables WHERE schemaname = 'pgwq'`,
    );
    expect(tables.rows.map((r) => r.name)).toEqual(
      expect.arrayContaining([
        'topics',
        'webhooks',
        'messages',
        'deliveries',
        'typeorm_migrations',
      ]),
    );
    const functions = await appClient.query<{ schema: string; n: number }>(
      `SELECT n.nspname AS schema, count(*)::int AS n FROM pg_proc p
       JOIN pg_namespace n ON n.oid = p.pronamespace
       WHERE p.proname LIKE 'pgwq\\_%' GROUP BY 1`,
    );
    expect(functions.rows).toEqual([{ schema: 'pgwq', n: expect.any(Number) }]);
    const pinned = await appClient.query<{ config: string[] }>(
      `SELECT proconfig AS config FROM pg_proc WHERE proname = 'pgwq_publish'`,
    );
    expect(pinned.rows[0].config).toContain('search_path=pgwq, pg_temp');
  });

  it('publishes through the API and pgwq.pgwq_publish, delivers both, and leaves public.messages alone', async () => {
    const server = app.getHttpServer();
    const topic = await request(server).post('/topics').send({ name: 'orders' }).expect(201);
    await request(server)
      .post('/webhooks')
      .send({ topic_id: topic.body.id, url: receiver.url })
      .expect(201);
    await request(server)
      .post('/topics/orders/messages')
      .send({ partition_key: 'user-1', payload: { via: 'api' } })
      .expect(201);
    // The application's own transaction, on its own search_path (public).
    await appClient.query('BEGIN');
    await appClient.query(`INSERT INTO messages (body) VALUES ('written with the publish')`);
    await appClient.query(`SELECT pgwq.pgwq_publish('orders', 'user-1', '{"via": "sql"}')`);
    await appClient.query('COMMIT');

    const arrivals = await eventually(() => receiver.arrivals.length === 2 && receiver.arrivals, {
      what: 'both deliveries',
    });
    expect(arrivals.map((a) => [a.headers['webhook-sequence'], JSON.parse(a.body).via])).toEqual([
      ['1', 'api'],
      ['2', 'sql'],
    ]);
    const own = await appClient.query(`SELECT body, sent FROM public.messages ORDER BY id`);
    expect(own.rows).toEqual([
      { body: 'hello from the app', sent: false },
      { body: 'written with the publish', sent: null },
    ]);
    const queue = await appClient.query(
      `SELECT partition_key, sequence::int FROM pgwq.messages ORDER BY sequence`,
    );
    expect(queue.rows).toEqual([
      { partition_key: 'user-1', sequence: 1 },
      { partition_key: 'user-1', sequence: 2 },
    ]);
    await eventually(
      async () =>
        (await request(server).get('/health')).status === 200 &&
        (
          await appClient.query(
            `SELECT count(*)::int AS n FROM pgwq.deliveries WHERE status = 'delivered'`,
          )
        ).rows[0].n === 2,
      { what: 'both recorded as delivered' },
    );
  });
});

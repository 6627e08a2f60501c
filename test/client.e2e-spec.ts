import {
  createPgwqClient,
  deadLetterControllerList,
  deadLetterControllerRedrive,
  deliveriesControllerListAttempts,
  deliveriesControllerListByWebhook,
  healthControllerCheck,
  messagesControllerPublish,
  messagesControllerShow,
  publishWithKnex,
  publishWithPg,
  publishWithTypeOrm,
  topicsControllerCreate,
  topicsControllerList,
  webhooksControllerCreate,
} from '@pgwq/client';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import knex from 'knex';
import { DataSource } from 'typeorm';
import { createTestApp } from './helpers/app.js';
import { createTestDatabase, TEST_SCHEMA, TestDatabase } from './helpers/db.js';
import { eventually } from './helpers/eventually.js';
import { Receiver } from './helpers/receiver.js';
import { built } from './helpers/scratch.js';
import { FAST_WORKER_ENV } from './helpers/worker.js';

/** packages/client against a running API, and its publish helpers in real transactions. */
describe('@pgwq/client', () => {
  let db: TestDatabase;
  let app: NestExpressApplication;
  let receiver: Receiver;
  let baseUrl: string;

  beforeAll(async () => {
    db = await createTestDatabase();
    receiver = await Receiver.start(() => ({ status: 500 }));
    app = await createTestApp(
      db.url,
      { ...FAST_WORKER_ENV, MAX_RETRIES: '1' },
      { withWorker: true },
    );
    await app.listen(0, '127.0.0.1');
    baseUrl = `http://127.0.0.1:${(app.getHttpServer().address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await app?.close();
    await receiver?.close();
    await db?.drop();
  });

  it('creates a topic and a webhook, publishes, reads deliveries and dead letters, redrives', async () => {
    const client = createPgwqClient({ baseUrl });
    const opts = { client, throwOnError: true } as const;
    expect((await healthControllerCheck(opts)).data).toEqual({ status: 'ok' });
    const topic = (await topicsControllerCreate({ ...opts, body: { name: 'orders' } })).data;
    expect(topic.name).toBe('orders');
    expect((await topicsControllerList(opts)).data).toMatchObject([{ name: 'orders' }]);
    const webhook = (
      await webhooksControllerCreate({ ...opts, body: { topic_id: topic.id, url: receiver.url } })
    ).data;
    const message = (
      await messagesControllerPublish({
        ...opts,
        path: { topic: 'orders' },
        body: { partition_key: 'user-1', payload: { n: 1 } },
      })
    ).data;
    expect(message).toMatchObject({ partition_key: 'user-1', sequence: 1 });
    expect(
      (await messagesControllerShow({ ...opts, path: { id: message.id } })).data,
    ).toMatchObject({ id: message.id });
    const dead = await eventually(
      async () => {
        const { data } = await deadLetterControllerList({
          ...opts,
          query: { webhook_id: webhook.id },
        });
        return data.length === 1 && data[0];
      },
      { what: 'the delivery dead-lettered' },
    );
    const deliveries = (
      await deliveriesControllerListByWebhook({ ...opts, path: { id: webhook.id } })
    ).data;
    expect(deliveries).toMatchObject([{ id: dead.id, status: 'dead', attempts: 1 }]);
    const attempts = (await deliveriesControllerListAttempts({ ...opts, path: { id: dead.id } }))
      .data;
    expect(attempts).toMatchObject([{ status_code: 500 }]);
    const redriven = (
      await deadLetterControllerRedrive({ ...opts, body: { delivery_ids: [dead.id] } })
    ).data;
    expect(redriven).toMatchObject({ redriven: 1 });

    // An error comes back typed, with the API's error body.
    const missing = await topicsControllerCreate({ client, body: { name: 'bad name!' } });
    expect(missing.response.status).toBe(400);
    expect(missing.error).toMatchObject({ status_code: 400 });
  });

  describe('publish helpers', () => {
    const count = async (key: string) =>
      (
        await db.pool.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM messages WHERE partition_key = $1`,
          [key],
        )
      ).rows[0].n;
    const message = (partitionKey: string) => ({
      topic: 'orders',
      partitionKey,
      payload: { hello: partitionKey },
      eventType: 'order.created',
    });
    // The helpers' own connections use the default search_path: they name the schema.
    const options = { schema: TEST_SCHEMA };

    it('pg: a PoolClient inside BEGIN', async () => {
      const client = await db.pool.connect();
      try {
        await client.query('BEGIN');
        expect(await publishWithPg(client, message('pg-rolled-back'))).toBeGreaterThan(0);
        await client.query('ROLLBACK');
        await client.query('BEGIN');
        const id = await publishWithPg(client, message('pg-committed'));
        await client.query('COMMIT');
        const again = await publishWithPg(client, {
          ...message('pg-committed'),
          idempotencyKey: 'k',
        });
        expect(
          await publishWithPg(client, { ...message('pg-committed'), idempotencyKey: 'k' }),
        ).toBe(again);
        expect(again).toBeGreaterThan(id);
      } finally {
        client.release();
      }
      expect(await count('pg-rolled-back')).toBe(0);
      expect(await count('pg-committed')).toBe(2);
    });

    it('TypeORM: the EntityManager of a transaction', async () => {
      const dataSource = new DataSource({ type: 'postgres', url: db.url });
      await dataSource.initialize();
      try {
        await expect(
          dataSource.transaction(async (manager) => {
            await publishWithTypeOrm(manager, message('typeorm-rolled-back'), options);
            throw new Error('the application changes its mind');
          }),
        ).rejects.toThrow('the application changes its mind');
        const id = await dataSource.transaction((manager) =>
          publishWithTypeOrm(manager, message('typeorm-committed'), options),
        );
        expect(id).toBeGreaterThan(0);
      } finally {
        await dataSource.destroy();
      }
      expect(await count('typeorm-rolled-back')).toBe(0);
      expect(await count('typeorm-committed')).toBe(1);
    });

    it('Knex: a transaction', async () => {
      const k = knex({ client: 'pg', connection: db.url });
      try {
        await expect(
          k.transaction(async (trx) => {
            await publishWithKnex(trx, message('knex-rolled-back'), options);
            throw new Error('the application changes its mind');
          }),
        ).rejects.toThrow('the application changes its mind');
        const id = await k.transaction((trx) =>
          publishWithKnex(trx, message('knex-committed'), options),
        );
        expect(id).toBeGreaterThan(0);
      } finally {
        await k.destroy();
      }
      expect(await count('knex-rolled-back')).toBe(0);
      expect(await count('knex-committed')).toBe(1);
    });
  });

  it('is generated from the API as built: regenerating from its OpenAPI document changes nothing', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pgwq-client-'));
    try {
      execFileSync(process.execPath, [built('openapi.js'), join(dir, 'openapi.json')]);
      execFileSync(
        join('node_modules', '.bin', 'openapi-ts'),
        ['--input', join(dir, 'openapi.json'), '--output', join(dir, 'generated')],
        { stdio: 'ignore' },
      );
      const committed = join('packages', 'client', 'src', 'generated');
      const files = (root: string) =>
        readdirSync(root, { recursive: true, withFileTypes: true })
          .filter((f) => f.isFile())
          .map((f) => join(f.parentPath, f.name).slice(root.length))
          .sort();
      expect(files(join(dir, 'generated'))).toEqual(files(committed));
      for (const file of files(committed)) {
        expect({ file, text: readFileSync(join(dir, 'generated', file), 'utf8') }).toEqual({
          file,
          text: readFileSync(join(committed, file), 'utf8'),
        });
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

import { spawn } from 'node:child_process';
import { createTestDatabase, SCHEMA_ENV, TEST_SCHEMA, TestDatabase } from './helpers/db.js';
import { eventually } from './helpers/eventually.js';
import { pgBouncerForTests, WARNING_OR_ERROR } from './helpers/pgbouncer.js';
import { Receiver } from './helpers/receiver.js';
import { built, childCwd } from './helpers/scratch.js';
import { WorkerProcess } from './helpers/worker.js';
import { runMigrations } from '../src/database/migrate.js';
import { RunningPgBouncer, startPgBouncer } from '../src/database/pgbouncer.js';

const binary = pgBouncerForTests('test/pooler-stock.e2e-spec.ts');
const API_KEY = 'pooler-test-key-0123456789abcdefghijklmn';

/** `node dist/main.js` on `databaseUrl`, with an API key (an open API warns about itself). */
function spawnApi(databaseUrl: string, env: Record<string, string> = {}) {
  const child = spawn(process.execPath, [built('main.js')], {
    cwd: childCwd(),
    env: {
      PATH: process.env.PATH,
      ...SCHEMA_ENV,
      DATABASE_URL: databaseUrl,
      PORT: '0',
      API_KEYS: API_KEY,
      WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true',
      ...env,
    },
  });
  const api = { child, output: '' };
  child.stdout.on('data', (d: Buffer) => (api.output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (api.output += d.toString()));
  return api;
}

/**
 * PgBouncer as installed, without ignore_startup_parameters: it refuses a connection that sends
 * lock_timeout or statement_timeout as startup parameters, which the pools send. The API and a
 * worker connect without them and say once, in one line, what is then not enforced.
 */
(binary ? describe : describe.skip)(`behind a stock PgBouncer ${binary?.version}`, () => {
  let bouncer: RunningPgBouncer;
  const databases: TestDatabase[] = [];
  const stops: (() => unknown)[] = [];

  beforeAll(async () => {
    bouncer = await startPgBouncer({
      serverUrl: process.env.PGWQ_TEST_ADMIN_URL!,
      poolMode: 'transaction',
      poolSize: 8,
      ignoreTimeoutParameters: false,
    });
  });
  afterEach(async () => {
    await Promise.all(stops.splice(0).map((stop) => stop()));
  });
  afterAll(async () => {
    await bouncer?.stop();
    await Promise.all(databases.map((db) => db.drop()));
  });

  /** A database with a topic `orders` and one webhook to a new receiver. */
  async function setUp() {
    const db = await createTestDatabase();
    databases.push(db);
    const receiver = await Receiver.start();
    stops.push(() => receiver.close());
    await db.pool.query(
      `WITH topic AS (INSERT INTO topics (name) VALUES ('orders') RETURNING id)
       INSERT INTO webhooks (topic_id, url, secret) SELECT id, $1, $2 FROM topic`,
      [receiver.url, 'whsec_' + Buffer.alloc(32, 7).toString('base64')],
    );
    // A stock PgBouncer refuses the startup parameter that sets the schema: the role sets it.
    if (TEST_SCHEMA !== 'public') {
      await db.pool.query(
        `ALTER ROLE CURRENT_USER IN DATABASE ${db.name} SET search_path = ${TEST_SCHEMA}`,
      );
    }
    return { db, receiver, pooledUrl: bouncer.url(db.name) };
  }

  /** The API and a worker through the pooler (LISTEN direct); publishes one message. */
  async function apiAndWorker(
    db: TestDatabase,
    pooledUrl: string,
    receiver: Receiver,
    env: Record<string, string> = {},
  ) {
    const api = spawnApi(pooledUrl, env);
    stops.push(() => api.child.kill('SIGKILL'));
    const worker = WorkerProcess.spawn(pooledUrl, { DATABASE_LISTEN_URL: db.url, ...env });
    stops.push(() => worker.stop());
    const port = await eventually(
      () => /API listening on http:\/\/[^ ]+:(\d+)/.exec(api.output)?.[1],
      {
        timeoutMs: 30_000,
        what: `the API to listen; output:\n${api.output}`,
      },
    );
    const published = await fetch(`http://127.0.0.1:${port}/topics/orders/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${API_KEY}` },
      body: JSON.stringify({ partition_key: 'k', payload: { n: 1 } }),
    });
    expect(published.status).toBe(201);
    await eventually(() => receiver.arrivals.length === 1, {
      timeoutMs: 30_000,
      what: `the delivery; worker output:\n${worker.output}`,
    });
    return { api, worker };
  }

  it('the API and a worker start, publish and deliver, each warning once about the limits', async () => {
    const { db, receiver, pooledUrl } = await setUp();
    const { api, worker } = await apiAndWorker(db, pooledUrl, receiver);
    for (const output of [api.output, worker.output]) {
      const warnings = output.match(WARNING_OR_ERROR) ?? [];
      expect(warnings).toEqual([
        expect.stringMatching(
          /refuses startup parameters, so lock_timeout \(5 s\) and statement_timeout \(30 s\) are not enforced/,
        ),
      ]);
    }
  });

  it('warns about nothing when the role sets the limits in the database', async () => {
    const { db, receiver, pooledUrl } = await setUp();
    await db.pool.query(`ALTER ROLE CURRENT_USER IN DATABASE ${db.name} SET lock_timeout = '5s'`);
    await db.pool.query(
      `ALTER ROLE CURRENT_USER IN DATABASE ${db.name} SET statement_timeout = '30s'`,
    );
    const { api, worker } = await apiAndWorker(db, pooledUrl, receiver);
    expect(api.output.match(WARNING_OR_ERROR) ?? []).toEqual([]);
    expect(worker.output.match(WARNING_OR_ERROR) ?? []).toEqual([]);
  });
  /** A database migrated into schema `kits`, with a topic `orders` and a webhook to a receiver. */
  async function setUpKits() {
    const db = await createTestDatabase({ empty: true });
    databases.push(db);
    await runMigrations(db.url, undefined, 'kits');
    const receiver = await Receiver.start();
    stops.push(() => receiver.close());
    const { rows } = await db.pool.query<{ id: number }>(
      `INSERT INTO kits.topics (name) VALUES ('orders') RETURNING id`,
    );
    await db.pool.query(`INSERT INTO kits.webhooks (topic_id, url, secret) VALUES ($1, $2, $3)`, [
      rows[0].id,
      receiver.url,
      'whsec_' + Buffer.alloc(32, 7).toString('base64'),
    ]);
    return { db, receiver, pooledUrl: bouncer.url(db.name) };
  }

  it('DATABASE_SCHEMA: refuses to start when the role does not set the search_path', async () => {
    const { pooledUrl } = await setUpKits();
    const refused = spawnApi(pooledUrl, { DATABASE_SCHEMA: 'kits' });
    const code = await new Promise((done) => refused.child.once('exit', done));
    expect(code).toBe(1);
    expect(refused.output).toMatch(
      /DATABASE_SCHEMA=kits, but the database \(a pooler\) refuses or ignores the startup parameter that sets search_path .*ALTER ROLE … IN DATABASE … SET search_path = kits/,
    );
  });

  it('DATABASE_SCHEMA: delivers when the role sets the search_path', async () => {
    const { db, receiver, pooledUrl } = await setUpKits();
    for (const setting of [
      `search_path = kits`,
      `lock_timeout = '5s'`,
      `statement_timeout = '30s'`,
    ]) {
      await db.pool.query(`ALTER ROLE CURRENT_USER IN DATABASE ${db.name} SET ${setting}`);
    }
    const { api, worker } = await apiAndWorker(db, pooledUrl, receiver, {
      DATABASE_SCHEMA: 'kits',
    });
    expect(api.output.match(WARNING_OR_ERROR) ?? []).toEqual([]);
    expect(worker.output.match(WARNING_OR_ERROR) ?? []).toEqual([]);
  });
});

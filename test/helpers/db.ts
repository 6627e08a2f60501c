import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { eventually } from './eventually.js';
import { searchPathOption } from '../../src/database/schema.js';

/**
 * DATABASE_SCHEMA of the run (CI runs the suite once with the queue in schema pgwq): the API, the
 * workers and the test's own pool land in it, whatever else the database holds.
 */
export const TEST_SCHEMA = process.env.DATABASE_SCHEMA || 'public';
/** What an API or worker of a test needs in its environment to follow TEST_SCHEMA. */
export const SCHEMA_ENV: Record<string, string> =
  TEST_SCHEMA === 'public' ? {} : { DATABASE_SCHEMA: TEST_SCHEMA };

/** The same server URL with another database name. */
export function databaseUrlFor(serverUrl: string, database: string): string {
  const url = new URL(serverUrl);
  url.pathname = `/${database}`;
  return url.toString();
}

export interface TestDatabase {
  name: string;
  url: string;
  /** A pool on the test database, for assertions and SQL producers. */
  pool: pg.Pool;
  drop(): Promise<void>;
}

async function admin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: process.env.PGWQ_TEST_ADMIN_URL });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/**
 * A fresh, migrated database of its own for one test file (a clone of the template), or with
 * `empty` one the migrations never ran on.
 */
export async function createTestDatabase(options: { empty?: boolean } = {}): Promise<TestDatabase> {
  const adminUrl = process.env.PGWQ_TEST_ADMIN_URL;
  const template = process.env.PGWQ_TEST_TEMPLATE;
  if (!adminUrl || !template) throw new Error('run the tests with `npm test` (jest globalSetup)');
  const name = `pgwq_test_${randomBytes(6).toString('hex')}`;
  await admin((c) =>
    c.query(`CREATE DATABASE ${name} TEMPLATE ${options.empty ? 'template0' : template}`),
  );
  const url = databaseUrlFor(adminUrl, name);
  const pool = new pg.Pool({ connectionString: url, max: 20, ...searchPathOption(TEST_SCHEMA) });
  pool.on('error', () => undefined);
  return {
    name,
    url,
    pool,
    async drop() {
      await pool.end();
      await admin(async (c) => {
        await connectionsClosed(c, name);
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      });
    },
  };
}

/**
 * Waits up to 5 s for the database's connections to close. A pool's end() resolves before its
 * connections have said goodbye, and DROP DATABASE … WITH (FORCE) would terminate them on the
 * way out: the pool then emits 'error', which ends the test process when the pool (like a
 * receiver's in the kit's tests) has no listener. FORCE still ends what is left after that
 * (a killed worker's sessions).
 */
async function connectionsClosed(client: pg.Client, database: string): Promise<void> {
  const closed = async () =>
    (
      await client.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1',
        [database],
      )
    ).rows[0].n === 0;
  // Not closed within the time: the DROP's FORCE ends the rest.
  await eventually(closed, { timeoutMs: 5_000, what: `${database}'s connections to close` }).catch(
    () => undefined,
  );
}

import pg from 'pg';
import { startupParameters } from './pool-options.js';
import { StartupError } from '../common/startup-error.js';
import { MIGRATIONS } from './migrations/index.js';
import { isTransientConnectionError, pgErrorCode, UNDEFINED_TABLE } from './pg-errors.js';

/** How long a process waits for a PostgreSQL that refuses connections or is starting up. */
export const CONNECT_WAIT_MS = 30_000;

/** What to run when migrations are missing, in the words of each way to run this. */
export const MIGRATE_HINT =
  'run the migrations first: npm run migration:run (in the image: node dist/migrate.js)';

/** "postgres@db:5432/pgwq": where a URL points, without its password. */
export function describeDatabase(databaseUrl: string): string {
  const url = new URL(databaseUrl);
  const user = url.username ? `${decodeURIComponent(url.username)}@` : '';
  return `${user}${url.hostname}:${url.port || 5432}${url.pathname}`;
}

function reason(error: unknown): string {
  const code = pgErrorCode(error);
  if (code === 'ECONNREFUSED') return 'connection refused';
  if (code === 'ENOTFOUND') return 'unknown host';
  return (error as Error)?.message || code || String(error);
}

/**
 * Opens one connection. A server that refuses connections, times out or is starting up is
 * waited for, up to `waitMs`; any other failure (no such database, a wrong password, an unknown
 * host) is a StartupError at once, in one line that says where and why.
 */
export async function connectOrExplain(
  databaseUrl: string,
  options: { waitMs?: number; onWait?: (line: string) => void } = {},
): Promise<pg.Client> {
  const deadline = Date.now() + (options.waitMs ?? CONNECT_WAIT_MS);
  let delay = 250;
  let told = false;
  for (;;) {
    const client = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: 5000 });
    client.on('error', () => undefined);
    try {
      await client.connect();
      return client;
    } catch (error) {
      await client.end().catch(() => undefined);
      const where = describeDatabase(databaseUrl);
      if (!isTransientConnectionError(error)) {
        throw new StartupError(`cannot connect to PostgreSQL at ${where}: ${reason(error)}`);
      }
      if (Date.now() + delay > deadline) {
        const waited = Math.round((options.waitMs ?? CONNECT_WAIT_MS) / 1000);
        throw new StartupError(
          `cannot connect to PostgreSQL at ${where}: ${reason(error)} (waited ${waited} s)`,
        );
      }
      if (!told) options.onWait?.(`waiting for PostgreSQL at ${where} (${reason(error)})`);
      told = true;
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 2000);
    }
  }
}

/** Anything that runs a query: a client or a pool. */
type Queryable = Pick<pg.ClientBase, 'query'>;

/**
 * The migrations this build has that the database lacks (all of them when it has no migrations
 * table at all). One query on a table of a handful of rows: cheap enough for every /health.
 */
export async function pendingMigrations(db: Queryable, schema: string): Promise<string[]> {
  const names = MIGRATIONS.map((m) => m.name);
  try {
    const { rows } = await db.query<{ name: string }>(
      `SELECT name FROM ${schema}.typeorm_migrations WHERE name = ANY($1::text[])`,
      [names],
    );
    const applied = new Set(rows.map((r) => r.name));
    return names.filter((n) => !applied.has(n));
  } catch (error) {
    if (pgErrorCode(error) === UNDEFINED_TABLE) return names;
    throw error;
  }
}

/**
 * One line for a database that lacks migrations, or undefined when it has them all. The public
 * /health leaves the names out.
 */
export function describePending(pending: string[], withNames = true): string | undefined {
  if (pending.length === 0) return undefined;
  if (pending.length === MIGRATIONS.length) return 'the database has no pg-webhook-queue tables';
  const names = withNames ? ` (${pending.join(', ')})` : '';
  return `the database lacks ${pending.length} migration(s)${names}`;
}

/**
 * What the API and the worker check before they start: the database answers (waiting a little
 * for one that is starting) and has every migration of this build. They never migrate it
 * themselves (docs/deployment.md, "Migrations"), so a missing one stops them here in one line.
 */
export async function checkDatabase(
  databaseUrl: string,
  schema: string,
  onWait?: (line: string) => void,
): Promise<void> {
  const client = await connectOrExplain(databaseUrl, { onWait });
  try {
    // Whether the pools can land in the schema: a pooler that drops the search_path stops us here.
    await startupParameters(databaseUrl, schema);
    const missing = describePending(await pendingMigrations(client, schema));
    if (missing) {
      throw new StartupError(`${missing} (${describeDatabase(databaseUrl)}); ${MIGRATE_HINT}`);
    }
  } finally {
    await client.end();
  }
}

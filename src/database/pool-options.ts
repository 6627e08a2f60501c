import { Logger } from '@nestjs/common';
import pg from 'pg';
import { StartupError } from '../common/startup-error.js';
import { DEFAULT_SCHEMA, searchPathOption } from './schema.js';

/**
 * Time limits of every pooled connection, API and worker alike (docs/configuration.md, "Database timeouts").
 * Without them a black-holed connection hangs a query until the kernel gives up (many minutes),
 * and requests queued behind a lock hold their connections until the pool is empty.
 */
export const DATABASE_TIMEOUTS = Object.freeze({
  /** Opening a connection, and waiting for a free one when the pool is full. */
  connectMs: 5_000,
  /** TCP keepalive probes start after this much silence, so a dead peer is noticed at all. */
  keepAliveInitialDelayMs: 10_000,
  /** Waiting for a row lock: a publish behind another transaction on its partition. */
  lockMs: 5_000,
  /** Any one statement, on the server. */
  statementMs: 30_000,
  /**
   * Any one query, on the client: a reply that never comes (the server or the route is gone),
   * where the server cannot cancel anything. The pool then drops the connection.
   */
  queryMs: 35_000,
  /** Closing the pool at shutdown. */
  closeMs: 5_000,
});

/** The server-side limits, sent as startup parameters where the server takes them. */
export type ServerTimeouts = Pick<pg.PoolConfig, 'lock_timeout' | 'statement_timeout'>;

const STARTUP_TIMEOUTS: ServerTimeouts = Object.freeze({
  lock_timeout: DATABASE_TIMEOUTS.lockMs,
  statement_timeout: DATABASE_TIMEOUTS.statementMs,
});

/**
 * The pools' connections: a pg.Client that always has an 'error' listener. pg reports a
 * connection the server dropped (a restart, a failover, pg_terminate_backend) as an 'error'
 * event on the client, and pg-pool takes its own listener off a client while it is checked out;
 * an 'error' event with no listener ends the process. A statement on the dead connection fails
 * and reports it to its caller, and the pool discards the connection when it comes back, so the
 * event itself needs nothing more.
 */
class PooledClient extends pg.Client {
  constructor(config?: string | pg.ClientConfig) {
    super(config);
    this.on('error', () => undefined);
  }
}

/** The pg.Pool options both pools share (TypeORM's takes them as `extra`). */
export function poolOptions(
  databaseUrl: string,
  applicationName: string,
  max: number,
  { timeouts, searchPath }: StartupParameters,
): pg.PoolConfig {
  return {
    connectionString: databaseUrl,
    application_name: applicationName,
    Client: PooledClient,
    max,
    connectionTimeoutMillis: DATABASE_TIMEOUTS.connectMs,
    keepAlive: true,
    keepAliveInitialDelayMillis: DATABASE_TIMEOUTS.keepAliveInitialDelayMs,
    ...timeouts,
    ...searchPath,
    query_timeout: DATABASE_TIMEOUTS.queryMs,
  };
}

/** What the pools send at startup: the server-side limits and the schema's search_path. */
export interface StartupParameters {
  timeouts: ServerTimeouts;
  searchPath: Pick<pg.ClientConfig, 'options'>;
}

const probes = new Map<string, Promise<StartupParameters>>();

/**
 * The startup parameters the pools may send, probed once per database URL, schema and process. A
 * stock PgBouncer refuses a connection that sends any parameter it does not track ("unsupported
 * startup parameter") unless its ignore_startup_parameters lists them: then the pools connect
 * without them. The time limits are then only warned about (none that the role or database sets
 * itself: ALTER ROLE … SET lock_timeout), but a schema other than public is required: without
 * its search_path the queue would read and write an application's tables of the same names, so
 * the role must set it, or the process stops here, in one line. A pooler that ignores `options`
 * (ignore_startup_parameters = options) is caught the same way: the search_path is checked.
 */
export function startupParameters(databaseUrl: string, schema: string): Promise<StartupParameters> {
  const key = `${schema} ${databaseUrl}`;
  let probe = probes.get(key);
  if (!probe) {
    probe = probeStartupParameters(databaseUrl, schema);
    probes.set(key, probe);
    probe.catch(() => probes.delete(key));
  }
  return probe;
}

async function probeStartupParameters(
  databaseUrl: string,
  schema: string,
): Promise<StartupParameters> {
  const searchPath = searchPathOption(schema);
  const connect = async (parameters: pg.ClientConfig) => {
    const client = new pg.Client({
      connectionString: databaseUrl,
      connectionTimeoutMillis: DATABASE_TIMEOUTS.connectMs,
      ...parameters,
    });
    client.on('error', () => undefined);
    await client.connect();
    return client;
  };
  let client: pg.Client;
  try {
    client = await connect({ ...STARTUP_TIMEOUTS, ...searchPath });
  } catch (error) {
    if (!/unsupported startup parameter/i.test((error as Error)?.message ?? '')) {
      // Not an answer about the parameters: the pools meet this failure and report it, as
      // ever (TypeORM waits for a server that is starting); probe again next time.
      probes.delete(`${schema} ${databaseUrl}`);
      return { timeouts: STARTUP_TIMEOUTS, searchPath };
    }
    // A pooler that takes the time limits (ignore_startup_parameters lists them) may still
    // refuse `options`: then the limits stay and the role's search_path must do.
    const withTimeouts =
      searchPath.options === undefined
        ? undefined
        : await connect(STARTUP_TIMEOUTS).catch(() => undefined);
    const plain = withTimeouts ?? (await connect({}));
    try {
      await requireSearchPath(plain, schema);
      if (!withTimeouts) await warnUnenforcedTimeouts(plain);
    } finally {
      await plain.end().catch(() => undefined);
    }
    return { timeouts: withTimeouts ? STARTUP_TIMEOUTS : {}, searchPath: {} };
  }
  try {
    await requireSearchPath(client, schema);
  } finally {
    await client.end().catch(() => undefined);
  }
  return { timeouts: STARTUP_TIMEOUTS, searchPath };
}

/** Throws unless a schema other than public comes first in the session's search_path. */
async function requireSearchPath(client: pg.Client, schema: string): Promise<void> {
  if (schema === DEFAULT_SCHEMA) return;
  const { rows } = await client.query<{ first: string }>(
    `SELECT trim(both ' "' from split_part(current_setting('search_path'), ',', 1)) AS first`,
  );
  if (rows[0].first !== schema) {
    throw new StartupError(
      `DATABASE_SCHEMA=${schema}, but the database (a pooler) refuses or ignores the startup ` +
        `parameter that sets search_path (its search_path is "${rows[0].first}"). Set it on ` +
        `the role the app logs in as: ALTER ROLE … IN DATABASE … SET search_path = ${schema} ` +
        '(docs/pooler.md)',
    );
  }
}

async function warnUnenforcedTimeouts(client: pg.Client): Promise<void> {
  const { rows } = await client.query<{ lock: string; statement: string }>(
    `SELECT current_setting('lock_timeout') AS lock,
            current_setting('statement_timeout') AS statement`,
  );
  const unenforced = [
    ...(rows[0].lock === '0' ? [`lock_timeout (${DATABASE_TIMEOUTS.lockMs / 1000} s)`] : []),
    ...(rows[0].statement === '0'
      ? [`statement_timeout (${DATABASE_TIMEOUTS.statementMs / 1000} s)`]
      : []),
  ];
  if (unenforced.length > 0) {
    new Logger('Database').warn(
      `the database (a pooler) refuses startup parameters, so ${unenforced.join(' and ')} ` +
        'are not enforced: a publish may wait on a lock and a statement run until the ' +
        `client gives up after ${DATABASE_TIMEOUTS.queryMs / 1000} s. Set them on the role ` +
        "the app logs in as (ALTER ROLE … IN DATABASE … SET lock_timeout = '5s'; " +
        'docs/pooler.md)',
    );
  }
}

/**
 * Waits for `promise` to settle, at most `ms`: true if it did, false on the deadline. Never
 * rejects. For shutdown steps that must not hang on a dead connection.
 */
export async function settledWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([promise.then(settled, settled), deadline]);
  } finally {
    clearTimeout(timer);
  }
}

const settled = () => true as const;

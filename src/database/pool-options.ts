import { Logger } from '@nestjs/common';
import pg from 'pg';

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

/** The pg.Pool options both pools share (TypeORM's takes them as `extra`). */
export function poolOptions(
  databaseUrl: string,
  applicationName: string,
  max: number,
  timeouts: ServerTimeouts,
): pg.PoolConfig {
  return {
    connectionString: databaseUrl,
    application_name: applicationName,
    max,
    connectionTimeoutMillis: DATABASE_TIMEOUTS.connectMs,
    keepAlive: true,
    keepAliveInitialDelayMillis: DATABASE_TIMEOUTS.keepAliveInitialDelayMs,
    ...timeouts,
    query_timeout: DATABASE_TIMEOUTS.queryMs,
  };
}

const probes = new Map<string, Promise<ServerTimeouts>>();

/**
 * The startup parameters the pools may send, probed once per database URL and process. A stock
 * PgBouncer refuses a connection that sends any parameter it does not track ("unsupported
 * startup parameter") unless its ignore_startup_parameters lists them: then the pools connect
 * without them, and one warning names the limits the server no longer enforces (none that the
 * role or database sets itself: ALTER ROLE … SET lock_timeout).
 */
export function serverTimeouts(databaseUrl: string): Promise<ServerTimeouts> {
  let probe = probes.get(databaseUrl);
  if (!probe) {
    probe = probeServerTimeouts(databaseUrl);
    probes.set(databaseUrl, probe);
    probe.catch(() => probes.delete(databaseUrl));
  }
  return probe;
}

async function probeServerTimeouts(databaseUrl: string): Promise<ServerTimeouts> {
  const connect = async (timeouts: ServerTimeouts) => {
    const client = new pg.Client({
      connectionString: databaseUrl,
      connectionTimeoutMillis: DATABASE_TIMEOUTS.connectMs,
      ...timeouts,
    });
    client.on('error', () => undefined);
    await client.connect();
    return client;
  };
  let client: pg.Client;
  try {
    client = await connect(STARTUP_TIMEOUTS);
  } catch (error) {
    if (!/unsupported startup parameter/i.test((error as Error)?.message ?? '')) {
      // Not an answer about the parameters: the pools meet this failure and report it, as
      // ever (TypeORM waits for a server that is starting); probe again next time.
      probes.delete(databaseUrl);
      return STARTUP_TIMEOUTS;
    }
    const plain = await connect({});
    try {
      const { rows } = await plain.query<{ lock: string; statement: string }>(
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
    } finally {
      await plain.end().catch(() => undefined);
    }
    return {};
  }
  await client.end().catch(() => undefined);
  return STARTUP_TIMEOUTS;
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

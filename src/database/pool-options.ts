import type pg from 'pg';

/**
 * Time limits of every pooled connection, API and worker alike (README, "Database timeouts").
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

/** The pg.Pool options both pools share (TypeORM's takes them as `extra`). */
export function poolOptions(
  databaseUrl: string,
  applicationName: string,
  max: number,
): pg.PoolConfig {
  return {
    connectionString: databaseUrl,
    application_name: applicationName,
    max,
    connectionTimeoutMillis: DATABASE_TIMEOUTS.connectMs,
    keepAlive: true,
    keepAliveInitialDelayMillis: DATABASE_TIMEOUTS.keepAliveInitialDelayMs,
    lock_timeout: DATABASE_TIMEOUTS.lockMs,
    statement_timeout: DATABASE_TIMEOUTS.statementMs,
    query_timeout: DATABASE_TIMEOUTS.queryMs,
  };
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

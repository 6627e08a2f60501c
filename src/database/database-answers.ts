import pg from 'pg';

const HEALTH_TIMEOUT_MS = 2000;

/**
 * Whether the database answers a trivial query within 2 s: the API's /health and the worker's.
 * A pool whose server is gone fails fast on connect; a hung connection fails on the deadline.
 */
export async function databaseAnswers(pool: pg.Pool): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      pool.query('SELECT 1'),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('timeout')), HEALTH_TIMEOUT_MS);
      }),
    ]);
    return true;
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

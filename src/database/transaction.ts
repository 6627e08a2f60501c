import type pg from 'pg';

/**
 * Runs `work` in a transaction on a pooled connection of its own: COMMIT when it returns,
 * ROLLBACK (by closing the connection) when it throws, and the error is thrown on. A connection
 * that failed is closed, never given back to the pool mid-transaction. (One that dies between two
 * statements makes the next one fail; its 'error' event is the pool's clients' to swallow:
 * PooledClient in pool-options.ts.)
 */
export async function inTransaction<T>(
  pool: pg.Pool,
  work: (client: pg.PoolClient) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  let failed = false;
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    failed = true;
    throw error;
  } finally {
    client.release(failed);
  }
}

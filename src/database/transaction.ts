import type pg from 'pg';

/**
 * Runs `work` in a transaction on a pooled connection of its own: COMMIT when it returns,
 * ROLLBACK (by closing the connection) when it throws, and the error is thrown on.
 *
 * pg-pool takes its 'error' listener off a connection while it is checked out, and a connection
 * that dies between two statements (a restart, pg_terminate_backend) says so with an 'error'
 * event, which without a listener ends the process. Here it is ignored: the next statement fails
 * and reports it. A connection that failed is closed, never given back to the pool mid-transaction.
 */
export async function inTransaction<T>(
  pool: pg.Pool,
  work: (client: pg.PoolClient) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  const ignore = () => undefined;
  client.on('error', ignore);
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
    client.off('error', ignore);
    client.release(failed);
  }
}

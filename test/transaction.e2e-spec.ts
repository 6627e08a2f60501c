import pg from 'pg';
import { inTransaction } from '../src/database/transaction.js';
import { createTestDatabase, TEST_SCHEMA, TestDatabase } from './helpers/db.js';
import { eventually } from './helpers/eventually.js';
import { searchPathOption } from '../src/database/schema.js';
import { poolOptions } from '../src/database/pool-options.js';

describe('inTransaction', () => {
  let db: TestDatabase;
  let pool: pg.Pool;

  beforeAll(async () => {
    db = await createTestDatabase();
    // As the app's pools are built (their clients swallow a dropped connection's 'error' event).
    pool = new pg.Pool(
      poolOptions(db.url, 'pgwq-transaction-test', 2, {
        timeouts: {},
        searchPath: searchPathOption(TEST_SCHEMA),
      }),
    );
    pool.on('error', () => undefined);
  });
  afterAll(async () => {
    await pool.end();
    await db.drop();
  });

  it('survives its connection dying between two statements, rolls back and says so', async () => {
    await db.pool.query('CREATE TABLE marks (n int)');
    const attempt = inTransaction(pool, async (client) => {
      await client.query('INSERT INTO marks VALUES (1)');
      const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      let ended = false;
      client.once('end', () => (ended = true));
      // Killed while idle in the transaction: pg reports it as an 'error' event, which would
      // end this process (and fail the test run) if the pool's clients did not listen for it.
      await db.pool.query('SELECT pg_terminate_backend($1)', [rows[0].pid]);
      await eventually(() => ended, { what: 'the connection to end' });
      await client.query('INSERT INTO marks VALUES (2)');
    });
    await expect(attempt).rejects.toThrow();
    expect((await db.pool.query('SELECT count(*)::int AS n FROM marks')).rows).toEqual([{ n: 0 }]);
    // The pool is still usable: the dead connection was not given back.
    const again = await inTransaction(pool, async (client) => {
      await client.query('INSERT INTO marks VALUES (3)');
      return (await client.query<{ n: number }>('SELECT count(*)::int AS n FROM marks')).rows[0].n;
    });
    expect(again).toBe(1);
  });
});

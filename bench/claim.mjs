// The claim query's cost on the current backlog: EXPLAIN ANALYZE of our worker's own claim
// statement (CLAIM_LINES from dist/delivery/delivery.sql.js, the batch size and lease the
// worker uses) inside a transaction that is rolled back, so the backlog stays as it was.
// Median execution time of `runs`, and the plan of the last run.
import { join } from 'node:path';
import { median, ROOT } from './lib/util.mjs';

export async function claimQueryMs(pool, { batch = 10, leaseMs = 30_000, runs = 7 } = {}) {
  let sql;
  try {
    ({ CLAIM_LINES: sql } = await import(join(ROOT, 'dist/delivery/delivery.sql.js')));
  } catch {
    return null; // no delivery engine in this build
  }
  if (!sql) return null;
  const client = await pool.connect();
  const times = [];
  let plan = '';
  try {
    for (let i = 0; i < runs; i++) {
      await client.query('BEGIN');
      try {
        const { rows } = await client.query(`EXPLAIN (ANALYZE, BUFFERS) ${sql}`, [batch, leaseMs]);
        plan = rows.map((r) => r['QUERY PLAN']).join('\n');
        times.push(Number(/Execution Time: ([\d.]+) ms/.exec(plan)?.[1]));
      } finally {
        await client.query('ROLLBACK');
      }
    }
  } finally {
    client.release();
  }
  return { ms: median(times), plan };
}

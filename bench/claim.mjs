// The claim query's cost on the current backlog: EXPLAIN ANALYZE of our worker's own claim
// statement (the body of the function pgwq_claim_lines, read from the database, prepared with
// the function's parameter types; the batch size and lease the worker uses) inside a transaction
// that is rolled back, so the backlog stays as it was. Median execution time of `runs`, and the
// plan of the last run.
import { median } from './lib/util.mjs';

export async function claimQueryMs(pool, { batch = 10, leaseMs = 30_000, runs = 7 } = {}) {
  const { rows: found } = await pool.query(
    `SELECT prosrc, pg_get_function_identity_arguments(oid) AS args
     FROM pg_proc WHERE proname = 'pgwq_claim_lines'`,
  );
  if (found.length === 0) return null; // no delivery engine in this database
  // Since per-webhook limits the function starts with the statement it runs while no webhook has
  // limits (as in the bench), ended by RETURN; before them it was its only statement.
  const body =
    /RETURN QUERY([\s\S]*?);\s*RETURN;/.exec(found[0].prosrc)?.[1] ??
    /RETURN QUERY([\s\S]*);\s*END\s*$/.exec(found[0].prosrc)?.[1];
  if (!body) return null;
  const client = await pool.connect();
  const times = [];
  let plan = '';
  try {
    await client.query(`PREPARE bench_claim (${found[0].args}) AS ${body}`);
    for (let i = 0; i < runs; i++) {
      await client.query('BEGIN');
      try {
        const { rows } = await client.query(
          `EXPLAIN (ANALYZE, BUFFERS) EXECUTE bench_claim(${batch}, ${leaseMs}, '{}', '{}', '{}', ${batch})`,
        );
        plan = rows.map((r) => r['QUERY PLAN']).join('\n');
        times.push(Number(/Execution Time: ([\d.]+) ms/.exec(plan)?.[1]));
      } finally {
        await client.query('ROLLBACK');
      }
    }
    await client.query('DEALLOCATE bench_claim');
  } finally {
    client.release();
  }
  return { ms: median(times), plan };
}

// The queue gauges' cost on the current backlog: EXPLAIN ANALYZE of the statement behind the API's
// per-webhook gauges (QUEUE_STATS from dist/metrics/queue-stats.sql.js, read-only). Median
// execution time of `runs`, and the plan of the last run.
import { join } from 'node:path';
import { median, ROOT } from './lib/util.mjs';

export async function queueStatsQueryMs(pool, { runs = 7 } = {}) {
  let sql;
  try {
    ({ QUEUE_STATS: sql } = await import(join(ROOT, 'dist/metrics/queue-stats.sql.js')));
  } catch {
    return null; // no metrics in this build
  }
  const times = [];
  let plan = '';
  for (let i = 0; i < runs; i++) {
    const { rows } = await pool.query(`EXPLAIN (ANALYZE, BUFFERS) ${sql}`);
    plan = rows.map((r) => r['QUERY PLAN']).join('\n');
    times.push(Number(/Execution Time: ([\d.]+) ms/.exec(plan)?.[1]));
  }
  return { ms: median(times), plan };
}

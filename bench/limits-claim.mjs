// The claim's cost with and without per-webhook limits, beside a baseline checkout:
//   node bench/limits-claim.mjs [--baseline DIR] [--calls N]
// Databases on DATABASE_URL's server (default postgres://postgres@127.0.0.1:5432/postgres), each
// with 100 due lines for each of two webhooks. Times pgwq_claim_lines(10 lines) in a transaction
// that is rolled back (the backlog stays due), the variants interleaved call by call so a busy
// machine slows them alike; prints the median per call and the ratio to the first.
//   baseline         the other checkout's claim
//   ours, no limits  no webhook has limits: the claim's first statement, as before
//   ours, limits elsewhere   a third webhook (no due lines) has a rate limit: the limits' way
//   ours, beside a limited webhook  the second webhook is limited to 1/s, its bucket empty
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { median, ROOT, now } from './lib/util.mjs';

const { values: args } = parseArgs({
  options: { baseline: { type: 'string' }, calls: { type: 'string', default: '300' } },
});
const server = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const urlFor = (db) => Object.assign(new URL(server), { pathname: `/${db}` }).toString();

async function prepare(label, root, limits) {
  const name = `pgwq_claimcost_${label}_${process.pid}`;
  const admin = new pg.Client({ connectionString: server });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${name}`);
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const { runMigrations } = await import(join(root, 'dist/database/migrate.js'));
  await runMigrations(urlFor(name));
  const pool = new pg.Pool({ connectionString: urlFor(name), max: 1 });
  await pool.query(`INSERT INTO topics (name) VALUES ('a'), ('b')`);
  await pool.query(`INSERT INTO webhooks (topic_id, url, secret) VALUES
    (1, 'http://127.0.0.1:9/a', 'whsec_x'), (1, 'http://127.0.0.1:9/b', 'whsec_x'),
    (2, 'http://127.0.0.1:9/c', 'whsec_x')`);
  await pool.query(`INSERT INTO messages (topic_id, partition_key, payload)
    SELECT 1, 'p' || (g % 100), '{"n": 1}'::jsonb FROM generate_series(1, 2000) g`);
  if (limits === 'elsewhere') {
    await pool.query(`UPDATE webhooks SET rate_limit_per_second = 5 WHERE id = 3`);
    await pool.query(`INSERT INTO webhook_limits (webhook_id, tokens) VALUES (3, 5)`);
  } else if (limits === 'beside') {
    await pool.query(`UPDATE webhooks SET rate_limit_per_second = 1 WHERE id = 2`);
    await pool.query(`INSERT INTO webhook_limits (webhook_id, tokens, tokens_at)
      VALUES (2, 0, now() + interval '1 day')`);
  }
  await pool.query('VACUUM ANALYZE');
  return { label, pool, name, times: [] };
}

const variants = [];
if (args.baseline) variants.push(await prepare('baseline', args.baseline));
variants.push(await prepare('nolimits', ROOT));
variants.push(await prepare('elsewhere', ROOT, 'elsewhere'));
variants.push(await prepare('beside', ROOT, 'beside'));
const LABELS = {
  baseline: 'baseline',
  nolimits: 'ours, no limits',
  elsewhere: 'ours, limits elsewhere',
  beside: 'ours, beside a limited webhook',
};
const clients = await Promise.all(variants.map((v) => v.pool.connect()));
for (let i = 0; i < Number(args.calls); i++) {
  for (const [k, v] of variants.entries()) {
    const c = clients[k];
    await c.query('BEGIN');
    const t = now();
    await c.query(`SELECT count(*) FROM pgwq_claim_lines(10, 30000, '{}', '{}', '{}', 10)`);
    v.times.push(now() - t);
    await c.query('ROLLBACK');
  }
}
const first = median(variants[0].times);
for (const v of variants) {
  const m = median(v.times);
  console.log(
    `${LABELS[v.label].padEnd(32)} ${(m * 1000).toFixed(0).padStart(6)} µs  ×${(m / first).toFixed(2)}`,
  );
}
clients.forEach((c) => c.release());
const admin = new pg.Client({ connectionString: server });
await admin.connect();
for (const v of variants) {
  await v.pool.end();
  await admin.query(`DROP DATABASE IF EXISTS ${v.name}`);
}
await admin.end();

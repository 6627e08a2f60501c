// Publish-to-POST latency on an idle system: one worker (`node dist/worker.js`), one loopback
// receiver, N sequential publishes (plain SQL INSERT, autocommit); each latency runs from just
// before the INSERT is sent to the moment the receiver has the whole request.
//
//   npm run build && DATABASE_URL=postgres://postgres@127.0.0.1:5432/test node bench/delivery-latency.mjs [N]
import { spawn } from 'node:child_process';
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { runMigrations } from '../dist/database/migrate.js';

const N = Number(process.argv[2] ?? 200);
const serverUrl = process.env.DATABASE_URL;
if (!serverUrl)
  throw new Error('set DATABASE_URL to a PostgreSQL server you may create databases on');
const name = `pgwq_bench_${randomBytes(4).toString('hex')}`;
const admin = new pg.Client({ connectionString: serverUrl });
await admin.connect();
await admin.query(`CREATE DATABASE ${name}`);
const url = new URL(serverUrl);
url.pathname = `/${name}`;
const dbUrl = url.toString();
await runMigrations(dbUrl);

let waiting;
const server = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    res.writeHead(204).end();
    waiting?.(performance.now());
  });
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const pool = new pg.Pool({ connectionString: dbUrl, max: 2 });
const { rows } = await pool.query(`INSERT INTO topics (name) VALUES ('bench') RETURNING id`);
const topicId = rows[0].id;
await pool.query(`INSERT INTO webhooks (topic_id, url, secret) VALUES ($1, $2, $3)`, [
  topicId,
  `http://127.0.0.1:${server.address().port}/hook`,
  'whsec_' + randomBytes(32).toString('base64'),
]);
const worker = spawn(process.execPath, ['dist/worker.js'], {
  env: {
    PATH: process.env.PATH,
    DATABASE_URL: dbUrl,
    WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true',
    METRICS_PORT: '0',
  },
  stdio: 'ignore',
});
try {
  const latencies = [];
  for (let i = -10; i < N; i++) {
    const arrived = new Promise((r) => (waiting = r));
    const start = performance.now();
    await pool.query(
      `INSERT INTO messages (topic_id, partition_key, payload) VALUES ($1, $2, '{"bench":true}')`,
      [topicId, `k${i % 10}`],
    );
    const end = await arrived;
    if (i >= 0) latencies.push(end - start); // the first 10 warm the worker up
  }
  latencies.sort((a, b) => a - b);
  const pct = (p) =>
    latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))];
  console.log(
    `${N} sequential publishes: p50 ${pct(50).toFixed(1)} ms, p95 ${pct(95).toFixed(1)} ms, ` +
      `max ${latencies.at(-1).toFixed(1)} ms`,
  );
} finally {
  worker.kill('SIGTERM');
  await new Promise((r) => worker.on('exit', r));
  await pool.end();
  server.close();
  await admin.query(`DROP DATABASE ${name} WITH (FORCE)`);
  await admin.end();
}

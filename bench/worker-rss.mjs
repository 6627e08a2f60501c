// One worker against a big backlog: its memory (RSS) and CPU per delivered message.
//
//   npm run build && node bench/worker-rss.mjs [--messages 1000000] [--partitions 1000]
//     [--deliver 30000] [--concurrency 10] [--root DIR] [--cpu-prof DIR] [--env K=V,K=V]
//
// Builds the backlog in one INSERT … SELECT generate_series through the fan-out trigger (one
// topic, one webhook; `messages` over `partitions` keys, 1 KB payloads), starts one
// `node dist/worker.js` of `--root` (this checkout by default; another built one to compare)
// with its defaults against the bench's receiver (answers 200 at once), and samples the worker's
// RSS every 100 ms until the receiver has `deliver` messages. Prints the RSS (peak, median and
// last sample), the CPU time (user + system, /proc/<pid>/stat) per delivered message after the
// first 10 % (start-up and warm-up left out), and the rate. `--cpu-prof DIR`: the worker writes
// a V8 CPU profile there when it stops (node --cpu-prof). Uses DATABASE_URL's server, else an
// embedded PostgreSQL.
import { mkdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ours, oursBaseline } from './systems/index.mjs';
import {
  cpuMs,
  createDatabase,
  median,
  now,
  ROOT,
  sleep,
  startDatabaseServer,
  startReceiver,
} from './lib/util.mjs';

const { values: args } = parseArgs({
  options: {
    messages: { type: 'string', default: '1000000' },
    partitions: { type: 'string', default: '1000' },
    deliver: { type: 'string', default: '30000' },
    concurrency: { type: 'string', default: '10' },
    root: { type: 'string' },
    'cpu-prof': { type: 'string' },
    env: { type: 'string', default: '' },
  },
});
const messages = Number(args.messages);
const partitions = Number(args.partitions);
const deliver = Math.min(Number(args.deliver), messages);
const root = args.root ? resolve(args.root) : ROOT;
const extraEnv = Object.fromEntries(
  args.env
    .split(',')
    .filter(Boolean)
    .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
);
const log = (...a) => console.error(...a);

function rssMiB(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1]) / 1024;
  } catch {
    return null;
  }
}

const server = await startDatabaseServer();
const receiver = await startReceiver();
const db = await createDatabase(server.url, 'rss');
const system = args.root ? oursBaseline(root) : ours;
const ctx = await system.prepare(db, receiver.url, { webhooks: 1 });
try {
  const t = now();
  await ctx.pool.query(
    `INSERT INTO messages (topic_id, partition_key, payload)
     SELECT $1, 'p' || (g % $3), jsonb_build_object('event', 'bench.message', 'i', g, 'pad', repeat('x', 980))
     FROM generate_series(1, $2) g`,
    [ctx.topicId, messages, partitions],
  );
  log(
    `backlog: ${messages} messages over ${partitions} partitions in ${((now() - t) / 1000).toFixed(1)} s`,
  );
  await ctx.pool.query('VACUUM ANALYZE deliveries');
  await ctx.pool.query('VACUUM ANALYZE delivery_lines');
  await receiver.reset({ delayMs: 0 });
  // On the command line, not in NODE_OPTIONS: Node.js 20 refuses --cpu-prof there.
  const nodeArgs = [];
  if (args['cpu-prof']) {
    mkdirSync(resolve(args['cpu-prof']), { recursive: true });
    nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${resolve(args['cpu-prof'])}`);
  }
  const workers = await system.startWorkers(ctx, {
    workers: 1,
    concurrency: Number(args.concurrency),
    env: extraEnv,
    nodeArgs,
  });
  const pid = workers.pids[0];
  const samples = [];
  let warm = null;
  let last = { delivered: 0 };
  const deadline = now() + 30 * 60_000;
  try {
    while (now() < deadline) {
      const rss = rssMiB(pid);
      if (rss === null) throw new Error(`the worker exited: ${workers.errors()}`);
      samples.push(rss);
      const s = await receiver.stats();
      last = { delivered: s.distinctOk, at: now(), cpu: cpuMs(pid), violations: s.violations };
      if (!warm && s.distinctOk >= deliver / 10) warm = last;
      if (s.distinctOk >= deliver) break;
      await sleep(100);
    }
  } finally {
    await workers.stop();
  }
  const sorted = [...samples].sort((a, b) => a - b);
  const n = last.delivered - warm.delivered;
  console.log(
    JSON.stringify(
      {
        root,
        messages,
        partitions,
        delivered: last.delivered,
        outOfOrder: last.violations,
        rssMiB: {
          peak: Math.round(sorted.at(-1)),
          median: Math.round(median(samples)),
          last: Math.round(samples.at(-1)),
        },
        cpuUsPerMessage: Math.round(((last.cpu - warm.cpu) * 1000) / n),
        msgPerSecond: Math.round((n * 1000) / (last.at - warm.at)),
      },
      null,
      1,
    ),
  );
} finally {
  await system.close(ctx);
  await db.drop();
  await receiver.stop();
  await server.stop();
}

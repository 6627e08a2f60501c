// `npm run bench` (quick: 3 rounds; docs/benchmarks.md says how long it takes here) and
// `npm run bench -- --full` (20,000-message runs, delivery with 4 workers too, and scale).
// Ordered delivery runs with one webhook and with ten (each message to each, a tenth the messages).
//
// Builds the project, starts its own PostgreSQL (DATABASE_URL, else an embedded one in a temp
// dir) and a receiver process, then runs every scenario for each system in turn, round after
// round (the order of systems rotates each round), and prints one table of medians with ratios.
// Results go to bench/results/<timestamp>.json and .svg; a complete run (no --only, no
// --systems) also to latest.svg and latest.md, the chart and table docs/benchmarks.md shows.
//
// Options: --full, --rounds N, --receiver-delay-ms N, --concurrency N, --payload-bytes N,
// --retention-rows N (delivered rows the retention scenario deletes; 1,000,000),
// --only a,b (scenarios: publish, batch, delivery, failure, hot, manners, latency, scale, retention;
// scale and retention only with --full or when named),
// --systems a,b (ours, pgbouncer, async, graphile, graphile-default, pgboss, raw, raw-recorded;
// all by default; graphile is graphile-worker with its fastest settings, graphile-default with
// its defaults, raw-recorded the raw loop that commits DESIGN's records after each 2xx),
// --no-build,
// --baseline DIR (another checkout, built: its `ours, baseline` runs beside ours in the delivery
// and hot rows, so a change shows before and after side by side in one run).
//
// "ours via PgBouncer" runs our workers through a PgBouncer in transaction mode that the bench
// starts on its server (skipped when the pgbouncer binary is missing).
import { execFileSync } from 'node:child_process';
import { cpus, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { cpuLine, deliveryRun } from './delivery.mjs';
import { latencyRun, sqlPublishRound } from './scenarios.mjs';
import { mannersRound } from './manners.mjs';
import { scaleRun } from './scale.mjs';
import { batchPublishRound, retentionRun } from './publishing.mjs';
import { saveResults, summarise } from './report.mjs';
import {
  graphile,
  graphileDefault,
  ours,
  oursAsyncCommit,
  oursBaseline,
  oursThroughPgBouncer,
  pgboss,
  raw,
  rawRecorded,
} from './systems/index.mjs';
import { ROOT, serverVersion, startDatabaseServer, startReceiver } from './lib/util.mjs';

const { values: args } = parseArgs({
  options: {
    full: { type: 'boolean', default: false },
    rounds: { type: 'string' },
    'receiver-delay-ms': { type: 'string', default: '0' },
    concurrency: { type: 'string', default: '10' },
    'payload-bytes': { type: 'string', default: '1024' },
    'retention-rows': { type: 'string', default: '1000000' },
    only: { type: 'string' },
    systems: { type: 'string' },
    'no-build': { type: 'boolean', default: false },
    baseline: { type: 'string' },
  },
});
const full = args.full;
const rounds = Number(args.rounds ?? (full ? 5 : 3));
const only = args.only ? new Set(args.only.split(',')) : null;
/** A run of some scenarios or systems only: it must not replace the chart and table of docs/benchmarks.md. */
const partial = Boolean(args.only || args.systems || args.baseline);
const wants = (s) => (only ? only.has(s) : !['scale', 'retention'].includes(s) || full);
const log = (...a) => console.error(...a);

const P = full
  ? { deliveryMessages: 20_000, failureMessages: 20_000, hotMessages: 2_000, latencySeconds: 10 }
  : { deliveryMessages: 4_000, failureMessages: 2_000, hotMessages: 500, latencySeconds: 3 };

if (!args['no-build']) {
  log('building (npm run build)…');
  execFileSync('npm', ['run', 'build'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
}

const server = await startDatabaseServer();
const receiver = await startReceiver();
const { findPgBouncer, startPgBouncer } = await import(join(ROOT, 'dist/database/pgbouncer.js'));
// One PgBouncer for the whole run, in transaction mode, 20 server connections per database.
const bouncer = findPgBouncer()
  ? await startPgBouncer({ serverUrl: server.url, poolMode: 'transaction', poolSize: 20 })
  : null;
if (bouncer) log(`PgBouncer ${bouncer.version} in transaction mode for "ours via PgBouncer"`);
else log('pgbouncer is not installed (apt-get install pgbouncer): "ours via PgBouncer" skipped');
const oursPooled = bouncer ? oursThroughPgBouncer(bouncer) : null;
const baseline = args.baseline ? oursBaseline(resolve(args.baseline)) : null;
const env = {
  server,
  receiver,
  log,
  concurrency: Number(args.concurrency),
  payloadBytes: Number(args['payload-bytes']),
  receiverDelayMs: Number(args['receiver-delay-ms']),
  timeoutMs: full ? 180_000 : 15_000,
  // A failed attempt is retried after BACKOFF_FACTOR^n s: 0.5 s, then 0.25 s, …, close to
  // pg-boss's 1 s retryDelay and below graphile-worker's fixed e^n s.
  oursEnv: { BACKOFF_FACTOR: '0.5', MAX_RETRIES: '25' },
};

/** @type {{scenario: string, variant: string, system: string, unit: string, values: (number|null)[], better: 'higher'|'lower', extra?: any}[]} */
const rows = [];
function record(scenario, variant, system, unit, value, better = 'higher', extra) {
  let row = rows.find(
    (r) => r.scenario === scenario && r.variant === variant && r.system === system,
  );
  if (!row) {
    row = { scenario, variant, system, unit, values: [], better, extras: [] };
    rows.push(row);
  }
  row.values.push(value);
  if (extra) row.extras.push(extra);
}

const SHORT = new Map([
  [ours, 'ours'],
  [oursPooled, 'pgbouncer'],
  [oursAsyncCommit, 'async'],
  [graphile, 'graphile'],
  [graphileDefault, 'graphile-default'],
  [pgboss, 'pgboss'],
  [raw, 'raw'],
  [rawRecorded, 'raw-recorded'],
  [baseline, 'baseline'],
]);
const chosen = args.systems ? new Set(args.systems.split(',')) : null;
const rotate = (xs, k) =>
  xs
    .filter((s) => s !== null)
    .map((_, i, present) => present[(i + k) % present.length])
    .filter((s) => !chosen || chosen.has(SHORT.get(s)));
const queues = [ours, graphile, pgboss];
// Ours again where ours alone is measured: through PgBouncer, and with results committed
// without waiting for the WAL flush.
const variants = [baseline, oursPooled, oursAsyncCommit];
// pg-boss delivers ~200 msg/s here and would sit out every quick run's 15-s deadline; its rate
// is what it delivered in its time either way, so the quick run gives it 6 s.
const deadline = (system) => (system === pgboss && !full ? 6_000 : undefined);
const C = env.concurrency;
const started = new Date();
const plans = {};

async function safely(what, fn) {
  try {
    return await fn();
  } catch (error) {
    log(`  ${what} failed: ${error?.stack ?? error}`);
    return null;
  }
}

/** One round of ordered delivery by `systems` with `workers` workers to `webhooks` webhooks. */
async function deliveryRows(round, systems, workers, webhooks) {
  const messages = P.deliveryMessages / webhooks;
  const fanOut = webhooks === 1 ? '' : ` x ${webhooks} webhooks`;
  for (const system of rotate(systems, round)) {
    const r = await safely(system.name, () =>
      deliveryRun(env, system, {
        messages,
        partitions: 100,
        workers,
        webhooks,
        timeoutMs: deadline(system),
      }),
    );
    log(
      `  delivery x${workers}${webhooks === 1 ? '' : `, ${webhooks} webhooks`} ${system.name}: ${r?.throughput?.toFixed(0)}/s, ${r?.violations} out of order; ` +
        `CPU per delivery ${cpuLine(r?.cpuPerMessageUs)}`,
    );
    record(
      'ordered delivery',
      `${messages} msgs${fanOut} / 100 partitions, ${workers} worker(s) x ${C}`,
      system.name,
      webhooks === 1 ? 'msg/s' : 'deliveries/s',
      r?.throughput ?? null,
      'higher',
      r,
    );
  }
}

for (let round = 0; round < rounds; round++) {
  log(`round ${round + 1}/${rounds}`);
  if (wants('publish')) {
    const r = await safely('publish', () =>
      sqlPublishRound(env, {
        producers: 8,
        seconds: full ? 5 : 2,
        batches: 5,
        apiConnections: 32,
        apiSeconds: full ? 5 : 2,
      }),
    );
    for (const [variant, v] of Object.entries(r ?? {})) {
      const [what, target] = variant.split(': ');
      record('publish', what, target, 'msg/s', v);
    }
  }
  if (wants('batch')) {
    const r = await safely('batch', () =>
      batchPublishRound(env, { seconds: full ? 10 : 5, connections: 32, sizes: [100, 1000] }),
    );
    for (const [variant, v] of Object.entries(r ?? {})) {
      log(`  batch ${variant}: ${v.toFixed(0)} msg/s`);
      record('batch publish', variant, 'ours', 'msg/s', v);
    }
  }
  if (wants('delivery')) {
    for (const workers of full ? [1, 2, 4] : [1, 2]) {
      // 4 workers (--full) for docs/scaling.md: ours against the raw ceiling and floor only.
      const systems =
        workers === 4
          ? [ours, baseline, raw, rawRecorded]
          : [...queues, graphileDefault, ...variants, raw, rawRecorded];
      await deliveryRows(round, systems, workers, 1);
      // Ten webhooks on the topic, each message POSTed to each: a tenth of the messages.
      if (workers < 4)
        await deliveryRows(round, [ours, baseline, graphileDefault, rawRecorded], workers, 10);
    }
  }
  if (wants('failure')) {
    for (const system of rotate(queues, round)) {
      const r = await safely(system.name, () =>
        deliveryRun(env, system, {
          messages: P.failureMessages,
          partitions: 100,
          workers: 1,
          failRate: 0.01,
          timeoutMs: deadline(system),
        }),
      );
      log(
        `  failure ${system.name}: ${r?.violations} out of order, ${r?.throughput?.toFixed(0)} msg/s`,
      );
      record(
        'order under 1% failures',
        `${P.failureMessages} msgs, arrivals out of order`,
        system.name,
        'count',
        r?.violations ?? null,
        'lower',
        r,
      );
      record(
        'order under 1% failures',
        `${P.failureMessages} msgs, throughput`,
        system.name,
        'msg/s',
        r?.throughput ?? null,
        'higher',
      );
    }
  }
  if (wants('hot')) {
    for (const system of rotate([ours, ...variants, graphile, pgboss, raw, rawRecorded], round)) {
      const r = await safely(system.name, () =>
        deliveryRun(env, system, {
          messages: P.hotMessages,
          partitions: 1,
          workers: 1,
          // The raw reference for one partition is the sequential loop: one request at a time
          // (with the others' 10 lanes it would not keep the partition's order).
          concurrency: system === raw ? 1 : undefined,
          prefix: 'hot',
          timeoutMs: deadline(system),
        }),
      );
      log(
        `  hot ${system.name}: ${r?.throughput?.toFixed(0)} msg/s; CPU per message ${cpuLine(r?.cpuPerMessageUs)}`,
      );
      record(
        'hot partition',
        `${P.hotMessages} msgs on one key`,
        system.name === raw.name ? 'raw sequential loop' : system.name,
        'msg/s',
        r?.throughput ?? null,
        'higher',
        r,
      );
    }
  }
  if (wants('manners') && (!chosen || chosen.has('ours'))) {
    await mannersRound(env, round, { messages: P.deliveryMessages, record, safely });
  }
  if (wants('latency')) {
    for (const system of rotate([ours, ...variants, graphile, pgboss, raw], round)) {
      const r = await safely(system.name, () =>
        latencyRun(env, system, { rate: 200, seconds: P.latencySeconds, partitions: 100 }),
      );
      log(
        `  latency ${system.name}: p50 ${r?.p50?.toFixed(1)} p95 ${r?.p95?.toFixed(1)} p99 ${r?.p99?.toFixed(1)} ms`,
      );
      for (const p of ['p50', 'p95', 'p99']) {
        record(
          'latency',
          `publish→arrival ${p} at 200 msg/s`,
          system.name,
          'ms',
          r?.[p] ?? null,
          'lower',
        );
      }
    }
  }
  // Scale builds a backlog of up to 1,000,000 rows: once, in the first round only.
  if (wants('scale') && round === 0) {
    for (const backlog of [10_000, 1_000_000]) {
      const r = await safely('scale', () => scaleRun(env, { backlog }));
      if (!r) continue;
      const { claimPlan, queueStatsPlan, ...numbers } = r;
      log(`  scale ${backlog}: ${JSON.stringify(numbers)}`);
      if (claimPlan) log(`  claim plan at ${backlog} pending:\n${claimPlan}`);
      if (queueStatsPlan) log(`  queue gauges plan at ${backlog} pending:\n${queueStatsPlan}`);
      plans[backlog] = claimPlan;
      const v = `${backlog.toLocaleString('en')} pending`;
      record('scale', `delivery, ${v}`, 'ours', 'msg/s', r.throughput);
      record('scale', `claim query, ${v}`, 'ours', 'ms', r.claimMs, 'lower');
      record('scale', `queue gauges query, ${v}`, 'ours', 'ms', r.queueStatsMs, 'lower');
      record('scale', `worker peak RSS, ${v}`, 'ours', 'MiB', r.peakRssMiB, 'lower');
      record(
        'scale',
        `backlog build, one INSERT…SELECT, ${v}`,
        'ours',
        'rows/s',
        r.buildRowsPerSecond,
      );
    }
  }
}

// Retention deletes a million rows: once, after the rounds.
if (wants('retention')) {
  const r = await safely('retention', () =>
    retentionRun(env, {
      rows: Number(args['retention-rows']),
      windowSeconds: 20,
      timeoutSeconds: 900,
    }),
  );
  if (r) {
    log(`  retention: ${JSON.stringify(r)}`);
    const v = `${r.rows.toLocaleString('en')} delivered`;
    record('retention', `delete ${v}, time`, 'ours', 's', r.deleteSeconds, 'lower', r);
    record('retention', `delete ${v}, rows/s`, 'ours', 'rows/s', r.deletedPerSecond);
    for (const phase of ['before', 'during', 'after']) {
      const m = r[phase];
      record('retention', `delivery rate, ${phase}`, 'ours', 'msg/s', m.deliveryRate);
      record('retention', `API publish p50, ${phase}`, 'ours', 'ms', m.publishP50, 'lower');
      record('retention', `API publish p95, ${phase}`, 'ours', 'ms', m.publishP95, 'lower');
    }
  }
}

// ---- report -------------------------------------------------------------------------------
const pgVersion = await serverVersion(server.url);
await receiver.stop();
await bouncer?.stop();
await server.stop();

const { lines, targetLines, floorLines } = summarise(rows, P, {
  raw,
  rawRecorded,
  graphileDefault,
});

const machine = `${cpus().length} cores (${cpus()[0]?.model.trim()}), ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}, PostgreSQL ${pgVersion}${server.embedded ? ' (embedded)' : ''}`;
const command = `npm run bench${
  process.argv.length > 2
    ? ` -- ${process.argv
        .slice(2)
        .filter((a) => a !== '--no-build')
        .join(' ')}`
    : ''
}`.trim();
console.log(
  `\n${command}\n${machine}; ${rounds} rounds, medians; concurrency ${C} per worker, ${env.payloadBytes} B payloads, receiver delay ${env.receiverDelayMs} ms\n`,
);
console.log(lines.join('\n'));
console.log(`\nTargets:\n${targetLines.join('\n')}`);
if (floorLines.length) console.log(`\nFloors of the contract here:\n${floorLines.join('\n')}`);

await saveResults(
  {
    command,
    machine,
    started: started.toISOString(),
    rounds,
    concurrency: C,
    payloadBytes: env.payloadBytes,
    receiverDelayMs: env.receiverDelayMs,
    rows,
    targets: targetLines,
    floors: floorLines,
    table: lines,
    claimPlans: plans,
  },
  { started, partial, log },
);
process.exit(0);

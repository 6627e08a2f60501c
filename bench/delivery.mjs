// Ordered delivery of a backlog (`npm run bench`, scenario delivery): the messages, the run, and
// the system it runs on. With `webhooks` > 1 every message goes to each of that many webhooks
// (receiver URLs that differ by their query string), and the receiver judges order per
// (webhook, partition).
import { makePayload } from './lib/sender.mjs';
import { cpuMs, createDatabase, now, peakRssMiB, until } from './lib/util.mjs';
import { BENCH_APPLICATION_NAME } from './systems/index.mjs';

/** n messages round-robin over `partitions` keys, numbered per partition from 1. */
export function makeMessages(n, partitions, payloadBytes, prefix = 'p') {
  const seq = new Map();
  return Array.from({ length: n }, (_, i) => {
    const partition = `${prefix}${i % partitions}`;
    const sequence = (seq.get(partition) ?? 0) + 1;
    seq.set(partition, sequence);
    const payload = makePayload(payloadBytes, i);
    return {
      id: i + 1,
      topic: 'bench',
      partition,
      sequence,
      payload,
      body: JSON.stringify(payload),
    };
  });
}

/** Runs `fn(ctx, db)` on `system` prepared in a new database (none for raw HTTP), then drops it. */
export async function withSystem(env, system, label, fn, { webhooks = 1 } = {}) {
  const db = system.name === 'raw HTTP' ? null : await createDatabase(env.server.url, label);
  const ctx = await system.prepare(db, env.receiver.url, { webhooks });
  try {
    return await fn(ctx, db);
  } finally {
    await system.close(ctx);
    await db?.drop();
  }
}

/**
 * Ordered delivery of a backlog: workers are started and ready, then the whole backlog is
 * enqueued; throughput counts from the first arrival to the last first-2xx, so process start-up
 * is not in it. Also returns the order violations the receiver saw and the workers' peak RSS.
 * With `o.webhooks` (default 1) each message is delivered to that many webhooks: the rate and
 * CPU are per delivery, one (webhook, message).
 */
export async function deliveryRun(env, system, o) {
  const webhooks = o.webhooks ?? 1;
  return withSystem(
    env,
    system,
    'deliv',
    async (ctx) => {
      const messages = makeMessages(o.messages, o.partitions, env.payloadBytes, o.prefix);
      const deliveries = messages.length * webhooks;
      await env.receiver.reset({ delayMs: env.receiverDelayMs, failRate: o.failRate ?? 0 });
      const workers = await system.startWorkers(ctx, {
        workers: o.workers,
        concurrency: o.concurrency ?? env.concurrency,
        env: env.oursEnv,
      });
      let rss = [];
      // CPU per delivered message, by process: the workers, the server processes of this database
      // but the bench's own (its enqueue, the publishing, is not delivery), the receiver.
      const backends = async () =>
        !ctx.pool
          ? [] // raw HTTP: no database
          : (
              await ctx.pool.query(
                `SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name <> $2`,
                [ctx.db.name, BENCH_APPLICATION_NAME],
              )
            ).rows.map((r) => r.pid);
      // pid → CPU ms now, per group; a process gone by the end is left out of both counts.
      const cpu = async () => ({
        workers: new Map(workers.pids.map((pid) => [pid, cpuMs(pid)])),
        database: new Map((await backends()).map((pid) => [pid, cpuMs(pid)])),
        receiver: new Map([[env.receiver.pid, cpuMs(env.receiver.pid)]]),
      });
      const cpuBefore = await cpu();
      try {
        const enqueuedAt = now();
        await system.enqueue(ctx, messages);
        const enqueueMs = now() - enqueuedAt;
        const done = await until(
          async () => {
            rss = workers.pids.map(peakRssMiB);
            return (await env.receiver.stats()).distinctOk >= deliveries;
          },
          o.timeoutMs ?? env.timeoutMs,
          100,
        );
        const s = await env.receiver.stats();
        const cpuAfter = await cpu();
        const cpuPerMessageUs = Object.fromEntries(
          Object.entries(cpuAfter).map(([group, after]) => {
            let ms = 0;
            for (const [pid, t] of after) ms += t - (cpuBefore[group].get(pid) ?? 0);
            return [group, Math.round((ms * 1000) / Math.max(1, s.distinctOk))];
          }),
        );
        const seconds = ((s.lastOkAt ?? now()) - (s.firstAt ?? now())) / 1000;
        if (!done) {
          env.log(`  ${system.name}: ${s.distinctOk}/${deliveries} delivered before the deadline`);
          const errors = workers.errors();
          if (errors) env.log(errors.slice(-1500));
        }
        return {
          // An unfinished run still has a rate (what it delivered in its time); `complete` tells.
          throughput: s.distinctOk > 1 && seconds > 0 ? s.distinctOk / seconds : null,
          complete: done,
          delivered: s.distinctOk,
          requests: s.requests,
          violations: s.violations,
          enqueueMs,
          cpuPerMessageUs,
          peakRssMiB: Math.max(...rss.filter((x) => x != null)),
        };
      } finally {
        await workers.stop();
      }
    },
    { webhooks },
  );
}

/** "workers 900 µs, database 300 µs, receiver 150 µs" (deliveryRun's cpuPerMessageUs). */
export const cpuLine = (us) =>
  us
    ? Object.entries(us)
        .map(([k, v]) => `${k} ${v} µs`)
        .join(', ')
    : 'n/a';

// Scale (--full): our worker against a backlog of pending deliveries, built in ONE
// INSERT … SELECT generate_series through the trigger (so its time is also the set-based
// fan-out's cost for a huge multi-row INSERT). Measures the claim query on that backlog
// (EXPLAIN ANALYZE, rolled back), the statement behind the API's queue gauges, delivery
// throughput over the first `sample` deliveries, and the worker's peak RSS.
//
// Both backlogs spread over the same 10,000 partitions, so the claim sees the same number of
// lines and only the pending deliveries grow (1 vs 100 per line). (Before the SequenceRuns
// migration, fewer and fuller partitions in ONE statement were quadratic in rows per key: each
// row updated its partition's counter row again in the same transaction and every lookup walked
// the growing version chain; 1,000,000 rows over 100 keys did not finish in 5 minutes.)
import { ours } from './systems/index.mjs';
import { createDatabase, now, peakRssMiB, until } from './lib/util.mjs';
import { claimQueryMs } from './claim.mjs';
import { queueStatsQueryMs } from './queue-stats.mjs';

export async function scaleRun(env, { backlog, partitions = 10_000, sample = 10_000 }) {
  const db = await createDatabase(env.server.url, 'scale');
  const ctx = await ours.prepare(db, env.receiver.url, { webhooks: 1 });
  try {
    const pad = Math.max(0, env.payloadBytes - 40);
    const t = now();
    await ctx.pool.query(
      `INSERT INTO messages (topic_id, partition_key, payload)
       SELECT $1, 'p' || (g % $3), jsonb_build_object('event', 'bench.message', 'i', g, 'pad', repeat('x', $4))
       FROM generate_series(1, $2) g`,
      [ctx.topicId, backlog, partitions, pad],
    );
    const buildSeconds = (now() - t) / 1000;
    await ctx.pool.query('VACUUM ANALYZE deliveries');
    await ctx.pool.query('VACUUM ANALYZE delivery_lines');
    const claim = await claimQueryMs(ctx.pool);
    const queueStats = await queueStatsQueryMs(ctx.pool);

    await env.receiver.reset({ delayMs: env.receiverDelayMs });
    const workers = await ours.startWorkers(ctx, {
      workers: 1,
      concurrency: env.concurrency,
      env: env.oursEnv,
    });
    let rss = null;
    try {
      const target = Math.min(sample, backlog);
      await until(
        async () => {
          rss = peakRssMiB(workers.pids[0]) ?? rss;
          return (await env.receiver.stats()).distinctOk >= target;
        },
        env.timeoutMs,
        100,
      );
      const s = await env.receiver.stats();
      const seconds = ((s.lastOkAt ?? now()) - (s.firstAt ?? now())) / 1000;
      return {
        backlog,
        buildSeconds,
        buildRowsPerSecond: backlog / buildSeconds,
        claimMs: claim?.ms ?? null,
        claimPlan: claim?.plan ?? null,
        queueStatsMs: queueStats?.ms ?? null,
        queueStatsPlan: queueStats?.plan ?? null,
        throughput: s.distinctOk > 1 ? s.distinctOk / seconds : null,
        delivered: s.distinctOk,
        violations: s.violations,
        peakRssMiB: rss,
      };
    } finally {
      await workers.stop();
    }
  } finally {
    await ours.close(ctx);
    await db.drop();
  }
}

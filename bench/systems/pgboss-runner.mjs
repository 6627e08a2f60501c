// pg-boss 10 as a bench baseline, in a process of its own, on a queue with the `singleton`
// policy and singletonKey = the partition: the closest pg-boss 10 has to per-key FIFO (at most
// one active job per key; strict per-key FIFO, `key_strict_fifo`, needs pg-boss 12 and Node 22).
//
// Its fastest shape here: `CONCURRENCY` polling loops, each fetching a batch of up to
// `PGBOSS_BATCH` jobs (a singleton fetch takes at most one job per key per batch) and POSTing
// them one after another, so CONCURRENCY requests are in flight. pg-boss 10 sleeps
// pollingIntervalSeconds (at least 0.5 s) minus the batch's duration after every fetch, so a
// batch of one would cap each loop at 2 jobs/s. A job that gets no 2xx is failed on its own
// (boss.fail) and retried by pg-boss; the rest of the batch goes on and completes.
import PgBoss from 'pg-boss';
import { makeClient, postWebhook } from '../lib/sender.mjs';

const concurrency = Number(process.env.CONCURRENCY ?? 10);
const batchSize = Number(process.env.PGBOSS_BATCH ?? 50);
const url = process.env.RECEIVER_URL;
const queue = process.env.QUEUE ?? 'deliver';
const client = makeClient(concurrency);

const boss = new PgBoss({
  connectionString: process.env.DATABASE_URL,
  max: concurrency + 2,
  supervise: false,
  schedule: false,
  migrate: false,
});
boss.on('error', (e) => console.error('[pg-boss]', e.message));
// A deadlock between two loops' completions must not end the runner: pg-boss retries the job.
process.on('unhandledRejection', (e) => console.error('[pg-boss runner]', e?.message ?? e));
await boss.start();
for (let i = 0; i < concurrency; i++) {
  await boss.work(
    queue,
    { batchSize, pollingIntervalSeconds: 0.5, includeMetadata: true },
    async (jobs) => {
      for (const job of jobs) {
        const ok = await postWebhook(client, url, { ...job.data, attempt: job.retryCount + 1 });
        // One job at a time, so concurrent loops never complete overlapping id sets (pg-boss's
        // own end-of-batch complete then finds nothing left active).
        if (ok) await boss.complete(queue, job.id);
        else await boss.fail(queue, job.id, { error: 'webhook answered non-2xx' });
      }
    },
  );
}
process.send?.({ ready: true });
process.on('SIGTERM', () => {
  boss.stop({ graceful: false, wait: true }).finally(() => process.exit(0));
});

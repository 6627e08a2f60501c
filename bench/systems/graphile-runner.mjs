// graphile-worker as a bench baseline, in a process of its own: one runner with `CONCURRENCY`
// jobs at once, and a task that POSTs with the same client and headers as everyone else, to the
// job's url when it has one (a run with several webhooks). A job that gets no 2xx throws, so
// graphile-worker retries it with its own backoff. GRAPHILE_FASTEST=1: its fastest settings (a
// local queue and batched completion/failure); otherwise its defaults.
import { Logger, run } from 'graphile-worker';
import { makeClient, postWebhook } from '../lib/sender.mjs';

const concurrency = Number(process.env.CONCURRENCY ?? 10);
const url = process.env.RECEIVER_URL;
const client = makeClient(concurrency);

const runner = await run({
  connectionString: process.env.DATABASE_URL,
  concurrency,
  noHandleSignals: true,
  pollInterval: 1000,
  // Quiet: a failed attempt is expected here (the failure scenario) and not worth a stack.
  logger: new Logger(() => () => undefined),
  taskList: {
    deliver: async (payload, helpers) => {
      const ok = await postWebhook(client, payload.url ?? url, {
        ...payload,
        attempt: helpers.job.attempts,
      });
      if (!ok) throw new Error('webhook answered non-2xx');
    },
  },
  ...(process.env.GRAPHILE_FASTEST === '1' && {
    preset: {
      worker: {
        localQueue: { size: Number(process.env.LOCAL_QUEUE_SIZE ?? concurrency * 5) },
        completeJobBatchDelay: 0,
        failJobBatchDelay: 0,
      },
    },
  }),
});
process.send?.({ ready: true });
process.on('SIGTERM', () => {
  runner.stop().finally(() => process.exit(0));
});

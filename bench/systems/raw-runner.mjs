// The raw HTTP ceiling: one Node process POSTing the same bodies, with the same client, headers
// and concurrency, and no queue at all (and no ordering: any free slot takes the next message).
// With concurrency 1 it is the plain sequential POST loop. A non-2xx is retried at once.
import { makeClient, postWebhook } from '../lib/sender.mjs';

process.on('message', async (msg) => {
  if (msg.cmd !== 'go') return;
  const { messages, concurrency, url } = msg;
  const client = makeClient(concurrency);
  let next = 0;
  const lane = async () => {
    while (next < messages.length) {
      const m = messages[next++];
      for (let attempt = 1; !(await postWebhook(client, url, { ...m, attempt })); attempt++);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
  process.send?.({ id: msg.id, done: true });
});
process.send?.({ ready: true });
process.on('disconnect', () => process.exit(0));

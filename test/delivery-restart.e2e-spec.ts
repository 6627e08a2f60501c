import { join } from 'node:path';
import pg from 'pg';
import { EmbeddedDatabase, startEmbeddedPostgres } from '../src/database/embedded-postgres.js';
import { runMigrations } from '../src/database/migrate.js';
import { eventually } from './helpers/eventually.js';
import { createTopic, createWebhook } from './helpers/factories.js';
import { OrderChecker } from './helpers/order-checker.js';
import { Receiver } from './helpers/receiver.js';
import { scratchDir } from './helpers/scratch.js';
import { WorkerProcess } from './helpers/worker.js';
import { TEST_SCHEMA } from './helpers/db.js';
import { searchPathOption } from '../src/database/schema.js';

/**
 * PostgreSQL restarted under load: the workers log it, reconnect, LISTEN again and carry on;
 * nothing is lost or reordered. This needs a server of its own to restart, so it starts an
 * embedded one whatever DATABASE_URL says.
 */
describe('PostgreSQL restart under load', () => {
  const dataDir = join(scratchDir('restart-'), 'pg');
  let server: EmbeddedDatabase;
  let pool: pg.Pool;
  let receiver: Receiver;
  const workers: WorkerProcess[] = [];

  afterAll(async () => {
    await Promise.all(workers.map((w) => w.stop()));
    await receiver?.close();
    await pool?.end();
    await server?.stop();
  });

  it('delivers every message in order across a restart, and the workers survive it', async () => {
    server = await startEmbeddedPostgres({ dataDir });
    await runMigrations(server.url);
    pool = new pg.Pool({ connectionString: server.url, max: 4, ...searchPathOption(TEST_SCHEMA) });
    pool.on('error', () => undefined);

    const order = new OrderChecker();
    const seen = new Set<number>();
    receiver = await Receiver.start((a) => {
      order.observe(
        String(a.headers['webhook-topic']),
        String(a.headers['webhook-partition-key']),
        Number(a.headers['webhook-sequence']),
      );
      seen.add((JSON.parse(a.body) as { i: number }).i);
      return { status: 200 };
    });
    const topic = await createTopic(pool);
    await createWebhook(pool, topic.id, receiver.url);
    workers.push(WorkerProcess.spawn(server.url), WorkerProcess.spawn(server.url));
    // Starting Node and Nest takes seconds on a busy machine; the windows below are for delivery.
    await eventually(() => workers.every((w) => /delivering:/.test(w.output)), {
      timeoutMs: 60_000,
      what: 'both workers to start',
    });

    const total = 600;
    const producer = (async () => {
      for (let i = 0; i < total; i++) {
        // An INSERT cut off by the restart is tried again; a rare duplicate is allowed,
        // a loss is not.
        for (;;) {
          try {
            await pool.query(
              `INSERT INTO messages (topic_id, partition_key, payload) VALUES ($1, $2, $3)`,
              [topic.id, `p${i % 20}`, JSON.stringify({ i })],
            );
            break;
          } catch {
            await new Promise((r) => setTimeout(r, 50));
          }
        }
      }
    })();

    await eventually(() => seen.size >= 150, { what: '150 deliveries before the restart' });
    await server.stop();
    // Back on the same port (the last one used on this data folder), where the workers expect it.
    server = await startEmbeddedPostgres({ dataDir });
    await producer;

    await eventually(() => seen.size === total, {
      timeoutMs: 60_000,
      what: `all ${total} messages delivered after the restart`,
    });
    expect(order.violations).toEqual([]);
    for (const w of workers) {
      // A worker that died shows its last words.
      expect({ running: w.running, last: w.running ? '' : w.output.slice(-4000) }).toEqual({
        running: true,
        last: '',
      });
      expect(w.output).toMatch(/LISTEN connection lost/);
    }
    for (const w of workers) w.kill('SIGTERM');
    expect(await Promise.all(workers.map((w) => w.exited))).toEqual([
      { code: 0, signal: null },
      { code: 0, signal: null },
    ]);
  });
});

import type { NestExpressApplication } from '@nestjs/platform-express';
import request from 'supertest';
import { createTestApp } from './app.js';
import { createTestDatabase, TestDatabase } from './db.js';
import { eventually } from './eventually.js';
import { insertMessage } from './factories.js';
import { deliveryAt, sequences } from './queue-state.js';
import { Handler, Receiver } from './receiver.js';
import { WorkerProcess } from './worker.js';

/**
 * The bench of the operations tests (DESIGN §7): for each test a database of its own, the API,
 * real `node dist/worker.js` processes and real receivers, all stopped after it. Call it inside a
 * describe: it registers the hooks; `db` and `http` are the current test's.
 */
export function operationsBench() {
  let db!: TestDatabase;
  let app!: NestExpressApplication;
  let http!: ReturnType<typeof request>;
  let workers: WorkerProcess[] = [];
  const receivers: Receiver[] = [];

  beforeEach(async () => {
    db = await createTestDatabase();
    app = await createTestApp(db.url, { WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true' });
    http = request(app.getHttpServer());
  });
  afterEach(async () => {
    await Promise.all(workers.map((w) => w.stop()));
    workers = [];
    await Promise.all(receivers.splice(0).map((r) => r.close()));
    await app.close();
    await db.drop();
  });

  function spawnWorker(env: Record<string, string> = {}) {
    const worker = WorkerProcess.spawn(db.url, env);
    workers.push(worker);
    return worker;
  }

  async function receiver(handler?: Handler) {
    const r = await Receiver.start(handler);
    receivers.push(r);
    return r;
  }

  function range(from: number, to: number): number[] {
    return Array.from({ length: to - from + 1 }, (_, i) => from + i);
  }

  async function publish(topicId: number, key: string, count: number, payload: object = {}) {
    for (let i = 0; i < count; i++) await insertMessage(db.pool, topicId, key, payload);
  }

  async function webhookJson(topicId: number, id: number) {
    const list = await http.get(`/topics/${topicId}/webhooks`).expect(200);
    return (list.body as { id: number }[]).find((w) => w.id === id) as Record<string, unknown>;
  }

  async function lines(webhookId: number, query = '') {
    return (await http.get(`/webhooks/${webhookId}/lines${query}`).expect(200)).body as {
      partition_key: string;
      state: string;
      head_sequence: number | null;
      tail_sequence: number;
      pending: number;
      oldest_pending_at: string | null;
      next_attempt_at: string | null;
    }[];
  }

  async function line(webhookId: number, key: string) {
    return (await lines(webhookId)).find((l) => l.partition_key === key);
  }

  /**
   * Proof that the workers are claiming: a message to another, active webhook arrives. What a
   * paused webhook has not received by then, it was not sent.
   */
  async function workersAreClaiming(probeTopicId: number, probe: Receiver) {
    const before = probe.arrivals.length;
    await insertMessage(db.pool, probeTopicId, `probe-${before}`);
    await eventually(() => probe.arrivals.length > before, { what: 'the probe webhook' });
  }

  return {
    get db() {
      return db;
    },
    get http() {
      return http;
    },
    spawnWorker,
    receiver,
    sequences,
    range,
    publish,
    webhookJson,
    lines,
    line,
    delivery: (webhookId: number, key: string, sequence: number) =>
      deliveryAt(db.pool, webhookId, key, sequence),
    workersAreClaiming,
  };
}

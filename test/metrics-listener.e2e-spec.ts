import { readdirSync } from 'node:fs';
import net from 'node:net';
import { networkInterfaces } from 'node:os';
import { createTestDatabase, TestDatabase } from './helpers/db.js';
import { eventually } from './helpers/eventually.js';
import { createTopic, createWebhook, insertMessage } from './helpers/factories.js';
import { freePort } from './helpers/prometheus.js';
import { Receiver } from './helpers/receiver.js';
import { WorkerProcess } from './helpers/worker.js';

const healthStatus = (host: string, port: number) =>
  fetch(`http://${host}:${port}/health`, { signal: AbortSignal.timeout(2000) }).then(
    (r) => r.status,
    () => 0,
  );

/** Whether a TCP connection to host:port is accepted. */
const connects = (host: string, port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = net.connect(port, host);
    socket.once('connect', () => resolve(true));
    socket.once('error', () => resolve(false));
  }).finally(() => undefined);

/** This host's first non-loopback IPv4 address, if it has one. */
const outsideAddress = () =>
  Object.values(networkInterfaces())
    .flat()
    .find((a) => a && a.family === 'IPv4' && !a.internal)?.address;

/**
 * The worker's listener (METRICS_PORT) is not a way in: loopback unless told, bounded in
 * connections and time, and a second worker on the host takes another port instead of dying.
 */
describe("the worker's metrics listener", () => {
  let db: TestDatabase;
  let receiver: Receiver;
  const workers: WorkerProcess[] = [];
  const spawn = (env: Record<string, string>, fileLimit?: number) => {
    const worker = WorkerProcess.spawn(db.url, env, fileLimit);
    workers.push(worker);
    return worker;
  };

  beforeAll(async () => {
    db = await createTestDatabase();
    receiver = await Receiver.start();
  });
  afterEach(async () => {
    await Promise.all(workers.splice(0).map((w) => w.stop()));
  });
  afterAll(async () => {
    await receiver?.close();
    await db?.drop();
  });

  it('a second worker with the same METRICS_PORT takes the next free port, says so, and runs', async () => {
    const port = await freePort();
    spawn({ METRICS_PORT: String(port) });
    await eventually(async () => (await healthStatus('127.0.0.1', port)) === 200);
    const second = spawn({ METRICS_PORT: String(port) });
    const [, taken] = await eventually(
      () => /METRICS_PORT \d+ is taken [^\n]*:(\d+)\/metrics/.exec(second.output) ?? undefined,
      { what: 'the second worker naming its port', timeoutMs: 20_000 },
    );
    expect(Number(taken)).not.toBe(port);
    await eventually(async () => (await healthStatus('127.0.0.1', Number(taken))) === 200);
    expect(second.running).toBe(true);
  }, 60_000);

  it('listens on loopback only, unless METRICS_HOST says otherwise', async () => {
    const outside = outsideAddress();
    const port = await freePort();
    const worker = spawn({ METRICS_PORT: String(port) });
    await eventually(async () => (await healthStatus('127.0.0.1', port)) === 200);
    expect(worker.output).toMatch(new RegExp(`metrics on http://127\\.0\\.0\\.1:${port}/metrics`));
    if (outside) expect(await connects(outside, port)).toBe(false);
    await worker.stop();
    const everywhere = spawn({ METRICS_PORT: String(port), METRICS_HOST: '0.0.0.0' });
    await eventually(async () => (await healthStatus('127.0.0.1', port)) === 200);
    expect(everywhere.output).toMatch(
      new RegExp(`metrics on http://0\\.0\\.0\\.0:${port}/metrics`),
    );
    if (outside) expect(await connects(outside, port)).toBe(true);
  }, 60_000);

  it('under a flood of 1,100 idle connections keeps its descriptors and delivers', async () => {
    const topic = await createTopic(db.pool, 'flood');
    await createWebhook(db.pool, topic.id, receiver.url);
    const port = await freePort();
    // A long timeout: on a loaded machine a slow answer is not what this test is about, a
    // descriptor the flood took (a refused or failed connection) is.
    const worker = spawn(
      { METRICS_PORT: String(port), WORKER_CONCURRENCY: '10', DELIVERY_TIMEOUT_MS: '10000' },
      1024,
    );
    await eventually(async () => (await healthStatus('127.0.0.1', port)) === 200);

    // Each connection sends part of a request and then nothing; one that is closed comes back.
    let flooding = true;
    const open = new Set<net.Socket>();
    const connect = () => {
      if (!flooding) return;
      const socket = net.connect(port, '127.0.0.1', () =>
        socket.write('GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: '),
      );
      open.add(socket);
      socket.on('error', () => undefined);
      socket.on('close', () => {
        open.delete(socket);
        setTimeout(connect, 50);
      });
    };
    for (let i = 0; i < 1100; i++) connect();
    const descriptors = () => readdirSync(`/proc/${worker.pid}/fd`).length;
    try {
      await eventually(() => open.size >= 1000, { what: 'the flood connected' });
      for (let i = 0; i < 40; i++) await insertMessage(db.pool, topic.id, `k${i % 10}`, { i });
      const delivered = async () =>
        (
          await db.pool.query(
            `SELECT count(*)::int AS n FROM deliveries WHERE status = 'delivered'`,
          )
        ).rows[0].n === 40;
      await eventually(delivered, { timeoutMs: 20_000, what: '40 deliveries during the flood' });
      // Nothing failed on the way: one attempt per delivery, each a 2xx.
      const { rows } = await db.pool.query(
        `SELECT count(*)::int AS attempts, count(*) FILTER (WHERE status_code = 204)::int AS ok,
                array_agg(DISTINCT coalesce(error, status_code::text)) AS outcomes
         FROM delivery_attempts`,
      );
      expect(rows[0]).toEqual({ attempts: 40, ok: 40, outcomes: ['204'] });
      // Unbounded, the listener held about 1,000 of its 1,024 descriptors here.
      expect(descriptors()).toBeLessThan(200);
    } finally {
      flooding = false;
      for (const socket of open) socket.destroy();
    }
    expect(worker.running).toBe(true);
  }, 90_000);
});

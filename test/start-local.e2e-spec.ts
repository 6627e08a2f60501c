import { ChildProcess, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { eventually } from './helpers/eventually.js';
import { Receiver } from './helpers/receiver.js';

async function freePort(): Promise<number> {
  return new Promise((res) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => res(port));
    });
  });
}

/**
 * The all-in-one a new user runs (`npm start` = build + node dist/start-local.js), with no
 * DATABASE_URL: embedded PostgreSQL in ./.data, migrations, API and one worker in one process.
 */
describe('npm start (all-in-one)', () => {
  const cwd = mkdtempSync(join(tmpdir(), 'pgwq-start-'));
  chmodSync(cwd, 0o755);
  let child: ChildProcess | undefined;
  let output = '';
  let receiver: Receiver;

  afterAll(async () => {
    if (child && child.exitCode === null) {
      child.kill('SIGINT');
      await new Promise((r) => child!.once('exit', r));
    }
    await receiver?.close();
    rmSync(cwd, { recursive: true, force: true });
  });

  it('starts its own PostgreSQL, serves the API and delivers a published message', async () => {
    receiver = await Receiver.start(() => ({ status: 200 }));
    const port = await freePort();
    child = spawn(process.execPath, [resolve('dist/start-local.js')], {
      cwd,
      env: { PATH: process.env.PATH, PORT: String(port) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    const api = `http://127.0.0.1:${port}`;
    await eventually(() => /API listening on/.test(output), {
      timeoutMs: 60_000,
      what: `the API to listen; output so far:\n${output}`,
    });
    expect(output).toMatch(/starting an embedded PostgreSQL/);
    expect(output).toMatch(/WEBHOOK_ALLOW_PRIVATE_NETWORKS=true/);
    expect(existsSync(join(cwd, '.data', 'postgres', 'PG_VERSION'))).toBe(true);

    const post = (path: string, body: unknown) =>
      fetch(api + path, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      }).then(async (r) => ({ status: r.status, body: await r.json() }));
    const topic = await post('/topics', { name: 'orders' });
    expect(topic.status).toBe(201);
    const hook = await post('/webhooks', { topic_id: topic.body.id, url: receiver.url });
    expect(hook.status).toBe(201);
    const message = await post('/topics/orders/messages', {
      partition_key: 'user-42',
      payload: { event: 'order.created' },
    });
    expect(message).toMatchObject({ status: 201, body: { sequence: 1 } });

    await eventually(() => receiver.arrivals.length === 1, { what: 'the delivery' });
    expect(JSON.parse(receiver.arrivals[0].body)).toEqual({ event: 'order.created' });
    const deliveries = await eventually(async () => {
      const list = (await (await fetch(`${api}/webhooks/${hook.body.id}/deliveries`)).json()) as {
        status: string;
      }[];
      return list[0]?.status === 'delivered' && list;
    });
    expect(deliveries).toHaveLength(1);

    child.kill('SIGINT');
    const code = await new Promise((r) => child!.once('exit', r));
    expect(code).toBe(0);
  });
});

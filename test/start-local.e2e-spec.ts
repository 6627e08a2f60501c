import { ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import pg from 'pg';
import { eventually } from './helpers/eventually.js';
import { Receiver } from './helpers/receiver.js';
import { built, scratchDir } from './helpers/scratch.js';

/** Listens on `port` (0: any) for a moment: the port, or undefined when it is taken. */
async function tryPort(port = 0): Promise<number | undefined> {
  return new Promise((res) => {
    const server = createServer();
    server.once('error', () => res(undefined));
    server.listen(port, '127.0.0.1', () => {
      const { port: got } = server.address() as { port: number };
      server.close(() => res(got));
    });
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * The all-in-one a new user runs (`npm start` = build + node dist/start-local.js), with no
 * DATABASE_URL: embedded PostgreSQL in ./.data, migrations, API and one worker in one process.
 */
describe('npm start (all-in-one)', () => {
  const cwd = scratchDir('start-');
  const pidFile = join(cwd, '.data', 'postgres', 'postmaster.pid');
  /** The PostgreSQL server's pid and port, from its own postmaster.pid. */
  const server = () => {
    const [pid, , , port] = readFileSync(pidFile, 'utf8').split('\n').map(Number);
    return { pid, port };
  };
  const running: ChildProcess[] = [];
  let receiver: Receiver;
  let firstPort: number;

  afterAll(async () => {
    for (const child of running.filter((c) => c.exitCode === null && c.signalCode === null)) {
      child.kill('SIGINT');
      await new Promise((r) => child.once('exit', r));
    }
    if (existsSync(pidFile) && alive(server().pid)) process.kill(server().pid, 'SIGINT');
    await receiver?.close();
  });

  /** Starts npm start's process in `cwd` and waits until its API listens. */
  async function startLocal() {
    const port = (await tryPort())!;
    const child = spawn(process.execPath, [built('start-local.js')], {
      cwd,
      env: { PATH: process.env.PATH, PORT: String(port), NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    running.push(child);
    const started = {
      child,
      api: `http://127.0.0.1:${port}`,
      output: '',
      exited: new Promise<number | null>((r) => child.once('exit', (code) => r(code))),
    };
    child.stdout!.on('data', (d: Buffer) => (started.output += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (started.output += d.toString()));
    await eventually(() => /API listening on/.test(started.output), {
      timeoutMs: 60_000,
      what: `the API to listen; output so far:\n${started.output}`,
    });
    return started;
  }

  it('starts its own PostgreSQL, prints a psql command for it, serves the API and delivers', async () => {
    receiver = await Receiver.start(() => ({ status: 200 }));
    const local = await startLocal();
    expect(local.output).toMatch(/starting an embedded PostgreSQL/);
    expect(local.output).toMatch(/WEBHOOK_ALLOW_PRIVATE_NETWORKS=true/);
    firstPort = server().port;

    const post = (path: string, body: unknown) =>
      fetch(local.api + path, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      }).then(async (r) => ({ status: r.status, body: (await r.json()) as { id: number } }));
    const topic = await post('/topics', { name: 'orders' });
    expect(topic.status).toBe(201);
    const hook = await post('/webhooks', { topic_id: topic.body.id, url: receiver.url });
    expect(hook.status).toBe(201);

    // The printed psql command reaches the same database: publish there with SQL.
    const psql = /publish with SQL: psql (postgres:\/\/\S+)/.exec(local.output)?.[1];
    expect(psql).toBe(`postgres://postgres:postgres@127.0.0.1:${firstPort}/postgres`);
    const client = new pg.Client({ connectionString: psql });
    await client.connect();
    try {
      await client.query(
        `INSERT INTO messages (topic_id, partition_key, payload) VALUES ($1, 'user-42', $2)`,
        [topic.body.id, { event: 'order.created' }],
      );
    } finally {
      await client.end();
    }
    await eventually(() => receiver.arrivals.length === 1, { what: 'the delivery' });
    expect(JSON.parse(receiver.arrivals[0].body)).toEqual({ event: 'order.created' });

    // npm run migration:run finds this embedded PostgreSQL without DATABASE_URL.
    const migrate = await new Promise<{ code: number | null; out: string }>((res) => {
      const child = spawn(process.execPath, [built('migrate.js')], {
        cwd,
        env: { PATH: process.env.PATH },
      });
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (out += d));
      child.on('exit', (code) => res({ code, out }));
    });
    expect(migrate.code).toBe(0);
    expect(migrate.out).toMatch(/using the embedded PostgreSQL of npm start/);
    expect(migrate.out).toMatch(new RegExp(`127\\.0\\.0\\.1:${firstPort}/postgres is up to date`));

    local.child.kill('SIGINT');
    expect(await local.exited).toBe(0);
    expect(existsSync(pidFile)).toBe(false);
  });

  it('comes back on the same port, adopts the PostgreSQL a crash left running and stops it on Ctrl-C', async () => {
    const crashed = await startLocal();
    const { pid, port } = server();
    // The port of the last start, unless another process took it meanwhile (a shared machine).
    if (port !== firstPort) expect(await tryPort(firstPort)).toBeUndefined();
    crashed.child.kill('SIGKILL');
    await crashed.exited;
    expect(alive(pid)).toBe(true);

    const next = await startLocal();
    expect(next.output).toMatch(
      new RegExp(`reusing the embedded PostgreSQL still running on port ${port}`),
    );
    expect((await fetch(`${next.api}/health`)).status).toBe(200);
    next.child.kill('SIGINT');
    expect(await next.exited).toBe(0);
    expect(alive(pid)).toBe(false);
    expect(existsSync(pidFile)).toBe(false);
  });
});

/** `npm run db`: only the embedded PostgreSQL, migrated, for separate API and worker processes. */
describe('npm run db', () => {
  it('prints a DATABASE_URL of a migrated database, and Ctrl-C stops it', async () => {
    const cwd = scratchDir('db-');
    const child = spawn(process.execPath, [built('start-db.js')], {
      cwd,
      env: { PATH: process.env.PATH },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    try {
      const url = await eventually(() => /^\[pgwq-db\] DATABASE_URL=(\S+)$/m.exec(output)?.[1], {
        timeoutMs: 60_000,
        what: `the DATABASE_URL line; output so far:\n${output}`,
      });
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        const { rows } = await client.query('SELECT count(*)::int AS n FROM typeorm_migrations');
        expect(rows[0].n).toBeGreaterThan(0);
      } finally {
        await client.end();
      }
      expect(output).toMatch(/node dist\/main\.js/);
      child.kill('SIGINT');
      expect(await exited).toBe(0);
      expect(existsSync(join(cwd, '.data', 'postgres', 'postmaster.pid'))).toBe(false);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});

// As root the embedded PostgreSQL runs as the OS user postgres, who cannot enter a 0700 folder.
(process.getuid?.() === 0 ? describe : describe.skip)('npm start as root in a 0700 folder', () => {
  it('stops with one line that says what to do', async () => {
    const cwd = join(scratchDir('closed-'), 'home');
    mkdirSync(cwd, { mode: 0o700 });
    const child = spawn(process.execPath, [built('start-local.js')], {
      cwd,
      env: { PATH: process.env.PATH, PORT: '0' },
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    expect({ code, lines: stderr.trim().split('\n') }).toEqual({
      code: 1,
      lines: [
        expect.stringMatching(
          /cannot start: the embedded PostgreSQL runs as user "postgres", who cannot enter .*home \(mode 700\)/,
        ),
      ],
    });
  });
});

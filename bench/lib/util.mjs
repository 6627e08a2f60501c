// Small helpers of the bench: time, statistics, child processes, the receiver, databases.
import { fork, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const now = () => performance.timeOrigin + performance.now();
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function median(xs) {
  const v = xs.filter((x) => x != null && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

export function percentile(xs, p) {
  const v = [...xs].sort((a, b) => a - b);
  if (v.length === 0) return null;
  return v[Math.min(v.length - 1, Math.max(0, Math.ceil((p / 100) * v.length) - 1))];
}

/** Waits for `check()` to be truthy, polling; returns false at the deadline. */
export async function until(check, timeoutMs, everyMs = 50) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await sleep(everyMs);
  }
  return false;
}

/** Peak resident set (VmHWM) of a live process, in MiB; null once it is gone. */
export function peakRssMiB(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1]);
    return kb / 1024;
  } catch {
    return null;
  }
}

/** CPU time (user + system) a live process has used, in ms; 0 once it is gone. */
export function cpuMs(pid) {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
  } catch {
    return 0;
  }
}
/** USER_HZ: 100 on every Linux build the bench meets. */
const CLOCK_TICKS = 100;

/** A child process that ends with the bench, and a promise of its exit. */
export function startProcess(
  command,
  args,
  env,
  { quiet = true, label = command, cwd = ROOT } = {},
) {
  const child = spawn(command, args, {
    cwd,
    env: { ...process.env, ...env },
    stdio: ['ignore', quiet ? 'ignore' : 'inherit', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr = (stderr + d).slice(-4000);
  });
  const exited = new Promise((res) => child.once('exit', (code, signal) => res({ code, signal })));
  return {
    child,
    exited,
    stderr: () => stderr,
    label,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const done = await Promise.race([exited, sleep(5000).then(() => null)]);
      if (!done) child.kill('SIGKILL');
      await exited;
    },
  };
}

/** A forked .mjs with an IPC channel and request/answer helpers. */
export function forkModule(path, env = {}) {
  const child = fork(path, [], { cwd: ROOT, env: { ...process.env, ...env }, stdio: 'inherit' });
  let nextId = 1;
  const waiting = new Map();
  const listeners = [];
  child.on('message', (msg) => {
    if (msg?.id && waiting.has(msg.id)) {
      waiting.get(msg.id)(msg);
      waiting.delete(msg.id);
    } else listeners.forEach((l) => l(msg));
  });
  const exited = new Promise((res) => child.once('exit', (code) => res(code)));
  return {
    child,
    exited,
    request(msg) {
      const id = nextId++;
      return new Promise((res) => {
        waiting.set(id, res);
        child.send({ ...msg, id });
      });
    },
    next(predicate = () => true) {
      return new Promise((res) => {
        const l = (msg) => {
          if (predicate(msg)) {
            listeners.splice(listeners.indexOf(l), 1);
            res(msg);
          }
        };
        listeners.push(l);
      });
    },
    async stop() {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      const done = await Promise.race([exited, sleep(5000).then(() => null)]);
      if (done === null) child.kill('SIGKILL');
      await exited;
    },
  };
}

export async function startReceiver() {
  const r = forkModule(join(ROOT, 'bench/lib/receiver.mjs'));
  const { port } = await r.next((m) => m.ready);
  return {
    url: `http://127.0.0.1:${port}/hook`,
    pid: r.child.pid,
    reset: (mode = {}) => r.request({ cmd: 'reset', ...mode }),
    stats: (wantTimes = false) => r.request({ cmd: 'stats', wantTimes }),
    stop: () => r.stop(),
  };
}

/**
 * The bench's own PostgreSQL: DATABASE_URL if set (a server the bench may create and drop
 * databases on), else an embedded one from dist/ with its data in a temp dir.
 */
export async function startDatabaseServer() {
  if (process.env.DATABASE_URL) {
    return { url: process.env.DATABASE_URL, embedded: false, stop: async () => undefined };
  }
  const { startEmbeddedPostgres } = await import(join(ROOT, 'dist/database/embedded-postgres.js'));
  // No dataDir: a throwaway server in a temp folder that stop() removes.
  const server = await startEmbeddedPostgres({
    settings: { shared_buffers: '256MB', max_wal_size: '4GB', max_connections: '300' },
  });
  return { url: server.url, embedded: true, stop: () => server.stop() };
}

export function urlFor(serverUrl, database) {
  const url = new URL(serverUrl);
  url.pathname = `/${database}`;
  return url.toString();
}

let dbCounter = 0;
/** A fresh, empty database; drop() removes it. */
export async function createDatabase(serverUrl, label) {
  const name = `pgwq_bench_${label}_${process.pid}_${++dbCounter}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  return {
    name,
    url: urlFor(serverUrl, name),
    async drop() {
      const c = new pg.Client({ connectionString: serverUrl });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}

/** The PostgreSQL server's version string, for the report. */
export async function serverVersion(url) {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const { rows } = await c.query('SHOW server_version');
    return rows[0].server_version;
  } finally {
    await c.end();
  }
}

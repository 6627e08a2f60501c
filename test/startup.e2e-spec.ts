import { spawn } from 'node:child_process';

/** Runs a built entry point with the given environment and collects how it ended. */
function run(entry: string, env: Record<string, string>) {
  return new Promise<{ code: number | null; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [entry], {
      env: { PATH: process.env.PATH ?? '', ...env },
      cwd: new URL('..', import.meta.url).pathname,
    });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

describe('start-up with bad configuration', () => {
  it.each([
    [
      'dist/main.js',
      { MAX_RETRIES: '-1', DATABASE_URL: 'postgres://x@127.0.0.1:1/db' },
      'MAX_RETRIES',
    ],
    ['dist/main.js', { PORT: 'abc', DATABASE_URL: 'postgres://x@127.0.0.1:1/db' }, 'PORT'],
    ['dist/main.js', { DATABASE_URL: 'postgres//broken' }, 'DATABASE_URL'],
    ['dist/worker.js', { WORKER_CONCURRENCY: 'lots' }, 'WORKER_CONCURRENCY'],
    ['dist/worker.js', { METRICS_PORT: '99999' }, 'METRICS_PORT'],
    ['dist/worker.js', { LOG_LEVEL: 'info' }, 'LOG_LEVEL'],
    ['dist/main.js', { LOG_FORMAT: 'xml' }, 'LOG_FORMAT'],
    ['dist/main.js', {}, 'DATABASE_URL is not set'],
  ])('%s with %j stops at once with one line naming %s', async (entry, env, name) => {
    const { code, stderr } = await run(entry, env);
    expect(code).toBe(1);
    const lines = stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(name);
    expect(lines[0]).toMatch(/cannot start/);
  });
});

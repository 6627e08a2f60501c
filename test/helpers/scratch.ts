import { chmodSync, mkdtempSync } from 'node:fs';
import { join, resolve } from 'node:path';

function scratchRoot(): string {
  const root = process.env.PGWQ_TEST_SCRATCH;
  if (!root) throw new Error('run the tests with `npm test` (jest globalSetup)');
  return root;
}

/**
 * The empty folder child processes run in: the API, the worker and npm start read .env from
 * their working directory, and the project's own .env must not reach the tests.
 */
export function childCwd(): string {
  return join(scratchRoot(), 'cwd');
}

/** A new folder under the tests' temp folder, which global-teardown removes. */
export function scratchDir(prefix: string): string {
  const dir = mkdtempSync(join(scratchRoot(), prefix));
  chmodSync(dir, 0o755); // an embedded server in it runs as user postgres when we are root
  return dir;
}

/** A built entry point (dist/main.js, dist/worker.js, …) by absolute path, for any cwd. */
export function built(entry: string): string {
  return resolve('dist', entry);
}

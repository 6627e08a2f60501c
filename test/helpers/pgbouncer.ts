import { findPgBouncer } from '../../src/database/pgbouncer.js';

/** The pgbouncer binary the pooler tests run, or undefined: they are then skipped, with a line. */
export function pgBouncerForTests(testFile: string) {
  const binary = findPgBouncer();
  if (!binary) {
    console.warn(
      `${testFile} SKIPPED: the pgbouncer binary is not installed ` +
        '(Debian: apt-get install pgbouncer; .ci/run installs it)',
    );
  }
  return binary;
}

/** A line a process logged at warn level or above (Nest's ConsoleLogger format). */
export const WARNING_OR_ERROR = /^.*\b(WARN|ERROR|FATAL)\b.*$/gm;

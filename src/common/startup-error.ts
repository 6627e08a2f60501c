/**
 * A reason a process cannot start that one line says in full (bad configuration, a database it
 * cannot use, a port in use): printed without a stack trace before the process exits 1.
 */
export class StartupError extends Error {
  override name = 'StartupError';
}

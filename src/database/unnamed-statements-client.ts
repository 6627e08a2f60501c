import pg from 'pg';

/**
 * A pg client that sends every named statement unnamed, for DATABASE_PREPARED_STATEMENTS=false.
 *
 * A named statement is prepared once per server connection, and pg remembers per client which
 * names it prepared. Behind a transaction-mode pooler that cannot carry them (PgBouncer before
 * 1.21, or without max_prepared_statements) each transaction may run on another server
 * connection: the name is missing there ("does not exist") or was prepared by another client
 * ("already exists"). Unnamed, the statement is parsed and planned in the same round trip every
 * time, which works on any server connection.
 */
export class UnnamedStatementsClient extends pg.Client {
  // pg's overloads of query() all come here; only a plain query config with a name changes.
  // `never` stands for "whatever the overload returns": callers see pg.Pool's types.
  override query(...args: unknown[]): never {
    const [config, ...rest] = args;
    const query = super.query as (...a: unknown[]) => never;
    return query.call(this, withoutName(config), ...rest);
  }
}

function withoutName(config: unknown): unknown {
  if (typeof config !== 'object' || config === null || !('name' in config)) return config;
  if (typeof (config as { submit?: unknown }).submit === 'function') return config;
  return { ...(config as pg.QueryConfig), name: undefined };
}

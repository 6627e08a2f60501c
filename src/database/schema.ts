import type pg from 'pg';
import { StartupError } from '../common/startup-error.js';

/**
 * The schema the queue's tables, functions and triggers live in (DATABASE_SCHEMA). A lower-case
 * unquoted identifier, so it needs no quoting in SQL nor in the `options` startup parameter.
 */
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

export const DEFAULT_SCHEMA = 'public';

/** DATABASE_SCHEMA from `env`, checked; a bad name stops the process in one line. */
export function databaseSchemaFrom(env: Record<string, string | undefined>): string {
  const value = env.DATABASE_SCHEMA?.trim() || DEFAULT_SCHEMA;
  if (!SCHEMA_NAME.test(value) || value.startsWith('pg_')) {
    throw new StartupError(
      'invalid configuration: DATABASE_SCHEMA must be 1-63 lower-case letters, digits or _, ' +
        `starting with a letter or _ and not with pg_ (got ${JSON.stringify(env.DATABASE_SCHEMA)})`,
    );
  }
  return value;
}

/**
 * What a connection sends to land in `schema`: nothing for public (the default search_path), else
 * `-c search_path=<schema>`. Only the schema, not public after it: an application's own tables of
 * the same names must never be read by the queue.
 */
export function searchPathOption(schema: string): Pick<pg.ClientConfig, 'options'> {
  return schema === DEFAULT_SCHEMA ? {} : { options: `-c search_path=${schema}` };
}

/** A ready psql command that lands in `schema`. */
export function psqlCommand(databaseUrl: string, schema: string): string {
  return schema === DEFAULT_SCHEMA
    ? `psql ${databaseUrl}`
    : `PGOPTIONS='-c search_path=${schema}' psql ${databaseUrl}`;
}

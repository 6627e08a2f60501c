import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type pg from 'pg';
import { DataSource } from 'typeorm';
import { StartupError } from '../common/startup-error.js';
import { connectOrExplain, describePending, pendingMigrations } from './database-check.js';
import { dataSourceOptions, MigrationDataSource } from './data-source-options.js';
import { startupParameters } from './pool-options.js';
import { databaseSchemaFrom, DEFAULT_SCHEMA } from './schema.js';

/**
 * Runs `fn` holding a session advisory lock on a connection of its own, so processes that
 * migrate at the same moment (two `npm start` on one database, a deploy job started twice) take
 * turns: the second finds the work done. A session lock needs a direct connection, not a
 * transaction-mode pooler (docs/deployment.md, "Migrations").
 */
async function withMigrationLock<T>(
  databaseUrl: string,
  onWait: ((line: string) => void) | undefined,
  fn: (lockClient: pg.Client) => Promise<T>,
): Promise<T> {
  const client = await connectOrExplain(databaseUrl, { onWait });
  try {
    await client.query(`SELECT pg_advisory_lock(hashtext('pg-webhook-queue migrations'))`);
    return await fn(client);
  } finally {
    await client.end(); // ending the session releases the lock
  }
}

async function withDataSource<T>(
  databaseUrl: string,
  schema: string,
  fn: (ds: DataSource) => Promise<T>,
) {
  const { searchPath } = await startupParameters(databaseUrl, schema);
  const dataSource = new MigrationDataSource(dataSourceOptions(databaseUrl, searchPath));
  await dataSource.initialize();
  try {
    return await fn(dataSource);
  } finally {
    await dataSource.destroy();
  }
}

/**
 * Runs every pending migration, each in its own transaction, under the migration lock; returns
 * the names applied. What `npm run migration:run`, `npm start`, the compose `migrate` service and
 * the tests' setup all do.
 */
export async function runMigrations(
  databaseUrl: string,
  onWait?: (line: string) => void,
  schema = databaseSchemaFrom(process.env),
): Promise<string[]> {
  return withMigrationLock(databaseUrl, onWait, async (client) => {
    // Before TypeORM connects: its migrations table goes into the schema, so it must exist.
    if (schema !== DEFAULT_SCHEMA) await client.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
    return withDataSource(databaseUrl, schema, async (ds) => {
      const applied = await ds.runMigrations({ transaction: 'each' });
      return applied.map((m) => m.name);
    });
  });
}

/**
 * The migrations the database has, in the order applied (with any this build does not know),
 * and those of this build it lacks.
 */
export async function migrationStatus(
  databaseUrl: string,
  schema = databaseSchemaFrom(process.env),
): Promise<{ applied: string[]; pending: string[] }> {
  const client = await connectOrExplain(databaseUrl);
  try {
    const pending = await pendingMigrations(client, schema);
    const { rows } = await client
      .query<{ name: string }>(`SELECT name FROM ${schema}.typeorm_migrations ORDER BY id`)
      .catch(() => ({ rows: [] }));
    return { applied: rows.map((r) => r.name), pending };
  } finally {
    await client.end();
  }
}

/** Reverts the last migration applied; returns its name, or undefined when none is applied. */
export async function revertLastMigration(
  databaseUrl: string,
  schema = databaseSchemaFrom(process.env),
): Promise<string | undefined> {
  return withMigrationLock(databaseUrl, undefined, async (client) => {
    const { rows } = await client
      .query<{
        name: string;
      }>(`SELECT name FROM ${schema}.typeorm_migrations ORDER BY id DESC LIMIT 1`)
      .catch(() => ({ rows: [] }));
    if (rows.length === 0) return undefined;
    await withDataSource(databaseUrl, schema, (ds) =>
      ds.undoLastMigration({ transaction: 'each' }),
    );
    return rows[0].name;
  });
}

/** A template literal's body: SQL as written, with the three characters that end or escape one. */
const templateBody = (sql: string) =>
  sql.replace(/\\/g, '\\\\').replace(/`/g, '\\`').replace(/\$\{/g, '\\${');

function queryLines(queries: { query: string; parameters?: unknown[] }[]): string {
  return queries
    .map(
      (q) =>
        `    await queryRunner.query(\`${templateBody(q.query)}\`` +
        `${q.parameters?.length ? `, ${JSON.stringify(q.parameters)}` : ''});`,
    )
    .join('\n');
}

/** Adds `import { Class } from './file.js'` after the last import and the class to the list. */
export function listMigration(indexSource: string, className: string, file: string): string {
  const lines = indexSource.split('\n');
  const lastImport = lines.findLastIndex((l) => l.startsWith('import '));
  lines.splice(lastImport + 1, 0, `import { ${className} } from './${file}.js';`);
  const end = lines.findLastIndex((l) => l.startsWith('];'));
  if (end < 0) throw new Error('the MIGRATIONS list in index.ts does not end with "];"');
  lines.splice(end, 0, `  ${className},`);
  return lines.join('\n');
}

/**
 * Writes `<timestamp>-<Name>.ts` into `dir` with the SQL that takes the database's schema to the
 * entities' (the schema builder's diff, as `typeorm migration:generate` computes it), adds it to
 * `dir`/index.ts and formats both with Prettier, so it runs as generated; read it before you
 * commit it, and hand-write what the generator cannot see (triggers, functions, NOTIFY).
 * Returns the file written, or undefined when the database already matches the entities.
 */
export async function generateMigration(options: {
  databaseUrl: string;
  name: string;
  dir: string;
  timestamp?: number;
  schema?: string;
}): Promise<string | undefined> {
  const { databaseUrl, name, dir, schema = databaseSchemaFrom(process.env) } = options;
  if (!/^[A-Z][A-Za-z0-9]*$/.test(name)) {
    throw new StartupError(
      `the migration name must be PascalCase letters and digits (got "${name}")`,
    );
  }
  const client = await connectOrExplain(databaseUrl);
  const missing = await pendingMigrations(client, schema).finally(() => client.end());
  if (missing.length > 0) {
    throw new StartupError(
      `${describePending(missing)}: run them first (npm run migration:run), so that the diff ` +
        'holds only your change',
    );
  }
  const diff = await withDataSource(databaseUrl, schema, (ds) =>
    ds.driver.createSchemaBuilder().log(),
  );
  if (diff.upQueries.length === 0) return undefined;
  const timestamp = options.timestamp ?? Date.now();
  const className = `${name}${timestamp}`;
  const file = `${timestamp}-${name}`;
  const source = `import { MigrationInterface, QueryRunner } from 'typeorm';

/** ${name}: say why. Generated from the entity diff by npm run migration:generate; read it. */
export class ${className} implements MigrationInterface {
  name = '${className}';

  public async up(queryRunner: QueryRunner): Promise<void> {
${queryLines(diff.upQueries)}
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
${queryLines([...diff.downQueries].reverse())}
  }
}
`;
  const prettier = await import('prettier');
  const write = async (path: string, text: string) => {
    const config = await prettier.resolveConfig(path);
    writeFileSync(path, await prettier.format(text, { ...config, filepath: path }));
  };
  const migrationPath = join(dir, `${file}.ts`);
  const indexPath = join(dir, 'index.ts');
  await write(migrationPath, source);
  await write(indexPath, listMigration(readFileSync(indexPath, 'utf8'), className, file));
  return migrationPath;
}

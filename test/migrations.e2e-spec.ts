import { spawn } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { NestExpressApplication } from '@nestjs/platform-express';
import request from 'supertest';
import { DataSource } from 'typeorm';
import { dataSourceOptions } from '../src/database/data-source-options.js';
import { generateMigration, runMigrations } from '../src/database/migrate.js';
import { MIGRATIONS } from '../src/database/migrations/index.js';
import { createTestApp } from './helpers/app.js';
import { searchPathOption } from '../src/database/schema.js';
import { createTestDatabase, SCHEMA_ENV, TEST_SCHEMA, TestDatabase } from './helpers/db.js';
import { built, childCwd } from './helpers/scratch.js';

/** Runs `node <args>` in a folder without .env, with exactly `env` (and PATH). */
function node(args: string[], env: Record<string, string> = {}) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((res) => {
    const child = spawn(process.execPath, args, {
      cwd: childCwd(),
      env: { PATH: process.env.PATH ?? '', ...SCHEMA_ENV, ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('exit', (code) => res({ code, stdout, stderr }));
  });
}

const NAMES = MIGRATIONS.map((m) => m.name);

/** The SQL that would take the database to the entities; [] when they match. */
async function pendingSchemaChanges(dataSource: DataSource): Promise<string[]> {
  return (await dataSource.driver.createSchemaBuilder().log()).upQueries.map((q) => q.query);
}

describe('migrations', () => {
  const databases: TestDatabase[] = [];
  const emptyDatabase = async () => {
    const db = await createTestDatabase({ empty: true });
    databases.push(db);
    return db;
  };
  afterAll(async () => {
    await Promise.all(databases.map((db) => db.drop()));
  });

  async function withDataSource<T>(url: string, fn: (ds: DataSource) => Promise<T>): Promise<T> {
    const dataSource = new DataSource(dataSourceOptions(url, searchPathOption(TEST_SCHEMA)));
    await dataSource.initialize();
    try {
      return await fn(dataSource);
    } finally {
      await dataSource.destroy();
    }
  }

  it('run on an empty database, leave nothing for migration:generate, revert and run again', async () => {
    const db = await emptyDatabase();
    // What runMigrations does before TypeORM connects (this test drives TypeORM itself).
    await db.pool.query(`CREATE SCHEMA IF NOT EXISTS ${TEST_SCHEMA}`);
    await withDataSource(db.url, async (dataSource) => {
      expect((await pendingSchemaChanges(dataSource)).length).toBeGreaterThan(0);
      const applied = await dataSource.runMigrations({ transaction: 'each' });
      expect(applied.map((m) => m.name)).toEqual(NAMES);
      expect(await pendingSchemaChanges(dataSource)).toEqual([]);
      expect(await dataSource.runMigrations()).toEqual([]);

      for (let i = 0; i < applied.length; i++) await dataSource.undoLastMigration();
      const [{ n }] = await dataSource.query<{ n: number }[]>(
        `SELECT count(*)::int AS n FROM pg_tables
         WHERE schemaname = $1 AND tablename <> 'typeorm_migrations'`,
        [TEST_SCHEMA],
      );
      expect(n).toBe(0);

      await dataSource.runMigrations({ transaction: 'each' });
      expect(await pendingSchemaChanges(dataSource)).toEqual([]);
    });
  });

  it('run by two processes at once: one applies them, the other waits for it and finds none', async () => {
    const db = await emptyDatabase();
    const results = await Promise.all([runMigrations(db.url), runMigrations(db.url)]);
    expect(results.map((names) => names.length).sort()).toEqual([0, NAMES.length]);
  });

  it('/health answers 503 on a database without them (or without the last), 200 with all', async () => {
    const db = await emptyDatabase();
    let app: NestExpressApplication | undefined;
    try {
      app = await createTestApp(db.url);
      const health = () => request(app!.getHttpServer()).get('/health');
      expect((await health()).body).toEqual({
        status_code: 503,
        error: 'Service Unavailable',
        message: expect.stringContaining('the database has no pg-webhook-queue tables'),
      });
      await runMigrations(db.url);
      await health().expect(200, { status: 'ok' });
      await withDataSource(db.url, (ds) => ds.undoLastMigration());
      const { status, body } = await health();
      expect(status).toBe(503);
      expect(body.message).toMatch(
        /^the database lacks 1 migration\(s\); run the migrations first/,
      );
    } finally {
      await app?.close();
    }
  });

  describe('npm run migration:run (node dist/migrate.js)', () => {
    it('without DATABASE_URL or a running npm start says so in one line', async () => {
      const { code, stdout, stderr } = await node([built('migrate.js')]);
      expect({ code, stdout }).toEqual({ code: 1, stdout: '' });
      expect(stderr.trim().split('\n')).toEqual([
        expect.stringContaining(
          'cannot migrate: DATABASE_URL is not set and no embedded PostgreSQL is running',
        ),
      ]);
    });

    it('applies them with one line of output, not their SQL', async () => {
      const db = await emptyDatabase();
      const first = await node([built('migrate.js')], { DATABASE_URL: db.url });
      expect(first).toEqual({
        code: 0,
        stdout: `[pgwq-migrate] applied ${NAMES.join(', ')} to ${where(db)}\n`,
        stderr: '',
      });
      const again = await node([built('migrate.js'), 'run'], { DATABASE_URL: db.url });
      expect(again.stdout).toBe(`[pgwq-migrate] ${where(db)} is up to date\n`);
    });

    it('migration:show lists what is applied and what is pending', async () => {
      const db = await emptyDatabase();
      const show = () => node([built('migrate.js'), 'show'], { DATABASE_URL: db.url });
      const before = await show();
      expect(before.code).toBe(0);
      expect(before.stdout).toContain(`${where(db)}: 0 applied, ${NAMES.length} pending`);
      expect(before.stdout).toContain(`  [ ] ${NAMES[0]}\n`);
      await runMigrations(db.url);
      const after = await show();
      expect(after.stdout).toContain(`${where(db)}: ${NAMES.length} applied, 0 pending`);
      expect(after.stdout).toContain(`  [X] ${NAMES.at(-1)}\n`);
    });

    it('the plain TypeORM CLI takes dist/database/data-source.js', async () => {
      const db = await emptyDatabase();
      await runMigrations(db.url);
      const cli = resolve('node_modules/typeorm/cli.js');
      const { code, stdout } = await node(
        [cli, 'migration:show', '-d', built('database/data-source.js')],
        { DATABASE_URL: db.url },
      );
      expect(code).toBe(0);
      expect(stdout).toContain(`[X] `);
      expect(stdout).toContain(NAMES.at(-1));
      expect(stdout).not.toContain('[ ]');
    });

    function where(db: TestDatabase) {
      const url = new URL(db.url);
      return `${url.username}@${url.hostname}:${url.port || 5432}/${db.name}`;
    }
  });

  it('migration:generate writes a migration that runs as written and passes Prettier', async () => {
    const db = await createTestDatabase();
    databases.push(db);
    await db.pool.query('DROP INDEX deliveries_dead_letter_idx');
    // Inside the project, so that Prettier's config and the imports resolve as in src/.
    const dir = mkdtempSync(resolve('test', 'generated-'));
    try {
      cpSync(resolve('src/database/migrations'), dir, { recursive: true });
      const file = await generateMigration({ databaseUrl: db.url, name: 'DeadIndex', dir });
      expect(file).toMatch(/\/\d+-DeadIndex\.ts$/);
      const prettier = await node([
        resolve('node_modules/prettier/bin/prettier.cjs'),
        '--check',
        file!,
        join(dir, 'index.ts'),
      ]);
      expect(prettier).toMatchObject({ code: 0 });

      const { MIGRATIONS: listed } = (await import(join(dir, 'index.ts'))) as {
        MIGRATIONS: (typeof MIGRATIONS)[number][];
      };
      const generated = listed.at(-1)!;
      expect(generated.name).toMatch(/^DeadIndex\d+$/);
      const options = {
        ...dataSourceOptions(db.url, searchPathOption(TEST_SCHEMA)),
        migrations: listed,
      };
      const dataSource = new DataSource(options);
      await dataSource.initialize();
      try {
        const applied = await dataSource.runMigrations();
        expect(applied.map((m) => m.name)).toEqual([generated.name]);
        expect(await pendingSchemaChanges(dataSource)).toEqual([]);
        await dataSource.undoLastMigration();
        expect(await pendingSchemaChanges(dataSource)).toHaveLength(1);
      } finally {
        await dataSource.destroy();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

import pg from 'pg';
import { DataSource } from 'typeorm';
import { dataSourceOptions } from '../src/database/data-source.js';
import { databaseUrlFor } from './helpers/db.js';

/** The migrations match the entities and go up and down cleanly on an empty database. */
describe('migrations', () => {
  const name = `pgwq_migrations_${process.pid}`;
  let dataSource: DataSource;

  async function admin(sql: string) {
    const client = new pg.Client({ connectionString: process.env.PGWQ_TEST_ADMIN_URL });
    await client.connect();
    try {
      await client.query(sql);
    } finally {
      await client.end();
    }
  }

  beforeAll(async () => {
    await admin(`CREATE DATABASE ${name}`);
    dataSource = new DataSource(
      dataSourceOptions(databaseUrlFor(process.env.PGWQ_TEST_ADMIN_URL!, name)),
    );
    await dataSource.initialize();
  });
  afterAll(async () => {
    await dataSource.destroy();
    await admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  });

  const pendingSchemaChanges = async () =>
    (await dataSource.driver.createSchemaBuilder().log()).upQueries.map((q) => q.query);

  it('run on an empty database, leave nothing for migration:generate, revert and run again', async () => {
    expect((await pendingSchemaChanges()).length).toBeGreaterThan(0);
    const applied = await dataSource.runMigrations({ transaction: 'each' });
    expect(applied.map((m) => m.name)).toEqual([
      'InitialSchema1795633463586',
      'MessageTriggers1795633463587',
      'SequenceRuns1795633463589',
      'NotifyOnWake1795633463590',
      'TriggerIntegrity1795633463600',
      'WebhookDeletion1795633463601',
    ]);
    expect(await pendingSchemaChanges()).toEqual([]);
    expect(await dataSource.runMigrations()).toEqual([]);

    for (let i = 0; i < applied.length; i++) await dataSource.undoLastMigration();
    const [{ n }] = await dataSource.query<{ n: number }[]>(
      `SELECT count(*)::int AS n FROM pg_tables
       WHERE schemaname = 'public' AND tablename <> 'typeorm_migrations'`,
    );
    expect(n).toBe(0);

    await dataSource.runMigrations({ transaction: 'each' });
    expect(await pendingSchemaChanges()).toEqual([]);
  });
});

import { dataSourceOptions, MigrationDataSource } from './data-source.js';

/** Runs every pending migration (what `npm run migration:run` does), each in its own transaction. */
export async function runMigrations(databaseUrl: string): Promise<string[]> {
  const dataSource = new MigrationDataSource(dataSourceOptions(databaseUrl));
  await dataSource.initialize();
  try {
    const applied = await dataSource.runMigrations({ transaction: 'each' });
    return applied.map((m) => m.name);
  } finally {
    await dataSource.destroy();
  }
}

import 'reflect-metadata';
import { DataSource, DataSourceOptions } from 'typeorm';
import { ENTITIES } from './entities/index.js';
import { MIGRATIONS } from './migrations/index.js';

export function dataSourceOptions(databaseUrl: string): DataSourceOptions {
  return {
    type: 'postgres',
    url: databaseUrl,
    entities: ENTITIES,
    migrations: MIGRATIONS,
    migrationsTableName: 'typeorm_migrations',
    migrationsTransactionMode: 'each',
    synchronize: false,
  };
}

/** The CLI reads DATABASE_URL from the environment or `.env` (variables already set win). */
function cliDatabaseUrl(): string {
  try {
    process.loadEnvFile();
  } catch {
    // no .env: the environment alone configures the CLI
  }
  return process.env.DATABASE_URL ?? '';
}

/**
 * The TypeORM CLI's data source (`typeorm -d dist/database/data-source.js`). Constructing it
 * connects to nothing; the app and the tests build their own from dataSourceOptions.
 */
export default new DataSource(dataSourceOptions(cliDatabaseUrl()));

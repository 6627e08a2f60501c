import 'reflect-metadata';
import { DataSource, DataSourceOptions } from 'typeorm';
import { loadConfig } from '../config/app-config.js';
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

function cliDataSource(): DataSource {
  if (typeof process.loadEnvFile === 'function') {
    try {
      process.loadEnvFile();
    } catch {
      // no .env: the environment alone configures the CLI
    }
  }
  const { databaseUrl } = loadConfig(process.env);
  if (!databaseUrl) {
    throw new Error('DATABASE_URL must be set to run TypeORM CLI commands (migration:run, …)');
  }
  return new DataSource(dataSourceOptions(databaseUrl));
}

/** The TypeORM CLI's data source (`typeorm -d dist/database/data-source.js`). */
export default process.argv.some((a) => a.includes('typeorm')) ? cliDataSource() : undefined;

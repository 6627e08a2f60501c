import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { AppConfig } from '../config/app-config.js';
import { dataSourceOptions } from './data-source-options.js';
import { isTransientConnectionError } from './pg-errors.js';
import { PgPoolModule, requireDatabaseUrl } from './pg-pool.module.js';
import { poolOptions, startupParameters } from './pool-options.js';

export { PG_POOL, requireDatabaseUrl } from './pg-pool.module.js';

/** The API's database: TypeORM for the entities, and PG_POOL (PgPoolModule) for hand-written SQL. */
@Module({
  imports: [
    PgPoolModule,
    TypeOrmModule.forRootAsync({
      inject: [AppConfig],
      useFactory: async (config: AppConfig) => {
        const url = requireDatabaseUrl(config);
        const { connectionString, ...extra } = poolOptions(
          url,
          'pgwq-typeorm',
          10,
          await startupParameters(url, config.databaseSchema),
        );
        return {
          ...dataSourceOptions(connectionString!, extra),
          // Only a server that is not there yet is worth waiting for; a missing database or a
          // wrong password fails at once (the start-up check has usually said so already).
          toRetry: isTransientConnectionError,
        };
      },
    }),
  ],
})
export class DatabaseModule {}

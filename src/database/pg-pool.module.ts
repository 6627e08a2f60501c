import { Global, Inject, Injectable, Module, OnApplicationShutdown } from '@nestjs/common';
import pg from 'pg';
import { AppConfig } from '../config/app-config.js';
import {
  DATABASE_TIMEOUTS,
  poolOptions,
  settledWithin,
  startupParameters,
} from './pool-options.js';

/** The pg pool for hand-written SQL (the delivery path, health checks). */
export const PG_POOL = Symbol('PG_POOL');

@Injectable()
class PoolCloser implements OnApplicationShutdown {
  constructor(@Inject(PG_POOL) private readonly pool: pg.Pool) {}
  async onApplicationShutdown() {
    // Every query is bounded by query_timeout, so this ends; the limit is a second guard.
    await settledWithin(this.pool.end(), DATABASE_TIMEOUTS.closeMs);
  }
}

export function requireDatabaseUrl(config: AppConfig): string {
  if (!config.databaseUrl) {
    throw new Error('DATABASE_URL is not set (only `npm start` starts an embedded PostgreSQL)');
  }
  return config.databaseUrl;
}

/**
 * PG_POOL alone: all a worker needs. The API's DatabaseModule adds TypeORM beside it; a worker
 * that loaded TypeORM too would carry its code, metadata and a second pool for nothing.
 */
@Global()
@Module({
  providers: [
    {
      provide: PG_POOL,
      inject: [AppConfig],
      useFactory: async (config: AppConfig) => {
        const url = requireDatabaseUrl(config);
        const pool = new pg.Pool(
          poolOptions(
            url,
            'pgwq',
            config.workerConcurrency + 4,
            await startupParameters(url, config.databaseSchema),
          ),
        );
        // An idle client losing its connection (server restart, pg_terminate_backend) emits
        // 'error' on the pool; without a listener that would crash the process.
        pool.on('error', () => undefined);
        return pool;
      },
    },
    PoolCloser,
  ],
  exports: [PG_POOL],
})
export class PgPoolModule {}

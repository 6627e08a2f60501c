import { DynamicModule, Module } from '@nestjs/common';
import { AppConfigModule } from './config/config.module.js';
import { PgPoolModule } from './database/pg-pool.module.js';
import { DeliveryModule } from './delivery/delivery.module.js';
import { WorkerMetricsServer } from './delivery/worker-metrics-server.js';
import { MaintenanceModule } from './maintenance/maintenance.module.js';
import { MetricsModule } from './metrics/metrics.module.js';

/** The environment a process was started with; tests pass their own. */
export type Env = Record<string, string | undefined>;

/** What the API and the worker share, so their config and metrics wiring cannot drift. */
export function sharedImports(env: Env) {
  return [AppConfigModule.forRoot(env), PgPoolModule, MetricsModule];
}

/**
 * The delivery worker: the pg pool, the claim loop and maintenance, nothing of the API. Its own
 * file, so `node dist/worker.js` loads neither the API's modules nor TypeORM (about 20 MB of
 * heap and 40 MB of RSS a worker would carry for nothing).
 */
@Module({})
export class WorkerModule {
  static forRoot(env: Env): DynamicModule {
    return {
      module: WorkerModule,
      imports: [...sharedImports(env), DeliveryModule, MaintenanceModule],
      providers: [WorkerMetricsServer],
    };
  }
}

import { DynamicModule, Module } from '@nestjs/common';
import { AuditModule } from './audit/audit.module.js';
import { AppConfigModule } from './config/config.module.js';
import { DatabaseModule } from './database/database.module.js';
import { DeadLetterModule } from './dead-letter/dead-letter.module.js';
import { DeliveriesModule } from './deliveries/deliveries.module.js';
import { DeliveryModule } from './delivery/delivery.module.js';
import { LinesModule } from './lines/lines.module.js';
import { MaintenanceModule } from './maintenance/maintenance.module.js';
import { HealthController } from './health/health.controller.js';
import { MessagesModule } from './messages/messages.module.js';
import { ApiMetricsModule } from './metrics/api-metrics.module.js';
import { MetricsModule } from './metrics/metrics.module.js';
import { WorkerMetricsServer } from './delivery/worker-metrics-server.js';
import { SecurityModule } from './security/security.module.js';
import { TopicsModule } from './topics/topics.module.js';
import { WebhooksModule } from './webhooks/webhooks.module.js';
import { WebhookHealthModule } from './webhook-health/webhook-health.module.js';

/** The environment a process was started with; tests pass their own. */
export type Env = Record<string, string | undefined>;

/** What the API and the worker share, so their config and database wiring cannot drift. */
function coreImports(env: Env) {
  return [AppConfigModule.forRoot(env), DatabaseModule, MetricsModule];
}

@Module({})
export class AppModule {
  /** The HTTP API; with `withWorker` (npm start) it also runs one delivery worker. */
  static forRoot(env: Env, options: { withWorker?: boolean } = {}): DynamicModule {
    return {
      module: AppModule,
      imports: [
        ...coreImports(env),
        SecurityModule,
        TopicsModule,
        WebhooksModule,
        MessagesModule,
        DeliveriesModule,
        DeadLetterModule,
        LinesModule,
        WebhookHealthModule,
        AuditModule,
        ApiMetricsModule,
        ...(options.withWorker ? [DeliveryModule, MaintenanceModule] : []),
      ],
      controllers: [HealthController],
    };
  }
}

@Module({})
export class WorkerModule {
  static forRoot(env: Env): DynamicModule {
    return {
      module: WorkerModule,
      imports: [...coreImports(env), DeliveryModule, MaintenanceModule],
      providers: [WorkerMetricsServer],
    };
  }
}

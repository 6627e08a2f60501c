import { DynamicModule, Module } from '@nestjs/common';
import { AuditModule } from './audit/audit.module.js';
import { DatabaseModule } from './database/database.module.js';
import { DeadLetterModule } from './dead-letter/dead-letter.module.js';
import { DeliveriesModule } from './deliveries/deliveries.module.js';
import { DeliveryModule } from './delivery/delivery.module.js';
import { LinesModule } from './lines/lines.module.js';
import { MaintenanceModule } from './maintenance/maintenance.module.js';
import { HealthController } from './health/health.controller.js';
import { MessagesModule } from './messages/messages.module.js';
import { ApiMetricsModule } from './metrics/api-metrics.module.js';
import { SecurityModule } from './security/security.module.js';
import { TopicsModule } from './topics/topics.module.js';
import { WebhooksModule } from './webhooks/webhooks.module.js';
import { WebhookHealthModule } from './webhook-health/webhook-health.module.js';
import { Env, sharedImports } from './worker.module.js';

export { WorkerModule } from './worker.module.js';
export type { Env } from './worker.module.js';

/** The API's core: the worker's (sharedImports) and TypeORM beside the pg pool. */
function coreImports(env: Env) {
  return [...sharedImports(env), DatabaseModule];
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

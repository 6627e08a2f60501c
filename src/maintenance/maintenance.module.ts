import { Module } from '@nestjs/common';
import { Maintenance } from './maintenance.js';
import { Retention } from './retention.js';
import { WebhookPurge } from './webhook-purge.js';

/**
 * The worker's background upkeep beside delivery: the deleted webhooks' purge and retention,
 * run in small batches by the Maintenance scheduler (see Maintenance).
 */
@Module({
  providers: [WebhookPurge, Retention, Maintenance],
})
export class MaintenanceModule {}

import { Module } from '@nestjs/common';
import { AddressPolicyCheck } from './address-policy-check.js';
import { ClaimLoop } from './claim-loop.js';
import { DeliveryMetrics } from './delivery-metrics.js';
import { Maintenance } from './maintenance.js';
import { Retention } from './retention.js';
import { NotifyListener } from './notify-listener.js';
import { WebhookPurge } from './webhook-purge.js';
import { WebhookSender } from './webhook-sender.js';

/**
 * The delivery engine: claims due lines and POSTs their heads. No controllers; the loop starts
 * in onApplicationBootstrap and drains on shutdown (see ClaimLoop). Beside it, the maintenance
 * tasks (see Maintenance).
 */
@Module({
  providers: [
    WebhookSender,
    NotifyListener,
    DeliveryMetrics,
    ClaimLoop,
    WebhookPurge,
    Retention,
    Maintenance,
    AddressPolicyCheck,
  ],
  exports: [DeliveryMetrics],
})
export class DeliveryModule {}

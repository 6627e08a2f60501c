import { Module } from '@nestjs/common';
import { AddressPolicyCheck } from './address-policy-check.js';
import { ClaimLoop } from './claim-loop.js';
import { DeliveryMetrics } from './delivery-metrics.js';
import { NotifyListener } from './notify-listener.js';
import { WebhookSender } from './webhook-sender.js';

/**
 * The delivery engine: claims due lines and POSTs their heads. No controllers; the loop starts
 * in onApplicationBootstrap and drains on shutdown (see ClaimLoop). The maintenance tasks run
 * beside it, in MaintenanceModule.
 */
@Module({
  providers: [WebhookSender, NotifyListener, DeliveryMetrics, ClaimLoop, AddressPolicyCheck],
  exports: [DeliveryMetrics],
})
export class DeliveryModule {}

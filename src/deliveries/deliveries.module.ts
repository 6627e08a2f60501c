import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { DeliveryAttempt } from '../database/entities/delivery-attempt.entity.js';
import { Delivery } from '../database/entities/delivery.entity.js';
import { Message } from '../database/entities/message.entity.js';
import { WebhooksModule } from '../webhooks/webhooks.module.js';
import { DeliveriesController } from './deliveries.controller.js';
import { DeliveriesService } from './deliveries.service.js';

@Module({
  imports: [TypeOrmModule.forFeature([Delivery, DeliveryAttempt, Message]), WebhooksModule],
  controllers: [DeliveriesController],
  providers: [DeliveriesService],
})
export class DeliveriesModule {}

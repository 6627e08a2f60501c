import { Injectable, NotFoundException } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { MoreThan, Repository } from 'typeorm';
import { PaginationDto } from '../common/pagination.dto.js';
import { DeliveryAttempt } from '../database/entities/delivery-attempt.entity.js';
import { Delivery } from '../database/entities/delivery.entity.js';
import { WebhooksService } from '../webhooks/webhooks.service.js';
import { ListDeliveriesDto } from './dto/list-deliveries.dto.js';

@Injectable()
export class DeliveriesService {
  constructor(
    @InjectRepository(Delivery) private readonly deliveries: Repository<Delivery>,
    @InjectRepository(DeliveryAttempt) private readonly attempts: Repository<DeliveryAttempt>,
    private readonly webhooks: WebhooksService,
  ) {}

  async listByWebhook(webhookId: number, query: ListDeliveriesDto): Promise<Delivery[]> {
    await this.webhooks.getById(webhookId);
    return this.deliveries.find({
      where: {
        webhookId,
        id: MoreThan(query.after),
        ...(query.status ? { status: query.status } : {}),
      },
      order: { id: 'ASC' },
      take: query.limit,
    });
  }

  async listAttempts(deliveryId: number, page: PaginationDto): Promise<DeliveryAttempt[]> {
    if (!(await this.deliveries.existsBy({ id: deliveryId }))) {
      throw new NotFoundException(`delivery ${deliveryId} does not exist`);
    }
    return this.attempts.find({
      where: { deliveryId, id: MoreThan(page.after) },
      order: { id: 'ASC' },
      take: page.limit,
    });
  }
}

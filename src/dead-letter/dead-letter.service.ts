import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { FindOptionsWhere, IsNull, Not, Repository } from 'typeorm';
import { findPage } from '../common/keyset.js';
import { Delivery } from '../database/entities/delivery.entity.js';
import { DeliveryWithType, withEventTypes } from '../deliveries/event-types.js';
import { DeadLetterFilterDto, ListDeadLetterDto } from './dto/dead-letter-query.dto.js';

@Injectable()
export class DeadLetterService {
  constructor(@InjectRepository(Delivery) private readonly deliveries: Repository<Delivery>) {}

  async list(query: ListDeadLetterDto): Promise<DeliveryWithType[]> {
    return withEventTypes(
      this.deliveries.manager,
      await findPage(this.deliveries, query, this.filter(query)),
    );
  }

  count(query: DeadLetterFilterDto): Promise<number> {
    return this.deliveries.countBy(this.filter(query));
  }

  /**
   * Dead is dead_at IS NOT NULL (deliveries_dead_at_check: set exactly when the status is dead),
   * the predicate of deliveries_dead_letter_idx (id) and deliveries_webhook_dead_letter_idx
   * (webhook_id, id). No index reads status: marking a delivery delivered stays a heap-only update.
   */
  private filter(query: DeadLetterFilterDto): FindOptionsWhere<Delivery> {
    return {
      deadAt: Not(IsNull()),
      ...(query.topic_id ? { topicId: query.topic_id } : {}),
      ...(query.webhook_id ? { webhookId: query.webhook_id } : {}),
    };
  }
}

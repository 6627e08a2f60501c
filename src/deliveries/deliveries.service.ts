import { Injectable, NotFoundException } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { MoreThan, Repository } from 'typeorm';
import { afterCondition, PaginationDto } from '../common/pagination.dto.js';
import { DeliveryAttempt } from '../database/entities/delivery-attempt.entity.js';
import { Delivery } from '../database/entities/delivery.entity.js';
import { Message } from '../database/entities/message.entity.js';
import { WebhooksService } from '../webhooks/webhooks.service.js';
import { ListDeliveriesDto } from './dto/list-deliveries.dto.js';
import { DeliveryWithType, withEventTypes } from './event-types.js';

@Injectable()
export class DeliveriesService {
  constructor(
    @InjectRepository(Delivery) private readonly deliveries: Repository<Delivery>,
    @InjectRepository(DeliveryAttempt) private readonly attempts: Repository<DeliveryAttempt>,
    @InjectRepository(Message) private readonly messages: Repository<Message>,
    private readonly webhooks: WebhooksService,
  ) {}

  /**
   * One page of a webhook's deliveries, each filter an index range: deliveries_webhook_id_idx
   * (webhook_id, id), or for a status with few rows deliveries_pending_idx or
   * deliveries_webhook_dead_idx (webhook_id, id) WHERE status; with a partition key the line's
   * unique key (webhook_id, partition_key, sequence), walked in sequence order from the sequence
   * of the `after` delivery (bench/results/finding-explain.txt). An event type is checked on each
   * candidate's message (its primary key).
   */
  async listByWebhook(webhookId: number, query: ListDeliveriesDto): Promise<DeliveryWithType[]> {
    await this.webhooks.getById(webhookId);
    const direction = query.order === 'desc' ? 'DESC' : 'ASC';
    const qb = this.deliveries
      .createQueryBuilder('d')
      .where('d.webhook_id = :webhookId', { webhookId })
      .setParameters({ after: query.after })
      .limit(query.limit);
    if (query.status) qb.andWhere('d.status = :status', { status: query.status });
    if (query.event_type !== undefined) {
      // Each candidate's message by its primary key; for a rare type the planner may start from
      // messages_topic_event_type_idx instead.
      qb.andWhere(
        'EXISTS (SELECT 1 FROM messages m WHERE m.id = d.message_id AND m.event_type = :eventType)',
        { eventType: query.event_type },
      );
    }
    if (query.partition_key === undefined) {
      const after = afterCondition(query, 'd.id');
      if (after) qb.andWhere(after);
      // Ordered by (webhook_id, id), with webhook_id as a range rather than an equality (which
      // the planner would drop from the ORDER BY as a constant): only the indexes led by
      // webhook_id give that order, so the plan never walks deliveries_dead_idx (id) reading
      // every other webhook's dead rows to find this one's.
      qb.andWhere('d.webhook_id BETWEEN :webhookId AND :webhookId');
      return this.typed(
        await qb.orderBy('d.webhookId', direction).addOrderBy('d.id', direction).getMany(),
      );
    }
    qb.andWhere('d.partition_key = :partitionKey', { partitionKey: query.partition_key });
    if (query.after > 0) {
      // The cursor's place in the line: a delivery of another line (or none) ends the list.
      qb.andWhere(
        `d.sequence ${query.order === 'asc' ? '>' : '<'} (
           SELECT c.sequence FROM deliveries c
           WHERE c.id = :after AND c.webhook_id = :webhookId AND c.partition_key = :partitionKey
         )`,
      );
    }
    return this.typed(await qb.orderBy('d.sequence', direction).getMany());
  }

  async getById(id: number): Promise<DeliveryWithType> {
    const delivery = await this.deliveries.findOneBy({ id });
    if (!delivery) throw new NotFoundException(`delivery ${id} does not exist`);
    return (await this.typed([delivery]))[0];
  }

  /** The deliveries with their messages' event types. */
  private typed(deliveries: Delivery[]): Promise<DeliveryWithType[]> {
    return withEventTypes(this.deliveries.manager, deliveries);
  }

  /** A message's delivery to every webhook it was fanned out to (deliveries_message_id_idx). */
  async listByMessage(messageId: number, page: PaginationDto): Promise<DeliveryWithType[]> {
    if (!(await this.messages.existsBy({ id: messageId }))) {
      throw new NotFoundException(`message ${messageId} does not exist`);
    }
    return this.typed(
      await this.deliveries.find({
        where: { messageId, id: MoreThan(page.after) },
        order: { id: 'ASC' },
        take: page.limit,
      }),
    );
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

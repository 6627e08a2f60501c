import { Injectable, NotFoundException } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Repository } from 'typeorm';
import { findPage, scopedPage } from '../common/keyset.js';
import { PaginationDto } from '../common/pagination.dto.js';
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
   * (webhook_id, id), or for dead ones deliveries_webhook_dead_letter_idx (webhook_id, id) WHERE
   * dead_at IS NOT NULL (set exactly when dead); with a partition key the line's unique key
   * (webhook_id, partition_key, sequence), walked in sequence order from the sequence of the
   * `after` delivery (bench/results/finding-explain.txt). Pending and delivered are a filter on
   * deliveries_webhook_id_idx: no index reads status, so that marking a delivery delivered stays
   * a heap-only update (migration HotRecords1795633464900). An event type is checked on each
   * candidate's message (its primary key). A new filter is one more entry in `equal` (or
   * `conditions`).
   */
  async listByWebhook(webhookId: number, query: ListDeliveriesDto): Promise<DeliveryWithType[]> {
    await this.webhooks.getById(webhookId);
    const dead = query.status === 'dead';
    return this.typed(
      await scopedPage(
        this.deliveries.createQueryBuilder('d'),
        {
          scope: 'webhookId',
          scopeId: webhookId,
          equal: { status: dead ? undefined : query.status },
          conditions: [
            ...(dead ? [{ where: 'd.deadAt IS NOT NULL' }] : []),
            ...(query.event_type === undefined
              ? []
              : [
                  {
                    // Each candidate's message by its primary key; for a rare type the planner
                    // may start from messages_topic_event_type_idx instead.
                    where:
                      'EXISTS (SELECT 1 FROM messages m WHERE m.id = d.message_id AND m.event_type = :eventType)',
                    parameters: { eventType: query.event_type },
                  },
                ]),
          ],
          partitionKey: query.partition_key,
        },
        query,
      ),
    );
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
    return this.typed(await findPage(this.deliveries, page, { messageId }));
  }

  async listAttempts(deliveryId: number, page: PaginationDto): Promise<DeliveryAttempt[]> {
    if (!(await this.deliveries.existsBy({ id: deliveryId }))) {
      throw new NotFoundException(`delivery ${deliveryId} does not exist`);
    }
    return findPage(this.attempts, page, { deliveryId });
  }
}

import { BadRequestException, Injectable, NotFoundException } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { scopedPage } from '../common/keyset.js';
import { Message } from '../database/entities/message.entity.js';
import { Topic } from '../database/entities/topic.entity.js';
import { MessageDto } from './dto/message.dto.js';
import { ListMessagesDto } from './dto/list-messages.dto.js';

export const toMessageJson = (m: Message): MessageDto => ({
  id: m.id,
  topic_id: m.topicId,
  partition_key: m.partitionKey,
  sequence: m.sequence,
  created_at: m.createdAt.toISOString(),
  idempotency_key: m.idempotencyKey,
  event_type: m.eventType,
});

/**
 * Finding a topic's messages by the fields a support ticket carries. Each filter is an index
 * range: messages_topic_id_idx (topic_id, id); with a partition key the partition's unique key
 * (topic_id, partition_key, sequence), walked in sequence order from the `after` message's
 * sequence; with an idempotency key its unique key, at most one row; with an event type
 * messages_topic_event_type_idx (topic_id, event_type, id) (bench/results/finding-explain.txt).
 * A new filter is one more entry in `equal`.
 */
@Injectable()
export class MessageSearch {
  constructor(@InjectDataSource() private readonly db: DataSource) {}

  async list(query: ListMessagesDto): Promise<Message[]> {
    const topicId = await this.topicId(query);
    const qb = this.db
      .getRepository(Message)
      .createQueryBuilder('m')
      .select([
        'm.id',
        'm.topicId',
        'm.partitionKey',
        'm.sequence',
        'm.createdAt',
        'm.idempotencyKey',
        'm.eventType',
      ]);
    return scopedPage(
      qb,
      {
        scope: 'topicId',
        scopeId: topicId,
        equal: { idempotencyKey: query.idempotency_key, eventType: query.event_type },
        partitionKey: query.partition_key,
      },
      query,
    );
  }

  private async topicId(query: ListMessagesDto): Promise<number> {
    if ((query.topic_id === undefined) === (query.topic === undefined)) {
      throw new BadRequestException('give the topic: topic_id or topic (its name), one of them');
    }
    const topic = await this.db
      .getRepository(Topic)
      .findOneBy(query.topic_id !== undefined ? { id: query.topic_id } : { name: query.topic });
    if (!topic) {
      throw new NotFoundException(
        query.topic_id !== undefined
          ? `topic ${query.topic_id} does not exist`
          : `topic "${query.topic}" does not exist`,
      );
    }
    return topic.id;
  }
}
